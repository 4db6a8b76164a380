"""DeepMath-103K, the math training set, as verl parquet (`deepmath_train.parquet`).

    python -m data_prep.deepmath --out DIR [--local-path FILE_OR_DIR] [--limit N] [--seed S]

Source fields: `question`, `final_answer`, `difficulty`, `topic` (the `r1_solution_*` columns are not used).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from data_prep.common import (
    build_parser,
    convert_all,
    load_hub_records,
    read_local_records,
    sample_records,
    write_outputs,
)
from data_prep.math_common import math_row
from data_prep.validate import MALFORMED_FIELD, RowError

HUB_REPO = "zwhe99/DeepMath-103K"
DATA_SOURCE = "math/deepmath"
USED_COLUMNS = ("question", "final_answer", "difficulty", "topic")


def _difficulty(record: Mapping) -> float | None:
    raw = record.get("difficulty")
    if raw is None:
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise RowError("difficulty", MALFORMED_FIELD, f"{raw!r} is not a number") from None


def convert(index: int, record: Mapping) -> dict:
    return math_row(
        data_source=DATA_SOURCE,
        split="train",
        index=index,
        problem=record.get("question"),
        answer=record.get("final_answer"),
        extra_info={"difficulty": _difficulty(record), "topic": str(record.get("topic") or "")},
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser("DeepMath-103K -> verl parquet").parse_args(argv)
    if args.local_path:
        records = read_local_records(args.local_path)
    else:
        records = load_hub_records(HUB_REPO, split="train", columns=USED_COLUMNS)
    chosen = sample_records(list(enumerate(records)), args.limit, args.seed)
    return write_outputs({"deepmath_train": convert_all(chosen, convert)}, args.out)


if __name__ == "__main__":
    sys.exit(main())
