"""The math eval sets AIME 2024, AIME 2025, HMMT Feb 2025 and HMMT Nov 2025 as verl parquet
(`<benchmark>_test.parquet`, data_source `math/<benchmark>`).

    python -m data_prep.math_eval --out DIR [--benchmark NAME ...] [--local-path FILE_OR_DIR] [--limit N] [--seed S]

Without --benchmark every benchmark is written; --local-path needs exactly one --benchmark. The published
copies name their fields differently (`problem`/`Problem`/`question`; `answer`/`Answer`, or only a
`solution` ending in `\\boxed{N}` as in math-ai/aime24), so each field is read from the first name present.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from data_prep.common import (
    build_parser,
    convert_all,
    first_present,
    load_hub_records,
    read_local_records,
    sample_records,
    write_outputs,
)
from data_prep.math_common import last_boxed_content, math_row


@dataclass(frozen=True)
class Benchmark:
    name: str
    hub_repo: str
    hub_split: str


# The AIME copies are the ones the MOPD paper evaluated on; MathArena publishes both HMMT rounds.
BENCHMARKS = {
    benchmark.name: benchmark
    for benchmark in (
        Benchmark("aime2024", "math-ai/aime24", "test"),
        Benchmark("aime2025", "math-ai/aime25", "test"),
        Benchmark("hmmt_feb2025", "MathArena/hmmt_feb_2025", "train"),
        Benchmark("hmmt_nov2025", "MathArena/hmmt_nov_2025", "train"),
    )
}

PROBLEM_KEYS = ("problem", "Problem", "question")
ANSWER_KEYS = ("answer", "Answer", "final_answer")
SOLUTION_KEYS = ("solution", "Solution")
ID_KEYS = ("id", "ID", "problem_idx")


def _raw_answer(record: Mapping):
    if any(key in record for key in ANSWER_KEYS):
        return first_present(record, ANSWER_KEYS)
    solution = first_present(record, SOLUTION_KEYS)
    return last_boxed_content(solution) if isinstance(solution, str) else None


def converter(benchmark: Benchmark):
    def convert(index: int, record: Mapping) -> dict:
        source_id = first_present(record, ID_KEYS)
        return math_row(
            data_source=f"math/{benchmark.name}",
            split="test",
            index=index,
            problem=first_present(record, PROBLEM_KEYS),
            answer=_raw_answer(record),
            extra_info={
                "benchmark": benchmark.name,
                "source_id": "" if source_id is None else str(source_id),
            },
        )

    return convert


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("AIME / HMMT eval sets -> verl parquet")
    parser.add_argument(
        "--benchmark", action="append", choices=sorted(BENCHMARKS), help="repeatable; default: all of them"
    )
    args = parser.parse_args(argv)
    names = args.benchmark or list(BENCHMARKS)
    if args.local_path and len(names) != 1:
        parser.error("--local-path holds one benchmark: name it with a single --benchmark")
    outputs = {}
    for name in names:
        benchmark = BENCHMARKS[name]
        if args.local_path:
            records = read_local_records(args.local_path)
        else:
            records = load_hub_records(benchmark.hub_repo, split=benchmark.hub_split)
        chosen = sample_records(list(enumerate(records)), args.limit, args.seed)
        outputs[f"{name}_test"] = convert_all(chosen, converter(benchmark))
    return write_outputs(outputs, args.out)


if __name__ == "__main__":
    sys.exit(main())
