#!/usr/bin/env python
"""MOPD's cost over plain on-policy distillation, measured on the same CPU run configuration.

Runs the real CPU trainer (tiny model, bundled task) with `mopd.mode=contrastive` (2S1F) and with
`mopd.mode=none` (plain OPD: the same teacher and loss, no peers), alternating, and prints
- step time (mean over steps >= 2; step 1 carries warm-up) and the ratio MOPD / OPD (target <= 1.25),
- teacher prompt tokens per step, MOPD vs OPD, and MOPD vs a naive context pasting all n-1 peers.

Usage: .venv/bin/python scripts/bench_mopd_vs_opd.py [--steps 6] [--repeats 1] [hydra overrides ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from recipe.mopd.cpu import tiny_task
from recipe.mopd.cpu.demo import training_command
from recipe.mopd.metrics_report import read_metrics

VARIANTS = {"MOPD 2S1F": ["mopd.mode=contrastive"], "OPD (mode none)": ["mopd.mode=none"]}


def run(assets: dict, steps: int, overrides: list[str], workdir: Path, platform: str = "cpu") -> list[dict]:
    metrics = workdir / "metrics.jsonl"
    command = training_command(
        assets,
        steps,
        ["trainer.logger=[file]", f"trainer.default_local_dir={workdir / 'ckpt'}", *overrides],
        platform=platform,
    )
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": str(metrics), "HF_HUB_OFFLINE": "1"}
    with (workdir / "train.log").open("w") as log:
        completed = subprocess.run(
            command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if completed.returncode != 0:
        sys.exit(f"training failed (rc={completed.returncode}); see {workdir / 'train.log'}")
    return read_metrics(metrics)


def steady(steps: list[dict], key: str) -> list[float]:
    return [s[key] for s in steps if s["step"] >= 2 and key in s]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=1)
    args, overrides = parser.parse_known_args()
    assets = tiny_task.prepare(os.environ.get("MOPD_TEST_CACHE", REPO_ROOT / ".cache" / "test_assets"))
    results: dict[str, dict[str, list[float]]] = {name: {} for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="mopd_bench_") as tmp:
        for repeat in range(args.repeats):
            for name, variant in VARIANTS.items():
                workdir = Path(tmp) / f"{name.split()[0]}_{repeat}"
                workdir.mkdir()
                print(f"running {name} (repeat {repeat + 1}/{args.repeats}) ...", flush=True)
                steps = run(assets, args.steps, [*variant, *overrides], workdir)
                for key in (
                    "timing_s/step",
                    "timing_s/gen",
                    "mopd/teacher_prompt_tokens/mean",
                    "mopd/teacher_prompt_tokens_vs_all_peers",
                    "mopd/teacher_prompt_tokens_vs_student",
                ):
                    results[name].setdefault(key, []).extend(steady(steps, key))
    mopd, opd = (results[name] for name in VARIANTS)
    step_mopd, step_opd = statistics.mean(mopd["timing_s/step"]), statistics.mean(opd["timing_s/step"])
    gen_mopd, gen_opd = statistics.mean(mopd["timing_s/gen"]), statistics.mean(opd["timing_s/gen"])
    tokens_mopd = statistics.mean(mopd["mopd/teacher_prompt_tokens/mean"])
    tokens_opd = statistics.mean(opd["mopd/teacher_prompt_tokens/mean"])
    print(f"\n{'':28}{'MOPD 2S1F':>12}{'OPD':>12}{'ratio':>9}")
    print(
        f"{'step time (s, steps>=2)':28}{step_mopd:12.3f}{step_opd:12.3f}{step_mopd / step_opd:9.2f}  (target <= 1.25)"
    )
    print(f"{'generation + teacher (s)':28}{gen_mopd:12.3f}{gen_opd:12.3f}{gen_mopd / gen_opd:9.2f}")
    print(
        f"{'teacher prompt tokens/sample':28}{tokens_mopd:12.1f}{tokens_opd:12.1f}{tokens_mopd / tokens_opd:9.2f}"
    )
    print(
        f"teacher prompt tokens, MOPD vs a context pasting all n-1 peers: "
        f"{statistics.mean(mopd['mopd/teacher_prompt_tokens_vs_all_peers']):.2f}"
    )


if __name__ == "__main__":
    main()
