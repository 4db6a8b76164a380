"""What `scripts/gpu_smoke.sh` verifies after its short MOPD run, read from verl's file-logger metrics.

Pure: no verl import, so the checks are unit-tested on hand-written metric rows. Each check is one line
of the report: `ok` or `FAIL`, what it checked and the value it saw.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# vLLM in bf16 against the trainer's fp32/bf16 recomputation: verl's own rule of thumb for a healthy sync.
ROLLOUT_PROBS_DIFF_MAX = 0.1


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def smoke_checks(steps: Sequence[dict], expected_steps: int) -> list[tuple[bool, str]]:
    """[(passed, line)] for the training steps of a smoke run (rows holding `actor/distillation/loss`)."""
    train = [s for s in steps if "actor/distillation/loss" in s]
    checks = [(len(train) == expected_steps, f"{len(train)}/{expected_steps} training steps logged")]
    if not train:
        return checks
    losses = [s["actor/distillation/loss"] for s in train]
    checks.append((all(_finite(v) for v in losses), f"distillation loss finite: {losses}"))
    grad = [s.get("actor/grad_norm") for s in train]
    checks.append((all(_finite(v) for v in grad), f"actor grad norm finite: {grad}"))
    diffs = [s.get("training/rollout_probs_diff_max") for s in train]
    checks.append(
        (
            all(_finite(v) and v < ROLLOUT_PROBS_DIFF_MAX for v in diffs),
            f"vLLM rollout matches the trainer after each weight sync (prob diff < {ROLLOUT_PROBS_DIFF_MAX}): {diffs}",
        )
    )
    ratio = [s.get("mopd/teacher_prompt_tokens_vs_student") for s in train]
    checks.append(
        (
            all(_finite(v) and v >= 1.0 for v in ratio),
            f"teacher contexts built (teacher/student prompt tokens): {ratio}",
        )
    )
    peers = max(s.get("mopd/with_success_peer_frac", 0.0) + s.get("mopd/feedback_frac", 0.0) for s in train)
    checks.append((peers > 0.0, f"some rollouts read a success peer or feedback (max fraction {peers:.2f})"))
    timing = [s.get("timing_s/step") for s in train]
    checks.append((all(_finite(v) for v in timing), f"step time (s): {timing}"))
    return checks


def report(steps: Sequence[dict], expected_steps: int) -> tuple[bool, str]:
    checks = smoke_checks(steps, expected_steps)
    lines = [f"  {'ok  ' if passed else 'FAIL'} {line}" for passed, line in checks]
    return all(passed for passed, _ in checks), "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    from recipe.mopd.metrics_report import read_metrics

    parser = argparse.ArgumentParser(description="Check a gpu_smoke.sh run's metrics.")
    parser.add_argument("metrics")
    parser.add_argument("--steps", type=int, required=True)
    args = parser.parse_args(argv)
    passed, text = report(read_metrics(args.metrics), args.steps)
    print(text)
    print("smoke: PASSED" if passed else "smoke: FAILED")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
