"""Pieces every source module shares: the CLI shape, reading published files or the hub, and the
validated verl-parquet writer.

A source module turns each source record into a verl row or raises `RowError`; `write_outputs` then
validates every row, writes the good ones and reports the rest by index, field and reason.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from data_prep.validate import RowError, RowProblem, validate_row

LOCAL_SUFFIXES = (".parquet", ".jsonl", ".json")

# LiveCodeBench rows carry megabytes of tests; small row groups keep every Arrow array far from the
# 2 GiB offset limit and let readers stream the file.
ROWS_PER_GROUP = 32


def build_parser(description: str, *, default_seed: int = 0) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help="directory the parquet files are written to")
    parser.add_argument(
        "--local-path",
        type=Path,
        default=None,
        help="a published file (parquet, jsonl or json) or a directory of them, read instead of the hub",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="keep a seeded random sample of N source records"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=default_seed,
        help=f"seed for every random choice (default {default_seed})",
    )
    return parser


# ---------------------------------------------------------------------------------------------------------
# Reading


def iter_records_file(path: Path) -> Iterator[dict]:
    """The records of one published file, streamed where the format allows (parquet, JSON Lines)."""
    if path.suffix == ".parquet":
        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
        return
    if path.suffix == ".json":
        # Publishers use ".json" both for one JSON array and for JSON Lines (SDPO's tooluse files).
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            pass
        else:
            yield from loaded if isinstance(loaded, list) else [loaded]
            return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def iter_records(paths: Iterable[Path]) -> Iterator[dict]:
    for path in paths:
        yield from iter_records_file(path)


def local_files(path: Path) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(f"--local-path {path} does not exist")
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in LOCAL_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"--local-path {path} holds no {'/'.join(LOCAL_SUFFIXES)} files")
    return files


def read_local_records(path: Path) -> list[dict]:
    return list(iter_records(local_files(path)))


def load_hub_records(
    path: str,
    *,
    split: str,
    name: str | None = None,
    data_files: str | None = None,
    columns: Sequence[str] | None = None,
) -> list[dict]:
    """Records of a hub dataset (`path` a repo id), or of remote files (`path` a builder such as "json")."""
    import datasets  # imported on use: it takes seconds that runs on local files do not need

    dataset = datasets.load_dataset(path, name, split=split, data_files=data_files)
    if columns is not None:
        dataset = dataset.select_columns([c for c in columns if c in dataset.column_names])
    return list(dataset)


def sample_records(records: Sequence[Any], limit: int | None, seed: int) -> list[Any]:
    """A seeded random subset of `limit` records, kept in source order so indices stay readable."""
    if limit is None or limit >= len(records):
        return list(records)
    if limit < 0:
        raise ValueError(f"--limit must be >= 0, got {limit}")
    chosen = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in chosen]


def first_present(record: Mapping, keys: Sequence[str]) -> Any:
    """The value of the first of `keys` that the record has, so one module reads every published variant."""
    for key in keys:
        if key in record:
            return record[key]
    return None


# ---------------------------------------------------------------------------------------------------------
# Building and writing


Candidate = dict | RowProblem
Converted = TypeVar("Converted")


def convert_all(
    records: Iterable[tuple[int, Mapping]], convert: Callable[[int, Mapping], Converted]
) -> list[Converted | RowProblem]:
    """Apply `convert(index, record)`; a record it rejects with RowError becomes a RowProblem."""
    candidates: list[Converted | RowProblem] = []
    for index, record in records:
        try:
            candidates.append(convert(index, record))
        except RowError as error:
            candidates.append(error.at(index))
    return candidates


@dataclass
class WriteReport:
    path: Path
    written: int = 0
    skipped: list[RowProblem] = field(default_factory=list)

    def skipped_per_reason(self) -> Counter:
        return Counter(problem.reason for problem in self.skipped)


def _with_large_types(data_type: pa.DataType) -> pa.DataType:
    if pa.types.is_string(data_type):
        return pa.large_string()
    if pa.types.is_binary(data_type):
        return pa.large_binary()
    if pa.types.is_list(data_type):
        return pa.large_list(_with_large_types(data_type.value_type))
    if pa.types.is_struct(data_type):
        return pa.struct([pa.field(f.name, _with_large_types(f.type), f.nullable) for f in data_type])
    return data_type


def rows_to_table(rows: Sequence[Mapping]) -> pa.Table:
    """Arrow table of the rows with every string, binary and list type widened to its 64-bit-offset form.

    pa.array splits a column whose data overflows 32-bit offsets into chunks, and the cast then lets
    parquet readers concatenate them (LiveCodeBench's test payloads exceed 2 GiB).
    """
    column_names = list(dict.fromkeys(name for row in rows for name in row))
    table = pa.table({name: pa.array([row.get(name) for row in rows]) for name in column_names})
    large_schema = pa.schema([pa.field(f.name, _with_large_types(f.type), f.nullable) for f in table.schema])
    return table.cast(large_schema)


def write_verl_parquet(candidates: Iterable[Candidate], path: Path) -> WriteReport:
    """Validate every candidate, write the valid rows to `path` and report the rest.

    When no row survives, no file is left at `path`, so neither an empty nor a stale parquet from an
    earlier run can pass for this run's output.
    """
    report = WriteReport(path=path)
    rows = []
    for candidate in candidates:
        if isinstance(candidate, RowProblem):
            report.skipped.append(candidate)
            continue
        problems = validate_row(candidate)
        if problems:
            report.skipped.append(problems[0])
        else:
            rows.append(candidate)
    if rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows_to_table(rows), path, row_group_size=ROWS_PER_GROUP, compression="zstd")
    else:
        path.unlink(missing_ok=True)
    report.written = len(rows)
    return report


def print_report(report: WriteReport) -> None:
    reasons = ", ".join(f"{reason} x{count}" for reason, count in sorted(report.skipped_per_reason().items()))
    target = report.path if report.written else f"{report.path} (not written: no valid rows)"
    print(
        f"{target}: written {report.written}, skipped {len(report.skipped)}"
        + (f" ({reasons})" if reasons else "")
    )
    for problem in sorted(report.skipped, key=lambda problem: problem.index):
        print(f"  skipped {problem}")


def write_outputs(
    outputs: Mapping[str, Iterable[Candidate]], out_dir: Path, *, filtered: Counter | None = None
) -> int:
    """Write `{file stem: candidates}` under `out_dir`, print the counts; the exit status of a CLI run.

    `filtered` counts records left out on purpose (outside a date window, another domain): they are
    reported but are not failures.
    """
    reports = [
        write_verl_parquet(candidates, out_dir / f"{stem}.parquet") for stem, candidates in outputs.items()
    ]
    for reason, count in sorted((filtered or Counter()).items()):
        print(f"filtered {count} source records: {reason}")
    for report in reports:
        print_report(report)
    total_written = sum(report.written for report in reports)
    total_skipped = sum(len(report.skipped) for report in reports)
    print(f"total: written {total_written}, skipped {total_skipped}")
    if total_written == 0:
        print("error: no row was written", file=sys.stderr)
        return 1
    return 0
