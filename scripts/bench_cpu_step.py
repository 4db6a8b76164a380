#!/usr/bin/env python
"""Where a CPU training step spends its time, from the real trainer's own timers.

Runs `python -m recipe.mopd.main_mopd platform=cpu ...` on the tiny task for a few steps, reads the
`timing_s/*` metrics from verl's file logger and prints each phase's seconds and share of the step for
steps >= 2 (step 1 carries warm-up). Then, unless --no-server-bench, measures how much the hf rollout
server's request batching buys on the two request shapes a step sends it.

Usage:
    .venv/bin/python scripts/bench_cpu_step.py [--steps N] [--baseline] [--keep DIR] [hydra overrides ...]

Every argument that is not an option of this script is passed to the trainer as a hydra override, after
the script's own, so MOPD variants can be compared (e.g. `mopd.mode=none`). `--baseline` turns the MOPD
machinery off and runs verl's plain GRPO step, the reference to compare MOPD's overhead against.
Absolute seconds depend on the machine; compare shares and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from recipe.mopd.cpu.demo import training_command

# Plain verl GRPO on the same config: verl's own trainer mode, agent loop manager and loss.
BASELINE_OVERRIDES = [
    "++distillation.enabled=false",
    "++trainer.v1.trainer_mode=sync",
    "++actor_rollout_ref.rollout.agent.agent_loop_manager_class=null",
]
PHASE_ORDER = [
    "gen",
    "reward",
    "old_log_prob",
    "ref",
    "values",
    "adv",
    "update_critic",
    "update_actor",
    "update_weights",
]


def cache_dir() -> Path:
    configured = os.environ.get("MOPD_TEST_CACHE")
    return Path(configured).expanduser() if configured else REPO_ROOT / ".cache" / "test_assets"


def prepare_assets() -> dict:
    from recipe.mopd.cpu.tiny_task import prepare

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    return prepare(root)


def run_training(
    assets: dict, args: argparse.Namespace, overrides: list[str], workdir: Path
) -> tuple[Path, float]:
    metrics = workdir / "metrics.jsonl"
    log = workdir / "train.log"
    command = training_command(
        assets,
        args.steps,
        [
            "algorithm.adv_estimator=grpo",
            "trainer.logger=[console,file]",
            f"trainer.default_local_dir={workdir / 'checkpoints'}",
            f"hydra.run.dir={workdir / 'hydra'}",
            *(BASELINE_OVERRIDES if args.baseline else []),
            *overrides,
        ],
    )
    env = dict(os.environ, VERL_FILE_LOGGER_PATH=str(metrics), HF_HUB_OFFLINE="1", VERL_PLATFORM="cpu")
    print("training:", " ".join(command[3:]), flush=True)
    print(f"log: {log}", flush=True)
    start = time.perf_counter()
    with log.open("w") as handle:
        completed = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=args.timeout,
            check=False,
        )
    wall = time.perf_counter() - start
    if completed.returncode != 0 or not metrics.exists():
        tail = log.read_text(errors="replace").splitlines()[-40:]
        sys.exit(f"training failed (rc={completed.returncode}); last lines of {log}:\n" + "\n".join(tail))
    return metrics, wall


def read_timings(metrics: Path) -> dict[int, dict[str, float]]:
    steps: dict[int, dict[str, float]] = {}
    for line in metrics.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        timings = {
            k[len("timing_s/") :]: float(v) for k, v in record["data"].items() if k.startswith("timing_s/")
        }
        if timings:
            steps.setdefault(int(record["step"]), {}).update(timings)
    return steps


def replay_buffer_poll_interval() -> float | None:
    """verl 0.9.1's V1 ReplayBuffer re-checks for a finished batch every `poll_interval` s (not configurable)."""
    try:
        import inspect

        from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

        return float(inspect.signature(ReplayBuffer.__init__).parameters["poll_interval"].default)
    except (ImportError, KeyError, AttributeError, TypeError, ValueError):  # informational only
        return None


def print_step_table(steps: dict[int, dict[str, float]], wall: float) -> float:
    measured = [s for s in sorted(steps) if s >= 2] or sorted(steps)
    if measured == sorted(steps) and 1 in steps:
        print("note: only step 1 was logged; it includes warm-up")
    keys = sorted({k for s in measured for k in steps[s]} - {"step"})
    keys.sort(key=lambda k: (PHASE_ORDER.index(k) if k in PHASE_ORDER else len(PHASE_ORDER), k))
    step_mean = statistics.mean(steps[s]["step"] for s in measured)

    header = (
        f"{'phase':<22}"
        + "".join(f"{'step ' + str(s):>10}" for s in measured)
        + f"{'mean s':>10}{'share':>8}"
    )
    print()
    print(f"per-step timings (verl timing_s/*), steps {measured[0]}..{measured[-1]}")
    print(header)
    print("-" * len(header))
    accounted = 0.0
    for key in keys:
        values = [steps[s].get(key, 0.0) for s in measured]
        mean = statistics.mean(values)
        if key in PHASE_ORDER:
            accounted += mean
        row = f"{key:<22}" + "".join(f"{v:>10.3f}" for v in values)
        print(row + f"{mean:>10.3f}{mean / step_mean:>8.1%}")
    rest = step_mean - accounted
    print(f"{'(outside phases)':<22}" + " " * 10 * len(measured) + f"{rest:>10.3f}{rest / step_mean:>8.1%}")
    row = f"{'step':<22}" + "".join(f"{steps[s]['step']:>10.3f}" for s in measured)
    print(row + f"{step_mean:>10.3f}{1:>8.1%}")
    print()
    if 1 in steps and steps[1].get("step"):
        print(f"warm-up: step 1 took {steps[1]['step'] / step_mean:.1f}x a later step")
    print(
        f"steady steps are {sum(steps[s]['step'] for s in measured) / wall:.1%} of the run's wall time "
        f"({wall:.0f} s incl. Ray/model start-up)"
    )
    gen_mean = statistics.mean(steps[s].get("gen", 0.0) for s in measured)
    poll = replay_buffer_poll_interval()
    if poll and gen_mean > 0:
        polls = round(gen_mean / poll)
        if polls >= 1 and abs(gen_mean - polls * poll) < 0.15 * poll:
            print(
                f"note: timing_s/gen ~ {polls} x {poll:g} s, verl's ReplayBuffer poll interval: on CPU the rollout "
                "finishes well inside one poll, so gen mostly measures that wait (see the server bench below)"
            )
    return gen_mean


async def _timed_burst(
    server, requests: list[tuple[list[int], dict]], concurrent: bool
) -> tuple[float, int, int]:
    before = await server.stats.remote()
    start = time.perf_counter()
    if concurrent:
        await asyncio.gather(
            *[
                server.generate.remote(ids, params, request_id=f"c{i}")
                for i, (ids, params) in enumerate(requests)
            ]
        )
    else:
        for i, (ids, params) in enumerate(requests):
            await server.generate.remote(ids, params, request_id=f"s{i}")
    elapsed = time.perf_counter() - start
    after = await server.stats.remote()
    return (
        elapsed,
        after["num_batches"] - before["num_batches"],
        after["num_requests"] - before["num_requests"],
    )


def bench_server(assets: dict, gen_mean: float | None = None, repeats: int = 3) -> None:
    """Batching effectiveness of HFRolloutServer on one step's two request shapes (the overlay's sizes)."""
    import ray
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.workers.config import RolloutConfig

    from recipe.mopd.cpu.hf_rollout import HFRolloutServer
    from recipe.mopd.cpu.tiny_task import make_rows

    tokenizer = AutoTokenizer.from_pretrained(assets["model"])
    rows = make_rows(4, seed=5)
    prompts = [
        tokenizer.apply_chat_template(
            r["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False
        )
        for r in rows
    ]
    answer = tokenizer.encode(" \\boxed{12}", add_special_tokens=False) + [tokenizer.eos_token_id]
    n = 4
    # Rollout: train_batch_size 4 prompts x n=4 samples, as the agent loop sends them.
    sample = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "logprobs": True, "max_tokens": 16}
    rollout = [(list(p), sample) for p in prompts for _ in range(n)]
    # Teacher scoring: each rollout's context with peers prepended (~3x the prompt, as MOPD's are).
    score = {"max_tokens": 1, "temperature": 1.0, "prompt_logprobs": 0}
    scoring = [(list(p) * 3 + answer * (1 + k), score) for p in prompts for k in range(n)]

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        config = RolloutConfig(name="hf", prompt_length=64, response_length=16, max_model_len=1024, seed=0)
        model_config = OmegaConf.create(
            {"path": assets["model"], "override_config": {"attn_implementation": "sdpa"}}
        )
        server = (
            ray.remote(HFRolloutServer)
            .options(num_cpus=0, max_concurrency=64)
            .remote(config=config, model_config=model_config, replica_rank=0)
        )
        ray.get(server.stats.remote())

        async def measure(requests):
            await _timed_burst(server, requests, concurrent=True)  # warm-up
            sequential, concurrent, batches = [], [], []
            for _ in range(repeats):
                sequential.append((await _timed_burst(server, requests, concurrent=False))[0])
                elapsed, num_batches, _ = await _timed_burst(server, requests, concurrent=True)
                concurrent.append(elapsed)
                batches.append(num_batches)
            return statistics.median(sequential), statistics.median(concurrent), statistics.median(batches)

        print()
        print(f"hf rollout server batching (standalone actor, median of {repeats})")
        header = f"{'workload':<30}{'requests':>9}{'batches':>9}{'req/batch':>11}{'speed-up':>10}"
        print(header + (f"{'of gen':>9}" if gen_mean else ""))
        for name, requests in (("rollout sampling (n=4)", rollout), ("teacher prompt scoring", scoring)):
            sequential, concurrent, batches = asyncio.run(measure(requests))
            row = (
                f"{name:<30}{len(requests):>9}{batches:>9.0f}{len(requests) / batches:>11.1f}"
                f"{sequential / concurrent:>9.1f}x"
            )
            print(row + (f"{concurrent / gen_mean:>9.1%}" if gen_mean else ""))
        print("speed-up: one-request-at-a-time time / all-concurrent time on the same server")
        if gen_mean:
            print("of gen: the all-concurrent burst's time / the trainer's mean timing_s/gen")
    finally:
        ray.shutdown()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3, help="training steps (>= 2; step 1 is warm-up)")
    parser.add_argument("--baseline", action="store_true", help="plain verl GRPO, MOPD off")
    parser.add_argument("--keep", type=Path, help="keep logs/metrics in this directory")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds before the training run is killed")
    parser.add_argument(
        "--no-server-bench", action="store_true", help="skip the rollout-server batching bench"
    )
    args, overrides = parser.parse_known_args(argv)
    unknown = [o for o in overrides if o.startswith("--")]
    if unknown:
        parser.error(f"unknown options {unknown}; hydra overrides look like key=value")
    os.environ["HF_HUB_OFFLINE"] = "1"

    assets = prepare_assets()
    print(f"tiny model: {assets['model']} (sampled accuracy {assets['sampled_accuracy_t1']:.3f})")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        workdir_context = None
        workdir = args.keep
    else:
        workdir_context = tempfile.TemporaryDirectory(prefix="mopd_bench_")
        workdir = Path(workdir_context.name)
    try:
        metrics, wall = run_training(assets, args, overrides, workdir)
        steps = read_timings(metrics)
        if not steps:
            sys.exit(f"no timing_s/* metrics in {metrics}")
        gen_mean = print_step_table(steps, wall)
    finally:
        if workdir_context is not None:
            workdir_context.cleanup()
    if not args.no_server_bench:
        bench_server(assets, gen_mean)


if __name__ == "__main__":
    main(sys.argv[1:])
