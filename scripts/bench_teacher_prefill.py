#!/usr/bin/env python
"""Teacher cost of MOPD contexts: `selection=random` against `selection=shared`, as ratios to the naive sum.

Sections (`--sections`; tokens and engine by default):
- tokens: groups of n rollouts at the paper's shapes (n=8; success rates 0.25/0.5/0.75, s ~ Binomial(n, p);
  a ~500-token question; responses of 2048-4096 tokens; the training defaults of `PeerConfig` for budgets),
  rendered by the training code (`peers.build_group_contexts`) with a word-level stand-in tokenizer (one
  token per word, so token counts are exact). Prints the tokens a perfect prefix cache computes
  (`prefix_trie_tokens` per group) over the naive sum of [teacher prompt ; response], and the floor: every
  response once plus one teacher prompt per group.
- engine: measured teacher forward time, one simulated group (success rate 0.5) on a random-initialised
  causal LM: today's per-sample forward (right-padded [prompt ; response] batch, logits for the response
  rows) against `engine_prefix_cache.shared_prefix_logits` on the same shared contexts. Ratio to the
  per-sample forward of the shared contexts, beside their token ratio. Medians of `--repeats` runs.
- vllm (needs .venv-vllm; not in the default sections): verl's vLLM server with prefix caching scores the same
  simulated groups (success rate 0.5, lengths times --scale) under each selection; prints wall time, vLLM's
  reported prefix-cache hits and the perfect-cache token ratio.

Usage:
    .venv/bin/python scripts/bench_teacher_prefill.py [--sections tokens engine] [--groups 200]
        [--device cpu|cuda] [--model-size tiny|0.6b] [--scale 0.25]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from recipe.mopd.peers import GroupMember, PeerConfig, build_group_contexts
from recipe.mopd.prefix_sharing import prefix_trie_tokens

PROMPT_TOKENS = (300, 700)
RESPONSE_TOKENS = (2048, 4096)
SUCCESS_RATES = (0.25, 0.5, 0.75)
SELECTIONS = ("random", "shared")


class WordTokenizer:
    """Stand-in tokenizer for the simulation: one token per whitespace-separated word, ChatML-like template.

    Only token counts matter here; `peers` needs encode, decode and apply_chat_template."""

    def __init__(self):
        self.ids: dict[str, int] = {}
        self.words: list[str] = []

    def _id(self, word: str) -> int:
        if word not in self.ids:
            self.ids[word] = len(self.words)
            self.words.append(word)
        return self.ids[word]

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [self._id(w) for w in text.split()]

    def decode(self, ids, **_) -> str:
        return " ".join(self.words[i] for i in ids)

    def apply_chat_template(self, messages, add_generation_prompt=True, tokenize=True, **_):
        text = " ".join(f"<|im_start|> {m['role']} {m['content']} <|im_end|>" for m in messages)
        return self.encode(text + (" <|im_start|> assistant" if add_generation_prompt else ""))


def simulate_group(rng: random.Random, n: int, rate: float, selection: str, uid: str):
    """(teacher prompt ids, response ids) of one group, and the tokenizer that made them."""
    tok = WordTokenizer()
    question = " ".join(f"q{t}" for t in range(rng.randint(*PROMPT_TOKENS)))
    members = []
    for j in range(n):
        length = rng.randint(*RESPONSE_TOKENS)
        text = " ".join(f"r{j}w{t}" for t in range(length))
        members.append(GroupMember(text, tok.encode(text), 1.0 if rng.random() < rate else 0.0))
    contexts = build_group_contexts(
        tok, [{"role": "user", "content": question}], members, PeerConfig(selection=selection), uid
    )
    return [(ctx.prompt_ids, m.response_ids) for ctx, m in zip(contexts, members)], tok


def tokens_section(args) -> None:
    print(f"\n## prefix-cache tokens / naive, n={args.n}, {args.groups} groups per rate")
    print(
        f"{'success rate':>12} | {'random':>7} | {'shared':>7} | {'floor':>7} | distinct prompts/group (random, shared)"
    )
    for rate in SUCCESS_RATES:
        row, distinct = {}, {}
        for selection in SELECTIONS:
            rng = random.Random(args.seed)  # the same groups for both selections
            naive = unique = floor = 0
            prompts = []
            for g in range(args.groups):
                pairs, _ = simulate_group(rng, args.n, rate, selection, f"g{g}")
                sequences = [p + r for p, r in pairs]
                naive += sum(len(s) for s in sequences)
                unique += prefix_trie_tokens(sequences)
                floor += sum(len(r) for _, r in pairs) + min(len(p) for p, _ in pairs)
                prompts.append(len({tuple(p) for p, _ in pairs}))
            row[selection], row["floor"] = unique / naive, floor / naive
            distinct[selection] = statistics.mean(prompts)
        print(
            f"{rate:>12.2f} | {row['random']:>7.3f} | {row['shared']:>7.3f} | {row['floor']:>7.3f} | "
            f"{distinct['random']:.2f}, {distinct['shared']:.2f}"
        )


def _model(size: str, device: str):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    sizes = {
        "tiny": {
            "hidden_size": 128,
            "intermediate_size": 384,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 32,
            "vocab_size": 4096,
        },
        # Qwen3-0.6B's shape (random weights; no download)
        "0.6b": {
            "hidden_size": 1024,
            "intermediate_size": 3072,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "vocab_size": 151936,
        },
    }
    torch.manual_seed(0)
    config = Qwen3Config(**sizes[size], attn_implementation="sdpa")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return Qwen3ForCausalLM(config).to(device=device, dtype=dtype).eval()


def per_sample_logits(model, prompts, responses, device):
    """Today's forward: every [prompt ; response] in full, logits only for the response rows."""
    import torch

    sequences = [torch.cat([p, r]) for p, r in zip(prompts, responses)]
    length = max(len(s) for s in sequences)
    ids = torch.zeros(len(sequences), length, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(sequences):
        ids[i, : len(s)], mask[i, : len(s)] = s, 1
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    rows = [hidden[i, len(p) - 1 : len(p) - 1 + len(r)] for i, (p, r) in enumerate(zip(prompts, responses))]
    return model.lm_head(torch.cat(rows))


def engine_section(args) -> None:
    import torch

    from recipe.mopd.engine_prefix_cache import shared_prefix_logits

    device = args.device
    model = _model(args.model_size, device)
    vocab = model.config.vocab_size
    rng = random.Random(args.seed)
    pairs, _ = simulate_group(rng, args.n, 0.5, "shared", "engine")
    # --scale shrinks every length (CPU runs); token ids are folded into the model's vocabulary.
    scaled = [
        (p[: max(1, int(len(p) * args.scale))], r[: max(1, int(len(r) * args.scale))]) for p, r in pairs
    ]
    # Truncating keeps identical prompts identical, so the sharing structure survives the scale.
    prompts = [torch.tensor(p, device=device) % vocab for p, _ in scaled]
    responses = [torch.tensor(r, device=device) % vocab for _, r in scaled]
    naive = sum(len(p) + len(r) for p, r in zip(prompts, responses))
    unique = prefix_trie_tokens([p.tolist() + r.tolist() for p, r in zip(prompts, responses)])

    def timed(fn):
        times = []
        for _ in range(args.repeats + 1):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.no_grad():
                out = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            del out
        return statistics.median(times[1:])  # the first run warms up

    with torch.no_grad():
        error = (
            (
                shared_prefix_logits(model, prompts, responses, device).float()
                - per_sample_logits(model, prompts, responses, device).float()
            )
            .abs()
            .max()
            .item()
        )
    base = timed(lambda: per_sample_logits(model, prompts, responses, device))
    shared = timed(lambda: shared_prefix_logits(model, prompts, responses, device))
    print(f"\n## in-engine teacher forward, one group at success rate 0.5 ({args.model_size}, {device})")
    print(
        f"sequences {len(prompts)}, distinct teacher prompts {len({tuple(p.tolist()) for p in prompts})}, "
        f"tokens naive {naive}, unique {unique}"
    )
    print(
        f"per-sample forward {base:.3f} s | shared-prefix forward {shared:.3f} s | max |logit diff| {error:.2e}"
    )
    print(f"time ratio shared / per-sample {shared / base:.3f} | token ratio {unique / naive:.3f}")


def vllm_section(args) -> None:
    """Live/frozen teachers: verl's vLLM server (prefix caching on, verl's default) scores whole groups
    of [teacher prompt ; response] as the teacher does (max_tokens=1, prompt_logprobs=0, every request of
    the step in flight at once). Same groups for both selections, the cache reset before each run; wall
    time and vLLM's reported cache hits per selection, medians of --repeats alternating runs."""
    import asyncio

    import ray
    from transformers import AutoTokenizer

    from recipe.mopd.cpu import tiny_task
    from recipe.mopd.cpu.vllm_cpu import launch_standalone_server

    assets = tiny_task.prepare(REPO_ROOT / ".cache" / "test_assets")
    rng = random.Random(args.seed)
    groups = {selection: [] for selection in SELECTIONS}
    for g in range(args.vllm_groups):
        state = rng.getstate()
        for selection in SELECTIONS:
            rng.setstate(state)  # the same rollouts and scores under both selections
            pairs, _ = simulate_group(rng, args.n, 0.5, selection, f"v{g}")
            groups[selection].append(
                [
                    (p[: max(1, int(len(p) * args.scale))], r[: max(1, int(len(r) * args.scale))])
                    for p, r in pairs
                ]
            )
    # Fold the stand-in ids into the tiny model's vocabulary, clear of its special tokens (ids 0-4).
    vocab = AutoTokenizer.from_pretrained(assets["model"]).vocab_size - 5
    sequences = {
        selection: [[5 + t % vocab for t in p + r] for group in groups[selection] for p, r in group]
        for selection in SELECTIONS
    }
    longest = max(len(seq) for seqs in sequences.values() for seq in seqs)
    server = launch_standalone_server(assets["model"], max_model_len=longest + 8)
    params = {"max_tokens": 1, "temperature": 1.0, "prompt_logprobs": 0, "detokenize": False}

    async def score(seqs):
        refs = [
            server.generate.remote(
                prompt_ids=seq, sampling_params=dict(params), request_id=f"b{i}-{time.time()}"
            )
            for i, seq in enumerate(seqs)
        ]
        return await asyncio.gather(*refs)

    times = {selection: [] for selection in SELECTIONS}
    hits = {}
    for _ in range(args.repeats + 1):  # the first round warms the engine up
        for selection in SELECTIONS:
            ray.get(server.clear_kv_cache.remote())
            start = time.perf_counter()
            outputs = asyncio.run(score(sequences[selection]))
            times[selection].append(time.perf_counter() - start)
            cached = sum(out.extra_fields.get("num_cached_tokens") or 0 for out in outputs)
            hits[selection] = cached / sum(len(seq) for seq in sequences[selection])
    ray.shutdown()
    naive = sum(len(seq) for seq in sequences["random"])
    print(
        f"\n## vLLM teacher scoring (tiny model, CPU), {args.vllm_groups} groups at success rate 0.5, scale {args.scale}"
    )
    print(f"sequences {len(sequences['random'])}, naive tokens {naive}, longest {longest}")
    print(f"{'selection':>10} | {'trie/naive':>10} | {'vLLM cache hits':>15} | {'wall s (median)':>15}")
    for selection in SELECTIONS:
        trie = sum(prefix_trie_tokens([p + r for p, r in group]) for group in groups[selection])
        print(
            f"{selection:>10} | {trie / naive:>10.3f} | {hits[selection]:>15.3f} | "
            f"{statistics.median(times[selection][1:]):>15.3f}"
        )
    ratio = statistics.median(times["shared"][1:]) / statistics.median(times["random"][1:])
    print(f"time ratio shared / random {ratio:.3f}")


SECTIONS = {"tokens": tokens_section, "engine": engine_section, "vllm": vllm_section}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=["tokens", "engine"])
    parser.add_argument("--groups", type=int, default=200, help="simulated groups per success rate")
    parser.add_argument("--n", type=int, default=8, help="rollouts per group")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model-size", choices=("tiny", "0.6b"), default="tiny")
    parser.add_argument("--scale", type=float, default=0.1, help="length scale of the engine section's group")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--vllm-groups", type=int, default=8, help="groups scored per run in the vllm section"
    )
    args = parser.parse_args(argv)
    for name in args.sections:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
