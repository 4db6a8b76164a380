#!/usr/bin/env python
"""GRPO vs plain OPD vs positive (1S) and contrastive (2S1F) MOPD: the same steps, prompts and seeds.

Each (method, seed) is one real CPU training run through `python -m recipe.mopd.main_mopd platform=cpu`.
Runs with the same seed share `data.seed` (the prompts and their order), the rollout sampler's seed and
the peer-selection seed, so within a seed the methods differ only in the method. Writes to --out:
- `steps.csv`: one row per method, seed and step (reward, teacher-signal AUROC, pairwise accuracy, ...),
- `summary.csv`: per method and step, the mean, standard deviation, min and max over seeds,
- `comparison.png`: reward (mean, min-max band over seeds) and teacher-signal AUROC against step,
- `runs/<method>_s<seed>/{metrics.jsonl,train.log}`: each run's metrics and its verl and Ray log.
A run whose metrics already hold every step is reused, so an interrupted comparison resumes.

    # bundled task, tiny model (about 1-2 min per run on 2 cores)
    .venv/bin/python scripts/compare_methods.py --seeds 0 1 2 --steps 8 --out outputs/compare_tiny
    # opt-in: SmolLM2-135M-Instruct on gsm_symbolic (3-9 min per 2-step run on 2 cores), data from
    # `python -m data_prep.gsm_symbolic --out $DATA_DIR --prompt-format one_shot_choice`, vLLM rollout
    .venv-vllm/bin/python scripts/compare_methods.py --task gsm_symbolic --data-dir $DATA_DIR \\
        --platform cpu_vllm --seeds 0 1 2 --steps 2 --out outputs/compare_gsm

GRPO runs verl's own GRPO (no teacher) with the run scripts' baseline settings; the three distillation
methods use the CPU overlay's live teacher and mopd_k1 loss and differ only in `mopd.mode`/peer counts.
Extra arguments are hydra overrides applied to every run.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from recipe.mopd.metrics_report import is_training_step, read_metrics

METHODS = {
    # As scripts/lib/mopd_common.sh runs the GRPO baseline: verl's sync trainer and agent loop, no
    # teacher, no std normalisation, clip-higher 0.28.
    "grpo": [
        "distillation.enabled=false",
        "trainer.v1.trainer_mode=sync",
        "actor_rollout_ref.rollout.agent.agent_loop_manager_class=null",
        "algorithm.adv_estimator=grpo",
        "algorithm.norm_adv_by_std_in_grpo=false",
        "actor_rollout_ref.actor.clip_ratio_high=0.28",
    ],
    "opd": ["mopd.mode=none"],
    "mopd_1s": ["mopd.mode=positive", "mopd.num_success=1", "mopd.num_failure=0"],
    "mopd_2s1f": ["mopd.mode=contrastive", "mopd.num_success=2", "mopd.num_failure=1"],
}
# SmolLM2-135M on gsm_symbolic's one_shot_choice format (README, "Teacher signal on a real model": it
# picks the right option on ~18% of samples at T=0.7, and solves <2% of the free-answer prompts): prompts
# of ~300 tokens, 8 rollouts so that groups mix, 2 prompts a step so that a step fits 2 cores, and room
# for a one-shot prompt plus 3 peers of 128 tokens in the teacher context.
REAL_TASK_OVERRIDES = [
    "data.train_batch_size=2",
    "actor_rollout_ref.actor.ppo_mini_batch_size=2",
    "data.max_prompt_length=384",
    "data.max_response_length=128",
    "actor_rollout_ref.rollout.n=8",
    "actor_rollout_ref.rollout.temperature=0.7",
    "actor_rollout_ref.rollout.max_model_len=1536",
    "actor_rollout_ref.actor.optim.lr=1e-5",
    "distillation.distillation_loss.topk=100",
    "mopd.max_peer_tokens=128",
    "mopd.max_prompt_tokens=1024",
    # bf16 as on GPUs: 1.8x the fp32 update on these AMX CPUs. Padded batches: on packed sequences (remove
    # padding) sdpa attends through a block-diagonal mask over all of them, 1.6x slower here. 135M fits
    # without activation checkpointing. Together a step takes 150 s instead of 275 s (2S1F, vLLM backend).
    "actor_rollout_ref.actor.fsdp_config.mixed_precision.param_dtype=bf16",
    "actor_rollout_ref.rollout.dtype=bfloat16",
    "actor_rollout_ref.model.use_remove_padding=false",
    "actor_rollout_ref.model.enable_gradient_checkpointing=false",
]
COLUMNS = {
    "reward": "critic/score/mean",
    "auroc": "mopd/signal/auroc",
    "pairwise_accuracy": "mopd/signal/pairwise_accuracy",
    "with_success_peer_frac": "mopd/with_success_peer_frac",
    "with_failure_peer_frac": "mopd/with_failure_peer_frac",
    "step_s": "timing_s/step",
}


def seed_overrides(seed: int) -> list[str]:
    return [f"data.seed={seed}", f"actor_rollout_ref.rollout.seed={seed}", f"mopd.seed={seed}"]


def run_overrides(method: str, seed: int, run_dir: Path, extra: list[str]) -> list[str]:
    """Hydra overrides of one run; `extra` comes last, so it wins. Raises KeyError for an unknown method."""
    return [
        *METHODS[method],
        *seed_overrides(seed),
        "trainer.logger=[file]",
        "trainer.val_before_train=false",
        f"trainer.default_local_dir={run_dir / 'checkpoints'}",
        f"trainer.experiment_name={method}_s{seed}",
        *extra,
    ]


def task_assets(task: str, data_dir: Path | None, cache: Path) -> tuple[dict, list[str]]:
    """(model/train/val paths, task overrides) for `tiny_add` (built and cached) or `gsm_symbolic`."""
    if task == "tiny_add":
        from recipe.mopd.cpu import tiny_task

        return tiny_task.prepare(cache), []
    if data_dir is None:
        raise SystemExit(
            "--task gsm_symbolic needs --data-dir "
            "(python -m data_prep.gsm_symbolic --out DIR --prompt-format one_shot_choice)"
        )
    train, val = data_dir / "gsm_symbolic_train.parquet", data_dir / "gsm_symbolic_test.parquet"
    missing = [str(p) for p in (train, val) if not p.exists()]
    if missing:
        raise SystemExit(
            f"missing {missing}: run python -m data_prep.gsm_symbolic --out {data_dir} "
            "--prompt-format one_shot_choice"
        )
    from recipe.mopd.models import smollm2

    model = smollm2.materialize()
    return {"model": str(model), "train": str(train), "val": str(val)}, list(REAL_TASK_OVERRIDES)


def complete(metrics_path: Path, steps: int) -> bool:
    if not metrics_path.exists():
        return False
    return sum(1 for s in read_metrics(metrics_path) if is_training_step(s)) >= steps


def step_rows(method: str, seed: int, steps: list[dict]) -> list[dict]:
    """One CSV row per training step; a metric the run did not log (AUROC under GRPO) is empty."""
    rows = []
    for step in steps:
        if not is_training_step(step):
            continue
        row = {"method": method, "seed": seed, "step": step["step"]}
        for name, key in COLUMNS.items():
            value = step.get(key)
            row[name] = value if isinstance(value, (int, float)) and math.isfinite(value) else ""
        rows.append(row)
    return rows


def summarize(rows: list[dict], metrics: tuple[str, ...] = ("reward", "auroc")) -> list[dict]:
    """Per (method, step, metric) over seeds: mean, sd (0 for one seed), min, max, seeds counted."""
    cells: dict[tuple[str, int, str], list[float]] = {}
    for row in rows:
        for metric in metrics:
            if row[metric] != "":
                cells.setdefault((row["method"], int(row["step"]), metric), []).append(float(row[metric]))
    return [
        {
            "method": method,
            "step": step,
            "metric": metric,
            "mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
            "num_seeds": len(values),
        }
        for (method, step, metric), values in sorted(cells.items())
    ]


def final_table(rows: list[dict], last: int) -> list[dict]:
    """Per method: reward of the first step and mean reward over the last `last` steps, each as mean and
    sd over seeds (a seed's value is its own mean first); mean AUROC over all steps and seeds."""
    table = []
    for method in dict.fromkeys(r["method"] for r in rows):
        by_seed: dict[int, list[dict]] = {}
        for row in rows:
            if row["method"] == method:
                by_seed.setdefault(int(row["seed"]), []).append(row)
        first, end = [], []
        for seed_rows in by_seed.values():
            seed_rows.sort(key=lambda r: int(r["step"]))
            first.append(float(seed_rows[0]["reward"]))
            tail = seed_rows[-last:]
            end.append(statistics.fmean(float(r["reward"]) for r in tail))
        aurocs = [float(r["auroc"]) for r in rows if r["method"] == method and r["auroc"] != ""]
        table.append(
            {
                "method": method,
                "seeds": len(by_seed),
                "reward_first": statistics.fmean(first),
                "reward_first_sd": statistics.stdev(first) if len(first) > 1 else 0.0,
                "reward_last": statistics.fmean(end),
                "reward_last_sd": statistics.stdev(end) if len(end) > 1 else 0.0,
                "auroc_mean": statistics.fmean(aurocs) if aurocs else None,
            }
        )
    return table


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def metric_series(summary: list[dict], method: str, metric: str) -> tuple[list[int], ...]:
    """(steps, mean, min, max) of one method's metric over every step it logged, NaN where the metric is
    undefined (AUROC on a step without a mixed group), so that a plotted line breaks there."""
    points = {int(r["step"]): r for r in summary if r["method"] == method and r["metric"] == metric}
    steps = sorted({int(r["step"]) for r in summary if r["method"] == method})
    columns = [
        [float(points[s][field]) if s in points else math.nan for s in steps]
        for field in ("mean", "min", "max")
    ]
    return (steps, *columns)


def plot(summary: list[dict], out_png: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for ax, metric, label in (
        (axes[0], "reward", "reward (mean over seeds, band: min-max)"),
        (axes[1], "auroc", "teacher-signal AUROC per step (mean, band: min-max)"),
    ):
        present = {r["method"] for r in summary}
        methods = [m for m in METHODS if m in present] + sorted(present - set(METHODS))
        for index, method in enumerate(methods):
            color = f"C{index}"  # one colour per method in both panels, even where it logs no AUROC
            steps, mean, low, high = metric_series(summary, method, metric)
            if all(math.isnan(v) for v in mean):
                continue
            ax.plot(steps, mean, marker="o", label=method, color=color)
            ax.fill_between(steps, low, high, alpha=0.15, color=color)
        if metric == "auroc":
            ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


def train(command: list[str], run_dir: Path, timeout_s: int, retries: int = 1) -> None:
    """One training run, its output in run_dir/train.log; a failed attempt is retried `retries` times
    (on a crowded 2-core machine Ray's start-up can miss its RPC deadline) before SystemExit."""
    env = {
        **os.environ,
        "VERL_FILE_LOGGER_PATH": str(run_dir / "metrics.jsonl"),
        "HF_HUB_OFFLINE": "1",
        "RAY_DEDUP_LOGS": "0",
    }
    for attempt in range(retries + 1):
        (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        log_path = run_dir / ("train.log" if attempt == 0 else f"train.retry{attempt}.log")
        with open(log_path, "w") as log:
            completed = subprocess.run(
                command,
                cwd=run_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
        if completed.returncode == 0:
            return
        print(f"{run_dir.name}: attempt {attempt + 1} failed (exit {completed.returncode}); log: {log_path}")
    raise SystemExit(f"{run_dir.name} failed {retries + 1} times; logs in {run_dir}")


def report(out: Path, rows: list[dict], steps: int, title: str) -> list[dict]:
    write_csv(out / "steps.csv", rows)
    summary = summarize(rows)
    write_csv(out / "summary.csv", summary)
    plot(summary, out / "comparison.png", title)
    last = max(1, min(3, steps // 2))
    table = final_table(rows, last)
    print(f"\n{'method':<10} {'seeds':>5} {'reward step 1':>15} {f'reward last {last}':>15} {'AUROC':>7}")
    for row in table:
        auroc = "-" if row["auroc_mean"] is None else f"{row['auroc_mean']:.3f}"
        print(
            f"{row['method']:<10} {row['seeds']:>5} {row['reward_first']:>8.3f} ± {row['reward_first_sd']:.3f}"
            f" {row['reward_last']:>8.3f} ± {row['reward_last_sd']:.3f} {auroc:>7}"
        )
    print(f"\n{out / 'steps.csv'}\n{out / 'summary.csv'}\n{out / 'comparison.png'}")
    return table


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--task", choices=("tiny_add", "gsm_symbolic"), default="tiny_add")
    parser.add_argument("--data-dir", type=Path, help="directory of gsm_symbolic_{train,test}.parquet")
    parser.add_argument(
        "--platform",
        choices=("cpu", "cpu_vllm"),
        default="cpu",
        help="rollout backend: cpu (transformers) or cpu_vllm (verl's vLLM server; run from .venv-vllm)",
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/compare_methods"))
    parser.add_argument("--timeout-s", type=int, default=3600, help="per run")
    parser.add_argument("--retries", type=int, default=1, help="attempts after a failed run")
    parser.add_argument(
        "--report-only", action="store_true", help="tabulate and plot the runs already in --out, train none"
    )
    args, extra = parser.parse_known_args(argv)
    out = args.out.resolve()
    rows: list[dict] = []
    if not args.report_only:
        assets, task_overrides = task_assets(
            args.task,
            args.data_dir,
            Path(os.environ.get("MOPD_TEST_CACHE", REPO_ROOT / ".cache/test_assets")),
        )
        from recipe.mopd.cpu.demo import training_command

    # Seeds outermost: a comparison cut short still holds every method for the seeds it finished.
    for seed in args.seeds:
        for method in args.methods:
            run_dir = out / "runs" / f"{method}_s{seed}"
            metrics = run_dir / "metrics.jsonl"
            if not args.report_only and not complete(metrics, args.steps):
                run_dir.mkdir(parents=True, exist_ok=True)
                command = training_command(
                    assets,
                    args.steps,
                    run_overrides(method, seed, run_dir, [*task_overrides, *extra]),
                    platform=args.platform,
                )
                started = time.monotonic()
                print(f"{method} seed {seed}: training {args.steps} steps ...", flush=True)
                train(command, run_dir, args.timeout_s, args.retries)
                print(f"{method} seed {seed}: done in {time.monotonic() - started:.0f} s", flush=True)
            if complete(metrics, args.steps):
                logged = [s for s in read_metrics(metrics) if s["step"] <= args.steps]
                rows.extend(step_rows(method, seed, logged))
            elif args.report_only:
                # A run still in progress (or cut short) would compare fewer steps than the others.
                print(f"{method} seed {seed}: not finished, left out")
    if not rows:
        raise SystemExit(f"no finished runs under {out / 'runs'}")
    finished_seeds = sorted({int(row["seed"]) for row in rows})
    title = f"{args.task}: {', '.join(args.methods)}; seeds {finished_seeds} (finished runs)"
    return report(out, rows, args.steps, title)


if __name__ == "__main__":
    main()
