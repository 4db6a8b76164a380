"""Throughput of our verifiers against verl's built-in scorers, measured in the same run.

    .venv/bin/python scripts/bench_verifiers.py [--rounds 3] [--workers 1 2 4]

Code: the local sandbox (isolation on: bubblewrap or unshare, whatever this machine supports)
against verl's `prime_code` scorer (in-process exec in a forked child, no isolation), called the
way verl's default reward routing calls it (`continuous=True`; `continuous=False` crashes on a
failing program in verl 0.9.1). Both grade the same programs with up to N at a time.
Math: our math verifier against verl's `math_verify` scorer (a 4-process pool), 1 and 4 callers.
Degenerate outputs: per verifier, p50/p99 latency of one call on degenerate responses (an opener repeated
to the length limit, unclosed tags, runs of capitals, spaces and newlines, nested boxes) as a ratio to
the same verifier on normal responses of the same lengths (2k, 8k and 32k characters); goal p99 <= 3.

Fixtures: tests/fixtures/verifiers/{code,math}_bench.jsonl (regenerate with make_bench_fixtures.py).
Each throughput figure is the median of `--rounds` timed passes after a warm-up. Wall-clock numbers depend on
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


LENGTHS = (2_000, 8_000, 32_000)
TOOL_GOLD = [{"name": "getWeather", "arguments": {"city": "Paris", "days": 3}}]
REASONING = (
    "We first list what is given and what is asked. Let $x$ be the unknown quantity; then the condition "
    "reads $2x + 3 = 11$, so $x = 4$. Checking the second constraint, $x^2 = 16 < 20$ holds, and the "
    "boundary case $x = 5$ fails because $25 > 20$. The same argument covers options A and B.\n"
)
# (name, unit repeated to the length, ending): the shapes a policy emits early in RL.
DEGENERATE = [
    ("boxed opener", "\\boxed{", ""),
    ("nested boxes", "\\boxed{", "5" + "}" * 40),
    ("braces", "{", "}"),
    ("answer tag opener", "<answer>", ""),
    ("capitals in answer tag", "THE ANSWER IS CLEARLY ", "</answer>"),
    ("capitals", "ABCDEFGH ", ""),
    ("spaces", " ", "x"),
    ("newlines", "\n", "x"),
    ("repeated phrase", "Wait, let me recompute the answer. ", ""),
    ("answer label", "**Answer:** ", ""),
    ("tool call opener", "<tool_call>", ""),
    ("action opener", "Action: getWeather\nAction Input: {", ""),
    ("fence opener", "```python\n", ""),
    ("repeated line in a block", "x = 1\n", "```"),
]


def padded(prefix_unit: str, length: int, tail: str) -> str:
    body = prefix_unit * (max(0, length - len(tail)) // len(prefix_unit) + 1)
    return body[: max(0, length - len(tail))] + tail


def normal_corpus(math_rows: list[dict], code_rows: list[dict]) -> dict[str, list[tuple[str, str]]]:
    """(response, ground truth) per verifier: reasoning prose up to each length, then a real answer."""
    corpus: dict[str, list[tuple[str, str]]] = {"math": [], "science": [], "tool": [], "code": []}
    tool_answer = "Thought: I need the forecast.\nAction: getWeather\nAction Input: " + json.dumps(
        TOOL_GOLD[0]["arguments"]
    )
    for length in LENGTHS:
        for row in math_rows[:: max(1, len(math_rows) // 40)]:
            corpus["math"].append((padded(REASONING, length, "\n" + row["response"]), row["ground_truth"]))
        for index, letter in enumerate("ABCD" * 10):
            ending = ("\n<answer>{}</answer>", "\n**Answer:** {}", "\nThe answer is $\\boxed{{{}}}$.")[
                index % 3
            ]
            corpus["science"].append((padded(REASONING, length, ending.format(letter)), "C"))
        for index in range(40):
            answer = tool_answer if index % 2 else tool_answer.replace("Paris", "Lyon")
            corpus["tool"].append((padded(REASONING, length, "\n" + answer), json.dumps(TOOL_GOLD)))
        for row in code_rows[:: max(1, len(code_rows) // 8)]:
            corpus["code"].append((padded(REASONING, length, "\n" + row["response"]), row["ground_truth"]))
    return corpus


def degenerate_corpus(normal: dict[str, list[tuple[str, str]]]) -> dict[str, list[tuple[str, str]]]:
    """Every degenerate shape at every length, graded against each verifier's normal ground truths."""
    corpus: dict[str, list[tuple[str, str]]] = {}
    for verifier, rows in normal.items():
        golds = [gold for _, gold in rows][:: max(1, len(rows) // 3)][:3]
        corpus[verifier] = [
            (padded(unit, length, ending), gold)
            for _, unit, ending in DEGENERATE
            for length in LENGTHS
            for gold in golds
        ]
    return corpus


def latencies(verifier: str, rows: list[tuple[str, str]], rounds: int) -> list[float]:
    from verifiers import compute_score
    from verifiers.math_verifier import verdict_cache

    times = []
    for _ in range(rounds):
        for response, gold in rows:
            verdict_cache.clear()  # measure checks, not cache hits
            started = time.perf_counter()
            result = compute_score(f"{verifier}/bench", response, gold)
            times.append(time.perf_counter() - started)
            if result["reason"] == "timeout" and verifier != "code":
                print(f"  {verifier}: a response hit the deadline: {response[:60]!r}")
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def bench_degenerate(
    math_rows: list[dict], code_rows: list[dict], rounds: int, verifiers: list[str]
) -> list[dict]:
    normal = normal_corpus(math_rows, code_rows)
    degenerate = degenerate_corpus(normal)
    for verifier in verifiers:  # warm-up: worker processes, sandbox probe
        latencies(verifier, normal[verifier][:2], 1)
    lines = []
    for verifier in verifiers:
        usual = latencies(verifier, normal[verifier], rounds)
        odd = latencies(verifier, degenerate[verifier], rounds)
        lines.append(
            {
                "verifier": verifier,
                "normal_p50_ms": 1000 * percentile(usual, 0.5),
                "normal_p99_ms": 1000 * percentile(usual, 0.99),
                "degenerate_p50_ms": 1000 * percentile(odd, 0.5),
                "degenerate_p99_ms": 1000 * percentile(odd, 0.99),
                "p50_ratio": percentile(odd, 0.5) / percentile(usual, 0.5),
                "p99_ratio": percentile(odd, 0.99) / percentile(usual, 0.99),
                "n_normal": len(usual),
                "n_degenerate": len(odd),
            }
        )
    print(f"\ndegenerate outputs ({len(DEGENERATE)} shapes x {len(LENGTHS)} lengths) vs normal responses:")
    print(
        f"{'verifier':>9} {'normal p50/p99 ms':>19} {'degenerate p50/p99 ms':>23} {'p50 ratio':>10} {'p99 ratio':>10}"
    )
    for line in lines:
        print(
            f"{line['verifier']:>9} {line['normal_p50_ms']:>9.2f}/{line['normal_p99_ms']:<9.2f}"
            f" {line['degenerate_p50_ms']:>11.2f}/{line['degenerate_p99_ms']:<11.2f}"
            f" {line['p50_ratio']:>9.2f}x {line['p99_ratio']:>9.2f}x"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--skip",
        choices=["code", "math", "degenerate"],
        action="append",
        default=[],
        help="code/math: the throughput comparisons with verl; degenerate: the degenerate-output latencies",
    )
    parser.add_argument(
        "--degenerate-verifiers",
        nargs="+",
        choices=["math", "science", "tool", "code"],
        default=["math", "science", "tool", "code"],
    )
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
    if "degenerate" not in args.skip:
        results["degenerate"] = bench_degenerate(
            load("math_bench.jsonl"), load("code_bench.jsonl"), args.rounds, args.degenerate_verifiers
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
