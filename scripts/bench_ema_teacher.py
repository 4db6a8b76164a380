#!/usr/bin/env python
"""Step time of the in-engine EMA teacher against the live teacher, on the same CPU and configuration.

Runs `python -m recipe.mopd.main_mopd platform=cpu ...` twice on the tiny task (as scripts/bench_cpu_step.py
does), with the same contrastive 2S1F contexts and JSD(0.5) + tail:
- live: the teacher is the current student on the rollout server (`mopd_jsd`, the teacher's top-k rows
  returned with the prompt log-probs, so its cost sits in `gen`);
- ema:  the paper's EMA self-teacher inside the actor workers (`mopd_jsd_student_topk`, the teacher forward
  runs in `update_actor`, per micro-batch, plus the EMA update after the optimizer step).
Then prints the per-phase medians over steps >= 2 (step 1 carries warm-up) and the ratio ema / live of
the step time.

Usage:
    .venv/bin/python scripts/bench_ema_teacher.py [--steps N] [--repeats R] [--keep DIR] [hydra overrides ...]

Extra arguments are hydra overrides applied to both runs. With --repeats the two runs alternate R times
(on a shared machine alternation keeps load drift out of the ratio) and their steps are pooled.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from bench_cpu_step import prepare_assets, read_timings, run_training

CONTEXTS = ["mopd.mode=contrastive", "mopd.num_success=2", "mopd.num_failure=1", "mopd.jsd_alpha=0.5"]
VARIANTS = {
    "live": [
        "mopd.teacher=live",
        "distillation.distillation_loss.loss_mode=mopd_jsd",
        "distillation.distillation_loss.use_policy_gradient=false",
    ],
    "ema": [
        "mopd.teacher=ema",
        "mopd.ema_rate=0.05",
        "distillation.distillation_loss.loss_mode=mopd_jsd_student_topk",
        "distillation.distillation_loss.use_policy_gradient=false",
    ],
}
PHASES = ("gen", "old_log_prob", "update_actor", "update_weights", "step")


def measured_steps(timings: dict[int, dict[str, float]]) -> list[dict[str, float]]:
    return [timings[s] for s in sorted(timings) if s >= 2] or [timings[s] for s in sorted(timings)]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=6, help="training steps per run (>= 2; step 1 is warm-up)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="alternating live/ema run pairs")
    parser.add_argument("--keep", type=Path, help="keep logs/metrics in this directory")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds before a training run is killed")
    args, overrides = parser.parse_known_args(argv)
    if [o for o in overrides if o.startswith("--")]:
        parser.error("unknown options; hydra overrides look like key=value")
    args.baseline = False

    assets = prepare_assets()
    root_context = tempfile.TemporaryDirectory(prefix="mopd_bench_ema_") if args.keep is None else None
    root = Path(root_context.name) if root_context else args.keep
    steps: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    try:
        for repeat in range(args.repeats):
            for name, variant in VARIANTS.items():
                workdir = root / f"{name}_{repeat}"
                workdir.mkdir(parents=True, exist_ok=True)
                metrics, _ = run_training(assets, args, [*CONTEXTS, *variant, *overrides], workdir)
                steps[name].extend(measured_steps(read_timings(metrics)))
    finally:
        if root_context:
            root_context.cleanup()

    # Medians over the pooled steps: on a shared machine single steps spike, a median does not follow them.
    median = {
        name: {phase: statistics.median(step.get(phase, 0.0) for step in pooled) for phase in PHASES}
        for name, pooled in steps.items()
    }
    print()
    print(
        f"median seconds per step over steps 2..{args.steps} of {args.repeats} run(s) per variant "
        f"({len(steps['live'])} live, {len(steps['ema'])} ema steps)"
    )
    print(f"{'phase':<16}{'live':>10}{'ema':>10}{'ema - live':>12}")
    for phase in PHASES:
        live, ema = median["live"][phase], median["ema"][phase]
        print(f"{phase:<16}{live:>10.3f}{ema:>10.3f}{ema - live:>+12.3f}")
    ratio = median["ema"]["step"] / median["live"]["step"]
    print(f"\nEMA teacher / live teacher step time: {ratio:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
