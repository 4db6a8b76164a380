"""Offline teacher-signal analysis (MOPD paper §5.3): does a teacher reading peers rank a group's rollouts
the way the verifier does?

    # 1. rollout groups from a model (or bring your own file, see `load_rollouts`)
    python -m recipe.mopd.eval.analysis sample --model PATH --data FILE.parquet --n 8 --out rollouts.jsonl
    # 2. score every rollout under every context variant with the teacher and tabulate
    python -m recipe.mopd.eval.analysis --teacher PATH --rollouts rollouts.jsonl --out DIR

Teacher score of rollout i = mean log-prob of its response tokens given [teacher context ; response]
(`contexts` builds the context with the training code, chat template included; the released analysis
used raw text). The comparison with the rewards is in `signal_table`: per-variant sample sets as the
paper reports them, and a matched set (every variant on the same rollouts) with paired bootstrap CIs of
each variant's difference to `none`. Writes DIR/metrics.csv, DIR/differences.csv, DIR/scores.csv (one row
per rollout and variant, for the groups whose rewards differ: no metric is defined on the others),
DIR/tables.md (the both-present and matched tables and the differences, in markdown), DIR/<metric>.png,
DIR/teacher_signal.png and DIR/differences.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from recipe.mopd.eval.contexts import VARIANTS, build_variant_contexts
from recipe.mopd.eval.generation import DTYPES, json_object, to_plain
from recipe.mopd.eval.signal_table import SAMPLE_SETS, ScoredGroup, paired_differences, signal_table
from recipe.mopd.peers import SELECTIONS, GroupMember, PeerConfig
from recipe.mopd.signal_metrics import METRICS


@dataclass
class Rollout:
    uid: str
    prompt: list[dict]
    response: str
    response_ids: list[int] | None
    score: float


def load_rollouts(path: str | Path) -> dict[str, list[Rollout]]:
    """Groups by uid, in file order, from jsonl or parquet rows {uid, prompt (chat messages), response,
    score, response_ids (optional; without them the response text is re-tokenized)}."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pandas as pd

        records = [to_plain(r) for r in pd.read_parquet(path).to_dict("records")]
    else:
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[str, list[Rollout]] = {}
    for number, record in enumerate(records, 1):
        missing = [key for key in ("uid", "prompt", "response", "score") if key not in record]
        if missing:
            raise ValueError(f"{path} record {number}: missing {missing}")
        ids = record.get("response_ids")
        groups.setdefault(str(record["uid"]), []).append(
            Rollout(
                uid=str(record["uid"]),
                prompt=list(record["prompt"]),
                response=str(record["response"]),
                response_ids=[int(t) for t in ids] if ids is not None else None,
                score=float(record["score"]),
            )
        )
    return groups


def teacher_scores(model, sequences: list[tuple[list[int], list[int]]], batch_size: int) -> list[float]:
    """Mean teacher log-prob of each response given its context, for (context ids, response ids) pairs.

    `model` is a Hugging Face causal LM on CPU. Rollouts of one group read the same few contexts (all of
    them under `none`, most under `--selection shared`), so for a full-attention model each chunk of
    `batch_size` consecutive sequences computes every distinct context once and the responses against its
    keys and values (`engine_prefix_cache.shared_prefix_logits`, equal to a per-sequence forward to 1e-5
    in fp32). Other models (sliding windows) run one right-padded forward per chunk, sorted by length.
    Raises ValueError for an empty context or response.
    """
    import torch

    from recipe.mopd.engine_prefix_cache import shared_prefix_logits, supports_prefix_sharing

    if any(not context or not response for context, response in sequences):
        raise ValueError("every scored sequence needs a context and a response token")
    shared = supports_prefix_sharing(model.config)
    order = list(range(len(sequences)))
    if not shared:
        order.sort(key=lambda i: len(sequences[i][0]) + len(sequences[i][1]))
    scores = [math.nan] * len(sequences)
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            responses = [torch.tensor(sequences[i][1]) for i in chunk]
            if shared:
                rows = shared_prefix_logits(
                    model, [torch.tensor(sequences[i][0]) for i in chunk], responses, "cpu"
                )
            else:
                rows = _response_logits(model, [sequences[i] for i in chunk])
            logprobs = torch.log_softmax(rows.float(), dim=-1).gather(-1, torch.cat(responses)[:, None])[:, 0]
            for i, part in zip(chunk, logprobs.split([len(r) for r in responses])):
                scores[i] = part.mean().item()
    return scores


def _response_logits(model, sequences: list[tuple[list[int], list[int]]]):
    """Logits [sum R_i, V] of the rows predicting each response token, from one right-padded forward."""
    import torch

    lengths = [len(c) + len(r) for c, r in sequences]
    input_ids = torch.zeros(len(sequences), max(lengths), dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, ((context, response), length) in enumerate(zip(sequences, lengths)):
        input_ids[row, :length] = torch.tensor(context + response)
        attention_mask[row, :length] = 1
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    return torch.cat([logits[row, len(c) - 1 : len(c) + len(r) - 1] for row, (c, r) in enumerate(sequences)])


def score_variants(
    tokenizer,
    model,
    groups: dict[str, list[Rollout]],
    variants: list[str],
    base: PeerConfig,
    chat_template_kwargs: dict | None,
    batch_size: int,
) -> list[dict]:
    """One record per (variant, rollout): uid, index, variant, reward, teacher_score, peers, effective."""
    members = {}
    for uid, rollouts in groups.items():
        members[uid] = [
            GroupMember(
                response_text=r.response,
                response_ids=r.response_ids
                if r.response_ids is not None
                else list(tokenizer.encode(r.response, add_special_tokens=False)),
                score=r.score,
            )
            for r in rollouts
        ]
        empty = [i for i, m in enumerate(members[uid]) if not m.response_ids]
        if empty:
            raise ValueError(f"group {uid!r}: rollouts {empty} have no response tokens to score")
    records, sequences = [], []
    for variant in variants:
        for uid, rollouts in groups.items():
            contexts = build_variant_contexts(
                tokenizer, rollouts[0].prompt, members[uid], variant, base, uid, chat_template_kwargs
            )
            for index, (ctx, member) in enumerate(zip(contexts, members[uid])):
                records.append(
                    {
                        "variant": variant,
                        "uid": uid,
                        "index": index,
                        "reward": member.score,
                        "success_peers": ctx.num_success_peers,
                        "failure_peers": ctx.num_failure_peers,
                        "effective": ctx.effective,
                        "context_tokens": len(ctx.prompt_ids),
                    }
                )
                sequences.append((ctx.prompt_ids, member.response_ids))
    for record, score in zip(records, teacher_scores(model, sequences, batch_size)):
        record["teacher_score"] = score
    return records


def scored_groups(records: list[dict]) -> dict[str, list[ScoredGroup]]:
    """Effective rollouts per (variant, group), in the shape `signal_table` takes."""
    by_variant: dict[str, dict[str, ScoredGroup]] = {}
    for r in records:
        group = by_variant.setdefault(r["variant"], {}).setdefault(r["uid"], ScoredGroup(r["uid"], [], []))
        if r["effective"]:
            group.teacher_scores.append(r["teacher_score"])
            group.rewards.append(r["reward"])
            group.indices.append(r["index"])
    return {variant: list(groups.values()) for variant, groups in by_variant.items()}


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _bars(ax, table: list[dict], metric: str, variants: list[str]) -> None:
    width = 0.8 / len(SAMPLE_SETS)
    for offset, sample_set in enumerate(SAMPLE_SETS):
        rows = {r["variant"]: r for r in table if r["metric"] == metric and r["sample_set"] == sample_set}
        xs, means, errors = [], [], [[], []]
        for x, variant in enumerate(variants):
            row = rows.get(variant)
            if row is None or row["mean"] is None:
                continue
            xs.append(x + (offset - (len(SAMPLE_SETS) - 1) / 2) * width)
            means.append(row["mean"])
            errors[0].append(row["mean"] - row["ci_low"])
            errors[1].append(row["ci_high"] - row["mean"])
        ax.bar(xs, means, width, yerr=errors, capsize=3, label=sample_set.replace("_", "-"))
    chance = {"auroc": 0.5, "pairwise_accuracy": 0.5}.get(metric, 0.0)
    ax.axhline(chance, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(variants)), variants)
    ax.set_title(metric)
    ax.grid(axis="y", alpha=0.3)


def plot_differences(differences: list[dict], out_png: Path, title: str) -> Path:
    """One panel per metric: each variant's paired difference to the reference on the matched set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 6))
    for ax, metric in zip(axes.flat, METRICS):
        rows = [r for r in differences if r["metric"] == metric and r["mean"] is not None]
        ax.bar(
            range(len(rows)),
            [r["mean"] for r in rows],
            yerr=[[r["mean"] - r["ci_low"] for r in rows], [r["ci_high"] - r["mean"] for r in rows]],
            capsize=3,
            color="tab:green",
        )
        ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(rows)), [r["variant"] for r in rows])
        reference = rows[0]["reference"] if rows else "reference"
        ax.set_title(f"{metric}: variant - {reference} (matched, paired 95% CI)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def plot_table(table: list[dict], variants: list[str], out_dir: Path, title: str) -> list[Path]:
    """<metric>.png for each metric, and teacher_signal.png with all four panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for metric in METRICS:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        _bars(ax, table, metric, variants)
        ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        paths.append(out_dir / f"{metric}.png")
        fig.savefig(paths[-1], dpi=90)
        plt.close(fig)
    fig, axes = plt.subplots(2, 2, figsize=(10, 6))
    for ax, metric in zip(axes.flat, METRICS):
        _bars(ax, table, metric, variants)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    paths.append(out_dir / "teacher_signal.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    return paths


def _mean(row: dict | None) -> str:
    return "-" if row is None or row["mean"] is None else f"{row['mean']:.3f}"


def markdown_tables(table: list[dict], differences: list[dict], variants: list[str]) -> str:
    """The both-present and matched tables (AUROC with its CI, the other metrics' means, group counts)
    and the paired differences to `none`, as GitHub markdown."""
    header = "| variant | AUROC [95% CI] | Spearman | Kendall τ | pairwise acc. | groups |\n|---|---|---|---|---|---|"
    parts = []
    for sample_set in ("both_present", "matched"):
        rows = {(r["variant"], r["metric"]): r for r in table if r["sample_set"] == sample_set}
        lines = [f"{sample_set.replace('_', '-')} set:", "", header]
        for variant in variants:
            auroc = rows.get((variant, "auroc"))
            cells = ["-" if auroc is None else _interval(auroc)]
            cells += [_mean(rows.get((variant, m))) for m in ("spearman", "kendall_tau", "pairwise_accuracy")]
            groups = "-" if auroc is None else str(auroc["num_groups"])
            lines.append(f"| {variant} | {' | '.join(cells)} | {groups} |")
        parts.append("\n".join(lines))
    if differences:
        rows = {(r["variant"], r["metric"]): r for r in differences}
        lines = [
            "matched set, variant − none (paired bootstrap 95% CI):",
            "",
            "| variant | AUROC | Spearman | Kendall τ | pairwise acc. | groups |",
            "|---|---|---|---|---|---|",
        ]
        for variant in (v for v in variants if (v, "auroc") in rows):
            cells = [_interval(rows[(variant, m)], "+") if (variant, m) in rows else "-" for m in METRICS]
            lines.append(f"| {variant} | {' | '.join(cells)} | {rows[(variant, 'auroc')]['num_groups']} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def analyze(args: argparse.Namespace) -> list[dict]:
    from recipe.mopd.eval.generation import load_hf

    loaded = load_rollouts(args.rollouts)
    # Every metric compares rewards within a group, so a group whose rollouts share one reward is defined
    # under no variant: scoring it would cost teacher forwards and change no number.
    groups = {uid: rollouts for uid, rollouts in loaded.items() if len({r.score for r in rollouts}) > 1}
    print(f"scoring the {len(groups)} of {len(loaded)} groups whose rewards differ", flush=True)
    tokenizer, model = load_hf(args.teacher, args.dtype)
    base = PeerConfig(
        selection=args.selection,
        success_threshold=args.success_threshold,
        max_peer_tokens=args.max_peer_tokens,
        max_prompt_tokens=args.max_prompt_tokens,
        strip_thinking=args.strip_thinking,
        seed=args.seed,
    )
    records = score_variants(
        tokenizer, model, groups, args.variants, base, args.chat_template_kwargs, args.batch_size
    )
    by_variant = scored_groups(records)
    table = signal_table(by_variant, args.success_threshold, args.num_resamples, args.bootstrap_seed)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "scores.csv", records)
    write_csv(args.out / "metrics.csv", table)
    title = (
        f"teacher {Path(args.teacher).name} on {len(groups)} mixed of {len(loaded)} groups of "
        f"{Path(args.rollouts).name} (95% CI)"
    )
    plot_table(table, args.variants, args.out, title)
    differences = []
    if "none" in by_variant and len(by_variant) > 1:
        differences = paired_differences(
            by_variant, "none", args.success_threshold, args.num_resamples, args.bootstrap_seed
        )
        write_csv(args.out / "differences.csv", differences)
        plot_differences(differences, args.out / "differences.png", title)
    (args.out / "tables.md").write_text(markdown_tables(table, differences, args.variants))
    return table, differences


def sample(args: argparse.Namespace) -> int:
    """Write rollout groups of `--model` on `--data` with their verifier scores, as `analyze` reads them."""
    from transformers import AutoTokenizer

    from recipe.mopd.eval.generation import (
        SamplingConfig,
        chat_prompt_ids,
        generate_hf,
        generate_vllm,
        load_problems,
        verify,
    )

    problems = load_problems([args.data], args.limit)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    prompts = [chat_prompt_ids(tokenizer, p.prompt, args.chat_template_kwargs) for p in problems]
    sampling = SamplingConfig(
        k=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    if args.backend == "vllm":
        samples = generate_vllm(args.model, prompts, sampling, dtype=args.dtype)
    else:
        samples = generate_hf(args.model, prompts, sampling, args.batch_size, args.dtype)
    results = verify(problems, samples)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        for problem, group, scored in zip(problems, samples, results):
            for s, result in zip(group, scored):
                record = {
                    "uid": f"{problem.data_source}#{problem.row}",
                    "data_source": problem.data_source,
                    "prompt": problem.prompt,
                    "response": s.text,
                    "response_ids": s.token_ids,
                    "score": float(result["score"]),
                }
                f.write(json.dumps(record) + "\n")
    return len(problems) * args.n


def _analyze_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recipe.mopd.eval.analysis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--teacher", required=True, help="teacher model (HF directory or hub id)")
    parser.add_argument("--rollouts", required=True, type=Path, help="jsonl or parquet rollout groups")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    # As training selects by default: the fewest distinct teacher prompts per group.
    parser.add_argument("--selection", choices=SELECTIONS, default="shared")
    parser.add_argument("--success-threshold", type=float, default=1.0)
    parser.add_argument("--max-peer-tokens", type=int, default=2048)
    parser.add_argument("--max-prompt-tokens", type=int, default=10240)
    parser.add_argument("--strip-thinking", action="store_true")
    parser.add_argument("--chat-template-kwargs", type=json_object, default={})
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per teacher forward")
    parser.add_argument("--seed", type=int, default=0, help="peer selection seed")
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="teacher weights and compute")
    parser.add_argument("--num-resamples", type=int, default=2000)
    parser.add_argument("--bootstrap-seed", type=int, default=12345)
    return parser


def _sample_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recipe.mopd.eval.analysis sample", description=sample.__doc__
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True, type=Path, help="verl parquet")
    parser.add_argument("--out", required=True, type=Path, help="rollouts .jsonl")
    parser.add_argument("--n", type=int, default=8, help="rollouts per prompt")
    # Training rollouts are sampled at temperature 1 without nucleus filtering.
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=4096)
    parser.add_argument("--limit", type=int, default=None, help="first N prompts only")
    parser.add_argument("--chat-template-kwargs", type=json_object, default={})
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per hf engine batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--backend",
        choices=("hf", "vllm"),
        default="hf",
        help="vllm: vLLM's offline engine (GPU, or CPU from .venv-vllm); hf: the project's CPU engine",
    )
    parser.add_argument("--dtype", choices=DTYPES, default="auto", help="policy weights and compute")
    return parser


def _interval(row: dict, sign: str = "") -> str:
    if row["mean"] is None:
        return "-"
    return f"{row['mean']:{sign}.3f} [{row['ci_low']:{sign}.3f}, {row['ci_high']:{sign}.3f}]"


def main(argv: list[str] | None = None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sample"]:
        args = _sample_parser().parse_args(argv[1:])
        print(f"wrote {sample(args)} rollouts to {args.out}")
        return args.out
    table, differences = analyze(_analyze_parser().parse_args(argv))
    for sample_set in ("both_present", "matched"):
        print(f"{sample_set}:")
        for row in (r for r in table if r["sample_set"] == sample_set):
            print(f"{row['variant']:>6} {row['metric']:>17}: {_interval(row)} ({row['num_groups']} groups)")
    if differences:
        print("matched, difference to none (paired bootstrap):")
        for row in differences:
            print(
                f"{row['variant']:>6} {row['metric']:>17}: {_interval(row, '+')} ({row['num_groups']} groups)"
            )
    return table


if __name__ == "__main__":
    main()
