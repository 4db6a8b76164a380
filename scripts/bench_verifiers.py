"""Throughput of our verifiers against verl's built-in scorers, measured in the same run.

    .venv/bin/python scripts/bench_verifiers.py [--rounds 3] [--workers 1 2 4]

Code: the local sandbox (isolation on: bubblewrap or unshare, whatever this machine supports)
against verl's `prime_code` scorer (in-process exec in a forked child, no isolation), called the
way verl's default reward routing calls it (`continuous=True`; `continuous=False` crashes on a
failing program in verl 0.9.1). Both grade the same programs with up to N at a time.
Math: our math verifier against verl's `math_verify` scorer (a 4-process pool), 1 and 4 callers.

Fixtures: tests/fixtures/verifiers/{code,math}_bench.jsonl (regenerate with make_bench_fixtures.py).
Each figure is the median of `--rounds` timed passes after a warm-up. Wall-clock numbers depend on
the machine and its load; the ratios are what to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "verifiers"


def load(name: str) -> list[dict]:
    with open(FIXTURES / name, encoding="utf-8") as rows:
        return [json.loads(line) for line in rows]


def median_seconds(ours, theirs, rounds: int) -> tuple[float, float]:
    """Median wall time of each; the rounds alternate so that a load spike hits both alike."""
    timings: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for run, times in zip((ours, theirs), timings, strict=True):
            started = time.perf_counter()
            run()
            times.append(time.perf_counter() - started)
    return statistics.median(timings[0]), statistics.median(timings[1])


def bench_code(rows: list[dict], worker_counts: list[int], rounds: int) -> list[dict]:
    from verl.utils.reward_score import prime_code

    from verifiers import verify_batch

    n_tests = sum(len(json.loads(row["ground_truth"])["inputs"]) for row in rows)
    batch = [
        {"data_source": "code/bench", "response": r["response"], "ground_truth": r["ground_truth"]}
        for r in rows
    ]

    def ours(workers: int) -> list[bool]:
        return [result["acc"] for result in verify_batch(batch, workers=workers)]

    def prime(workers: int) -> list[bool]:
        def score(row):
            success, _ = prime_code.compute_score(row["response"], row["ground_truth"], continuous=True)
            return success is True or success == 1

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(score, rows))

    ours(1), prime(1)  # warm-up: sandbox probe, imports
    lines = []
    for workers in worker_counts:
        ours_s, prime_s = median_seconds(partial(ours, workers), partial(prime, workers), rounds)
        agreement = sum(a == b for a, b in zip(ours(workers), prime(workers), strict=True)) / len(rows)
        lines.append(
            {
                "workers": workers,
                "ours_tests_per_s": n_tests / ours_s,
                "prime_code_tests_per_s": n_tests / prime_s,
                "ratio": prime_s / ours_s,
                "verdict_agreement": agreement,
            }
        )
    expected = [row["kind"] == "correct" for row in rows]
    print(f"\ncode: {len(rows)} programs, {n_tests} tests; correct-by-construction programs accepted:")
    print(f"  ours {sum(a and e for a, e in zip(ours(1), expected, strict=True))}/{sum(expected)}")
    print(f"{'workers':>8} {'ours tests/s':>14} {'prime_code tests/s':>20} {'ratio':>7} {'agree':>7}")
    for line in lines:
        print(
            f"{line['workers']:>8} {line['ours_tests_per_s']:>14.1f} {line['prime_code_tests_per_s']:>20.1f} "
            f"{line['ratio']:>6.2f}x {line['verdict_agreement']:>7.0%}"
        )
    return lines


def bench_math(rows: list[dict], rounds: int) -> list[dict]:
    from verl.utils.reward_score import math_verify as verl_math_verify

    from verifiers.math_verifier import verdict_cache, verify_math

    def ours(callers: int, subset: list[dict]) -> list[bool]:
        verdict_cache.clear()  # measure checks, not cache hits
        with ThreadPoolExecutor(callers) as pool:
            return list(
                pool.map(lambda row: verify_math(row["response"], row["ground_truth"], workers=4).acc, subset)
            )

    def verl(callers: int, subset: list[dict]) -> list[bool]:
        with ThreadPoolExecutor(callers) as pool:
            return list(
                pool.map(
                    lambda row: verl_math_verify.compute_score(row["response"], row["ground_truth"]) == 1.0,
                    subset,
                )
            )

    ours(4, rows), verl(4, rows)  # warm-up: both start their worker processes
    lines = []
    for kind in ("all", "integer", "symbolic"):
        subset = rows if kind == "all" else [row for row in rows if row["kind"] == kind]
        for callers in (1, 4):
            ours_s, verl_s = median_seconds(
                partial(ours, callers, subset), partial(verl, callers, subset), rounds
            )
            lines.append(
                {
                    "answers": kind,
                    "callers": callers,
                    "ours_checks_per_s": len(subset) / ours_s,
                    "verl_checks_per_s": len(subset) / verl_s,
                    "ratio": verl_s / ours_s,
                }
            )
    expected = [row["correct"] for row in rows]
    ours_right = sum(a == e for a, e in zip(ours(4, rows), expected, strict=True))
    verl_right = sum(a == e for a, e in zip(verl(4, rows), expected, strict=True))
    print(
        f"\nmath: {len(rows)} responses; verdicts matching the fixture labels: ours {ours_right}, verl {verl_right}"
    )
    print(
        f"{'answers':>9} {'callers':>8} {'ours checks/s':>15} {'verl math_verify checks/s':>27} {'ratio':>7}"
    )
    for line in lines:
        print(
            f"{line['answers']:>9} {line['callers']:>8} {line['ours_checks_per_s']:>15.1f} "
            f"{line['verl_checks_per_s']:>27.1f} {line['ratio']:>6.2f}x"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--skip", choices=["code", "math"], action="append", default=[])
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    sys.path.insert(0, str(REPO))

    from verifiers.code.backends import get_backend

    isolation = get_backend("local").isolation
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(
        f"code sandbox: {isolation.mechanism} running {isolation.python} (uid {'65534' if os.geteuid() == 0 else os.geteuid()})"
    )
    results = {}
    if "code" not in args.skip:
        results["code"] = bench_code(load("code_bench.jsonl"), args.workers, args.rounds)
    if "math" not in args.skip:
        results["math"] = bench_math(load("math_bench.jsonl"), args.rounds)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
