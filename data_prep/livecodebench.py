"""LiveCodeBench `code_generation_lite` as verl parquet (`livecodebench_train.parquet`,
`livecodebench_test.parquet`, data_source `code/livecodebench`).

    python -m data_prep.livecodebench --out DIR [--local-path FILE_OR_DIR] [--limit N] [--seed S]
        [--release TAG] [--start-date YYYY-MM-DD] [--end-date YYYY-MM-DD]
        [--split-mode tests|problems] [--train-tests-fraction F] [--test-problems-fraction F] [--time-limit SEC]

Defaults reproduce the paper's "LCB v6": problems with 2025-02-01 <= contest_date < 2025-05-01 (all in
the `v6` file), train and test on the same problems, train seeing a seeded 50% of each problem's tests
and test all of them. `--split-mode problems` instead puts whole problems on either side.

The hub's loading script no longer runs under datasets>=4, so the published `testN.jsonl` files of the
release tag are downloaded with huggingface_hub and parsed here. --local-path takes those jsonl files (a
directory of them is narrowed to the release tag's files) or the parquet conversion (revision refs/pr/6).

Ground truth (what verifiers.verl_reward's code verifier reads): JSON
`{"inputs", "outputs", "fn_name", "public", "time_limit"}` with the public tests first; `public` counts them.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import math
import pickle
import random
import re
import sys
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from data_prep.common import (
    build_parser,
    convert_all,
    iter_records,
    local_files,
    sample_records,
    write_outputs,
)
from data_prep.validate import (
    BAD_GROUND_TRUTH,
    EMPTY_PROMPT,
    MALFORMED_FIELD,
    UNDECODABLE_TESTS,
    RowError,
    RowProblem,
)

HUB_REPO = "livecodebench/code_generation_lite"
DATA_SOURCE = "code/livecodebench"
RELEASE_FILES = ("test.jsonl", "test2.jsonl", "test3.jsonl", "test4.jsonl", "test5.jsonl", "test6.jsonl")
DEFAULT_START = date(2025, 2, 1)
DEFAULT_END = date(2025, 5, 1)
# LiveCodeBench's own per-test timeout, also used by MOPD.
DEFAULT_TIME_LIMIT = 6
# The largest decoded test payload accepted; real ones stay well below, a zlib bomb does not.
MAX_DECODED_BYTES = 1 << 30

INSTRUCTIONS = (
    "You are a coding expert. You will be given a competitive programming problem; write a correct and "
    "efficient Python 3 program that passes all of its tests. You may outline your reasoning first. End your "
    "answer with the complete solution in a single ```python code block."
)
STDIN_NOTE = "Read the input from standard input and write the answer to standard output."
STARTER_NOTE = "Use the following starter code and complete it:"


def release_files(tag: str) -> list[str]:
    """The published jsonl files of a release tag: `release_vN`/`release_latest` are cumulative, `vN` is
    only file N, and `vX_vY` the files X to Y."""
    if tag == "release_latest":
        return list(RELEASE_FILES)
    if match := re.fullmatch(r"release_v(\d+)", tag):
        first, last = 1, int(match[1])
    elif match := re.fullmatch(r"v(\d+)", tag):
        first = last = int(match[1])
    elif match := re.fullmatch(r"v(\d+)_v(\d+)", tag):
        first, last = int(match[1]), int(match[2])
    else:
        raise argparse.ArgumentTypeError(f"unknown release tag {tag!r}")
    if not 1 <= first <= last <= len(RELEASE_FILES):
        raise argparse.ArgumentTypeError(f"release tag {tag!r} is outside v1..v{len(RELEASE_FILES)}")
    return list(RELEASE_FILES[first - 1 : last])


def _release_tag(tag: str) -> str:
    release_files(tag)
    return tag


# ---------------------------------------------------------------------------------------------------------
# Decoding the private tests


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any global (a class, a function such as os.system) is refused, so a
    payload can never make unpickling call code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def _is_plain_data(value: Any) -> bool:
    if value is None or isinstance(value, str | bytes | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_plain_data(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_plain_data(item) for key, item in value.items())
    return False


def _inflate(compressed: bytes) -> bytes:
    inflater = zlib.decompressobj()
    data = inflater.decompress(compressed, MAX_DECODED_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"decoded payload exceeds {MAX_DECODED_BYTES} bytes")
    if not inflater.eof:
        raise ValueError("truncated zlib stream")
    return data


def decode_test_cases(encoded: Any, field: str) -> list[dict]:
    """A published test list: plain JSON, or base64 -> zlib -> pickle -> JSON for the private tests."""
    if isinstance(encoded, list):
        tests = encoded
    elif not isinstance(encoded, str):
        raise RowError(field, UNDECODABLE_TESTS, f"a {type(encoded).__name__}, not a string")
    elif encoded.lstrip().startswith("["):
        try:
            tests = json.loads(encoded)
        except json.JSONDecodeError as error:
            raise RowError(field, UNDECODABLE_TESTS, f"bad JSON: {error}") from None
    else:
        try:
            pickled = _inflate(base64.b64decode("".join(encoded.split()), validate=True))
            # Unpickling arbitrary bytes fails in many ways (EOFError, KeyError, struct.error ...); all of
            # them mean the same thing here.
            payload = _PlainDataUnpickler(io.BytesIO(pickled)).load()
            if isinstance(payload, bytes):
                payload = payload.decode("utf-8")
            tests = json.loads(payload) if isinstance(payload, str) else payload
        except Exception as error:  # noqa: BLE001
            raise RowError(field, UNDECODABLE_TESTS, f"{type(error).__name__}: {error}") from None
        if not _is_plain_data(tests):
            raise RowError(field, UNDECODABLE_TESTS, "payload holds more than plain data")
    if not isinstance(tests, list) or not all(
        isinstance(test, dict) and isinstance(test.get("input"), str) and isinstance(test.get("output"), str)
        for test in tests
    ):
        raise RowError(field, UNDECODABLE_TESTS, "not a list of {input, output} tests")
    return tests


# ---------------------------------------------------------------------------------------------------------
# Problems and rows


@dataclass(frozen=True)
class CodeProblem:
    index: int
    question_id: str
    prompt: str
    inputs: list[str]
    outputs: list[str]
    public_count: int
    fn_name: str | None
    extra_info: dict


def contest_date(record: Mapping) -> datetime:
    raw = record.get("contest_date")
    try:
        value = raw if isinstance(raw, datetime) else datetime.fromisoformat(raw)
    except (TypeError, ValueError):
        raise RowError("contest_date", MALFORMED_FIELD, f"{raw!r} is not an ISO date") from None
    return value.replace(tzinfo=None)


def _metadata(record: Mapping) -> dict:
    raw = record.get("metadata") or {}
    try:
        metadata = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        raise RowError("metadata", MALFORMED_FIELD, "not JSON") from None
    if not isinstance(metadata, dict):
        raise RowError("metadata", MALFORMED_FIELD, "not a JSON object")
    return metadata


def build_prompt(question: str, starter_code: str, fn_name: str | None) -> str:
    if fn_name:
        if not starter_code.strip():
            raise RowError("starter_code", MALFORMED_FIELD, "call-based problem without starter code")
        note = f"{STARTER_NOTE}\n```python\n{starter_code.rstrip()}\n```"
    else:
        note = STDIN_NOTE
    return f"{INSTRUCTIONS}\n\n### Problem\n{question.strip()}\n\n### Format\n{note}"


def parse_problem(index: int, record: Mapping) -> CodeProblem:
    question = record.get("question_content")
    if not isinstance(question, str) or not question.strip():
        raise RowError("question_content", EMPTY_PROMPT)
    fn_name = _metadata(record).get("func_name") or None
    public = decode_test_cases(record.get("public_test_cases", "[]"), "public_test_cases")
    private = decode_test_cases(record.get("private_test_cases", "[]"), "private_test_cases")
    tests = public + private
    if not tests:
        raise RowError("private_test_cases", BAD_GROUND_TRUTH, "the problem has no tests")
    if fn_name is None and any(test.get("testtype") == "functional" for test in tests):
        raise RowError("metadata", BAD_GROUND_TRUTH, "call-based tests but no func_name")
    question_id = str(record.get("question_id") or index)
    return CodeProblem(
        index=index,
        question_id=question_id,
        prompt=build_prompt(question, str(record.get("starter_code") or ""), fn_name),
        inputs=[test["input"] for test in tests],
        outputs=[test["output"] for test in tests],
        public_count=len(public),
        fn_name=fn_name,
        extra_info={
            "question_id": question_id,
            "question_title": str(record.get("question_title") or ""),
            "platform": str(record.get("platform") or ""),
            "difficulty": str(record.get("difficulty") or ""),
            "contest_date": contest_date(record).date().isoformat(),
        },
    )


def to_row(problem: CodeProblem, split: str, kept_tests: Sequence[int], time_limit: float) -> dict:
    ground_truth = {
        "inputs": [problem.inputs[i] for i in kept_tests],
        "outputs": [problem.outputs[i] for i in kept_tests],
        "fn_name": problem.fn_name,
        "public": sum(1 for i in kept_tests if i < problem.public_count),
        "time_limit": time_limit,
    }
    return {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": "user", "content": problem.prompt}],
        "ability": "code",
        "reward_model": {"style": "rule", "ground_truth": json.dumps(ground_truth, ensure_ascii=False)},
        "extra_info": {
            "index": problem.index,
            "split": split,
            "verifier": "code",
            **problem.extra_info,
            "num_tests": len(kept_tests),
        },
    }


def train_test_subset(problem: CodeProblem, fraction: float, seed: int) -> list[int]:
    """A seeded `fraction` of the problem's tests (at least one), in their original order.

    The generator is seeded per problem, so a problem's subset does not depend on which other problems
    were selected.
    """
    test_count = len(problem.inputs)
    keep = max(1, int(test_count * fraction))
    return sorted(random.Random(f"{seed}:{problem.question_id}").sample(range(test_count), keep))


def split_by_tests(candidates, fraction: float, seed: int, time_limit: float) -> dict[str, list]:
    """The paper's protocol: every problem in both files, train with a seeded subset of its tests and
    test with all of them. A record that could not be decoded is reported in both files, as both lack it."""
    train, test = [], []
    for candidate in candidates:
        if isinstance(candidate, RowProblem):
            train.append(candidate)
            test.append(candidate)
            continue
        all_tests = range(len(candidate.inputs))
        train.append(to_row(candidate, "train", train_test_subset(candidate, fraction, seed), time_limit))
        test.append(to_row(candidate, "test", all_tests, time_limit))
    return {"livecodebench_train": train, "livecodebench_test": test}


def split_by_problems(candidates, fraction: float, seed: int, time_limit: float) -> dict[str, list]:
    """A seeded `fraction` of the decodable problems go to test, the rest to train, each with all its tests.

    Records that could not be decoded take no place in the split and are reported in both files.
    """
    problems = [candidate for candidate in candidates if not isinstance(candidate, RowProblem)]
    rejected = [candidate for candidate in candidates if isinstance(candidate, RowProblem)]
    order = list(range(len(problems)))
    random.Random(seed).shuffle(order)
    test_positions = set(order[: math.ceil(len(problems) * fraction)])
    outputs = {"livecodebench_train": list(rejected), "livecodebench_test": list(rejected)}
    for position, problem in enumerate(problems):
        split = "test" if position in test_positions else "train"
        outputs[f"livecodebench_{split}"].append(
            to_row(problem, split, range(len(problem.inputs)), time_limit)
        )
    return outputs


# ---------------------------------------------------------------------------------------------------------
# Loading


def local_release_files(path: Path, release: str) -> list[Path]:
    """The files to read under --local-path: a directory holding the published `testN.jsonl` files is
    narrowed to the release tag's files; anything else (the parquet conversion, one file) is read whole."""
    if path.is_dir() and any((path / name).exists() for name in RELEASE_FILES):
        wanted = [path / name for name in release_files(release)]
        missing = [str(p) for p in wanted if not p.exists()]
        if missing:
            raise FileNotFoundError(f"release {release} needs {', '.join(missing)}")
        return wanted
    return local_files(path)


def downloaded_release_files(release: str) -> list[Path]:
    from huggingface_hub import hf_hub_download

    return [Path(hf_hub_download(HUB_REPO, name, repo_type="dataset")) for name in release_files(release)]


def in_window(indexed_records, start: date, end: date) -> tuple[list, Counter]:
    """The records inside the contest-date window, consumed lazily so that the large files of old
    releases are never held in memory whole."""
    kept, filtered = [], Counter()
    for index, record in indexed_records:
        try:
            day = contest_date(record).date()
        except RowError:
            kept.append((index, record))  # parse_problem reports the bad date with its index
            continue
        if start <= day < end:
            kept.append((index, record))
        else:
            filtered[f"contest_date outside [{start}, {end})"] += 1
    return kept, filtered


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, 1]")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("LiveCodeBench code_generation_lite -> verl parquet")
    parser.add_argument(
        "--release",
        type=_release_tag,
        default="v6",
        help="release_vN, release_latest, vN or vX_vY (default v6, the file holding the paper's window)",
    )
    parser.add_argument(
        "--start-date", type=date.fromisoformat, default=DEFAULT_START, help="first contest date kept"
    )
    parser.add_argument(
        "--end-date", type=date.fromisoformat, default=DEFAULT_END, help="first contest date no longer kept"
    )
    parser.add_argument(
        "--split-mode",
        choices=("tests", "problems"),
        default="tests",
        help="tests: the paper's protocol, the same problems on both sides; problems: disjoint problems",
    )
    parser.add_argument(
        "--train-tests-fraction",
        type=_fraction,
        default=0.5,
        help="share of each problem's tests train sees (tests mode)",
    )
    parser.add_argument(
        "--test-problems-fraction",
        type=_fraction,
        default=0.5,
        help="share of the problems put in test (problems mode)",
    )
    parser.add_argument(
        "--time-limit", type=float, default=DEFAULT_TIME_LIMIT, help="seconds per test, for the verifier"
    )
    args = parser.parse_args(argv)

    if args.local_path:
        files = local_release_files(args.local_path, args.release)
    else:
        files = downloaded_release_files(args.release)
    kept, filtered = in_window(enumerate(iter_records(files)), args.start_date, args.end_date)
    candidates = convert_all(sample_records(kept, args.limit, args.seed), parse_problem)
    if args.split_mode == "tests":
        outputs = split_by_tests(candidates, args.train_tests_fraction, args.seed, args.time_limit)
    else:
        outputs = split_by_problems(candidates, args.test_problems_fraction, args.seed, args.time_limit)
    return write_outputs(outputs, args.out, filtered=filtered)


if __name__ == "__main__":
    sys.exit(main())
