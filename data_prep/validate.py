"""Schema check for verl rows, used by every writer and on its own:

    python -m data_prep.validate FILE.parquet [FILE.parquet ...]

A row passes when verl can load it (`data_source`, a non-empty chat `prompt`, `ability`,
`reward_model{style: "rule", ground_truth}`, `extra_info{index, split, verifier}`) and its ground truth is
in the format the matching verifier (`verifiers.verl_reward`) reads. The command prints each bad row with
its index and field, counts per reason, and exits 1 when any row is bad.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from verifiers.code.tests_spec import parse_code_tests
from verifiers.errors import GroundTruthError

VERIFIERS = ("math", "code", "science", "tool")
CHAT_ROLES = ("system", "user", "assistant")

MISSING_ANSWER = "missing answer"
EMPTY_PROMPT = "empty prompt"
UNDECODABLE_TESTS = "undecodable tests"
BAD_GROUND_TRUTH = "ground truth not in verifier format"
MALFORMED_FIELD = "malformed field"

# verl's multi-turn loop (`agent_name: tool_agent`); rows without `agent_name` run the default single turn.
AGENT_NAMES = ("single_turn_agent", "tool_agent")

SCIENCE_ANSWER = re.compile(r"[A-Z]|True|False")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
TOOL_CALL_REQUIRED = {"name", "arguments"}
TOOL_CALL_KEYS = TOOL_CALL_REQUIRED | {"allowed"}


@dataclass(frozen=True)
class RowProblem:
    index: int
    field: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"row {self.index} [{self.field}]: {self.reason}" + (
            f" ({self.detail})" if self.detail else ""
        )


class RowError(ValueError):
    """Raised by a source converter for a record that cannot become a valid row."""

    def __init__(self, field: str, reason: str, detail: str = ""):
        super().__init__(f"[{field}] {reason}" + (f" ({detail})" if detail else ""))
        self.field = field
        self.reason = reason
        self.detail = detail

    def at(self, index: int) -> RowProblem:
        return RowProblem(index, self.field, self.reason, self.detail)


def _is_nonempty_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _prompt_problem(prompt: Any) -> tuple[str, str] | None:
    if not isinstance(prompt, list | tuple) or len(prompt) == 0:
        return EMPTY_PROMPT, "no messages"
    for position, message in enumerate(prompt):
        if not isinstance(message, Mapping) or message.get("role") not in CHAT_ROLES:
            return MALFORMED_FIELD, f"message {position} is not a {{role, content}} chat message"
        if not _is_nonempty_text(message.get("content")):
            return EMPTY_PROMPT, f"message {position} has no content"
    if prompt[-1]["role"] != "user":
        return MALFORMED_FIELD, "the last message must come from the user"
    return None


def math_ground_truth_problem(ground_truth: str) -> str | None:
    depth = 0
    for char in ground_truth:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        return "unbalanced braces"
    if "\\boxed" in ground_truth:
        return "answer still wrapped in \\boxed"
    return None


def code_ground_truth_problem(ground_truth: str) -> str | None:
    """The code verifier's own reading of the test spec, so the two never disagree on a row."""
    try:
        parse_code_tests(ground_truth)
    except GroundTruthError as error:
        return str(error).removeprefix("code ground truth: ")
    return None


def science_ground_truth_problem(ground_truth: str, choice_labels: Sequence[str] | None) -> str | None:
    if not SCIENCE_ANSWER.fullmatch(ground_truth):
        return f"{ground_truth!r} is not an option letter or True/False"
    if choice_labels and ground_truth not in choice_labels:
        return f"{ground_truth!r} is not among the options {list(choice_labels)}"
    return None


def tool_ground_truth_problem(ground_truth: str) -> str | None:
    try:
        calls = json.loads(ground_truth)
    except json.JSONDecodeError:
        return "not JSON"
    if not isinstance(calls, list) or not calls:
        return "not a non-empty list of calls"
    for position, call in enumerate(calls):
        if not isinstance(call, dict) or not TOOL_CALL_REQUIRED <= set(call) <= TOOL_CALL_KEYS:
            return f"call {position} is not {{name, arguments[, allowed]}}"
        if not _is_nonempty_text(call["name"]) or not isinstance(call["arguments"], dict):
            return f"call {position} needs a tool name and an arguments object"
        allowed = call.get("allowed", {})
        if not isinstance(allowed, dict) or not all(isinstance(v, list) and v for v in allowed.values()):
            return f"call {position}: allowed must map each argument to a non-empty list of values"
    return None


def tool_agent_problems(row: Mapping, extra_info: Mapping) -> list[tuple[str, str]]:
    """(field, detail) for each way the row's tool-agent fields differ from what verl's loop reads:
    `agent_name`, `extra_info.tool_selection` (the names of the registered tools the prompt offers) and
    `extra_info.tools_kwargs` ({tool name: {create_kwargs: {...}}}, handed to stateful tools)."""
    problems = []
    agent_name = row.get("agent_name")
    if agent_name is not None and agent_name not in AGENT_NAMES:
        problems.append(("agent_name", f"{agent_name!r} is not one of {AGENT_NAMES}"))
    selection = extra_info.get("tool_selection")
    if selection is not None and (
        not isinstance(selection, list | tuple) or not selection or not all(map(_is_nonempty_text, selection))
    ):
        problems.append(("extra_info.tool_selection", "must be a non-empty list of tool names"))
    tools_kwargs = extra_info.get("tools_kwargs")
    if tools_kwargs is not None:
        if not isinstance(tools_kwargs, Mapping):
            problems.append(("extra_info.tools_kwargs", "must map tool names to their kwargs"))
        else:
            for name, kwargs in tools_kwargs.items():
                if not isinstance(kwargs, Mapping):
                    # parquet stores the union of every row's tool names; names a row lacks read back null
                    detail = f"{name!r} maps to {kwargs!r}, not a {{create_kwargs}} mapping"
                    problems.append(("extra_info.tools_kwargs", detail))
    return problems


def ground_truth_problem(verifier: str, ground_truth: str, extra_info: Mapping) -> str | None:
    if verifier == "math":
        return math_ground_truth_problem(ground_truth)
    if verifier == "code":
        return code_ground_truth_problem(ground_truth)
    if verifier == "science":
        return science_ground_truth_problem(ground_truth, extra_info.get("choice_labels"))
    return tool_ground_truth_problem(ground_truth)


def validate_row(row: Mapping, index: int | None = None) -> list[RowProblem]:
    """Every problem found in one row (empty when the row is valid)."""
    extra_info = row.get("extra_info")
    if index is None:
        index = extra_info.get("index", -1) if isinstance(extra_info, Mapping) else -1
    problems: list[RowProblem] = []

    def report(field: str, reason: str, detail: str = "") -> None:
        problems.append(RowProblem(index, field, reason, detail))

    data_source = row.get("data_source")
    if not _is_nonempty_text(data_source):
        report("data_source", MALFORMED_FIELD, "missing")
    prompt_problem = _prompt_problem(row.get("prompt"))
    if prompt_problem:
        report("prompt", *prompt_problem)
    if not _is_nonempty_text(row.get("ability")):
        report("ability", MALFORMED_FIELD, "missing")

    if not isinstance(extra_info, Mapping):
        report("extra_info", MALFORMED_FIELD, "missing")
        extra_info = {}
    verifier = extra_info.get("verifier")
    index_value = extra_info.get("index")
    if isinstance(index_value, bool) or not isinstance(index_value, int) or index_value < 0:
        report("extra_info.index", MALFORMED_FIELD, "must be a non-negative integer")
    if not _is_nonempty_text(extra_info.get("split")):
        report("extra_info.split", MALFORMED_FIELD, "missing")
    if verifier not in VERIFIERS:
        report("extra_info.verifier", MALFORMED_FIELD, f"{verifier!r} is not one of {VERIFIERS}")
    elif _is_nonempty_text(data_source) and data_source.split("/")[0] != verifier:
        report("data_source", MALFORMED_FIELD, f"{data_source!r} does not route to the {verifier} verifier")

    for field, detail in tool_agent_problems(row, extra_info):
        report(field, MALFORMED_FIELD, detail)

    reward_model = row.get("reward_model")
    if not isinstance(reward_model, Mapping):
        report("reward_model", MALFORMED_FIELD, "missing")
        return problems
    if reward_model.get("style") != "rule":
        report("reward_model.style", MALFORMED_FIELD, f"{reward_model.get('style')!r} is not 'rule'")
    ground_truth = reward_model.get("ground_truth")
    if not _is_nonempty_text(ground_truth):
        report("reward_model.ground_truth", MISSING_ANSWER)
    elif verifier in VERIFIERS:
        detail = ground_truth_problem(verifier, ground_truth, extra_info)
        if detail:
            report("reward_model.ground_truth", BAD_GROUND_TRUTH, detail)
    return problems


class UnreadableFileError(ValueError):
    """The file is missing, empty or not parquet; the message names the file and the problem."""


def read_rows(path: Path) -> list[dict]:
    """Rows of a verl parquet file. Raises UnreadableFileError (one line, naming `path`)."""
    if not path.exists():
        raise UnreadableFileError(f"{path}: no such file")
    if path.is_dir():
        raise UnreadableFileError(f"{path}: is a directory, not a parquet file")
    try:
        if path.stat().st_size == 0:
            raise UnreadableFileError(f"{path}: empty file (0 bytes), not a parquet file")
        return pq.read_table(path).to_pylist()
    except (OSError, pa.ArrowException) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UnreadableFileError(f"{path}: cannot read as parquet ({detail})") from None


def validate_file(path: Path) -> tuple[int, list[RowProblem]]:
    """(number of rows, problems) for a verl parquet file; indices are row positions in the file.

    Raises UnreadableFileError for a missing, empty or non-parquet file."""
    rows = read_rows(path)
    problems = [problem for position, row in enumerate(rows) for problem in validate_row(row, position)]
    return len(rows), problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check verl parquet files against the MOPD row schema.")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    failed = False
    for path in args.files:
        try:
            row_count, problems = validate_file(path)
        except UnreadableFileError as error:
            print(error)
            failed = True
            continue
        bad_rows = len({problem.index for problem in problems})
        print(f"{path}: {row_count} rows, {row_count - bad_rows} valid, {bad_rows} invalid")
        for reason, count in sorted(Counter(problem.reason for problem in problems).items()):
            print(f"  {reason}: {count}")
        for problem in problems:
            print(f"  {problem}")
        failed |= bad_rows > 0 or row_count == 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
