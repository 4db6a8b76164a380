"""Shared fixtures: the checked-in source fixtures, every data_prep module run once on them, and the
project's tiny tokenizer.

pytest runs in importlib mode, where test files cannot import this conftest, so its helpers are handed
out as fixtures."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from data_prep import deepmath, livecodebench, math_eval, sciknoweval, toolalpaca

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "data_prep"

MATH_EVAL_FIXTURES = {
    "aime2024": "aime24.jsonl",
    "aime2025": "aime25.jsonl",
    "hmmt_feb2025": "hmmt_feb_2025.jsonl",
    "hmmt_nov2025": "hmmt_nov_2025.jsonl",
}


@dataclass
class Run:
    exit_code: int
    output: str


def run_module(main, argv: list[str]) -> Run:
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        exit_code = main(argv)
    return Run(exit_code, captured.getvalue())


def read_rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


@dataclass
class Prepared:
    out_dir: Path
    runs: dict[str, Run]

    def rows(self, stem: str) -> list[dict]:
        return read_rows(self.out_dir / f"{stem}.parquet")

    def parquet_files(self) -> list[Path]:
        return sorted(self.out_dir.glob("*.parquet"))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def run_cli():
    """`run_cli(module.main, argv)` -> Run(exit_code, printed output)."""
    return run_module


@pytest.fixture(scope="session")
def parquet_rows():
    """`parquet_rows(path)` -> the rows of a parquet file as dicts."""
    return read_rows


@pytest.fixture(scope="session")
def prepared(tmp_path_factory) -> Prepared:
    """Every source module run with its default options on its fixture."""
    out = tmp_path_factory.mktemp("data_prep_out")
    runs = {
        "deepmath": run_module(
            deepmath.main, ["--out", str(out), "--local-path", str(FIXTURES / "math" / "deepmath.jsonl")]
        ),
        "livecodebench": run_module(
            livecodebench.main, ["--out", str(out), "--local-path", str(FIXTURES / "livecodebench")]
        ),
        "sciknoweval": run_module(
            sciknoweval.main, ["--out", str(out), "--local-path", str(FIXTURES / "sciknoweval")]
        ),
        "toolalpaca": run_module(
            toolalpaca.main, ["--out", str(out), "--local-path", str(FIXTURES / "tooluse")]
        ),
    }
    for benchmark, file_name in MATH_EVAL_FIXTURES.items():
        runs[benchmark] = run_module(
            math_eval.main,
            ["--out", str(out), "--benchmark", benchmark, "--local-path", str(FIXTURES / "math" / file_name)],
        )
    return Prepared(out, runs)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """The project's tiny ChatML tokenizer (recipe.mopd.cpu.tiny_model), saved to a directory."""
    from recipe.mopd.cpu.tiny_model import build_tokenizer

    directory = tmp_path_factory.mktemp("tiny_tokenizer")
    build_tokenizer(directory)
    return directory
