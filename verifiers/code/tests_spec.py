"""The code ground truth: LiveCodeBench-style test cases as a JSON string.

`{"inputs": [...], "outputs": [...], "fn_name": null | "name", "public": k, "time_limit": s,
"abs_tol": a, "rel_tol": r}`.
With `fn_name` null each input is stdin text and each output the expected stdout. With `fn_name`
set each input is newline-separated JSON values (the arguments) and each output one JSON value (as
JSON text, LiveCodeBench's convention, or already decoded). The first `public` tests may be quoted in
feedback (default 0: none). `abs_tol` / `rel_tol` (default absent: exact, as LiveCodeBench grades) let
real-valued outputs match within a tolerance (`verifiers.code.compare.FloatTolerance`); integers never do.

Optional `program_prefix` and `program_suffix` (Python source) are placed before and after the response's
program, for benchmarks whose tests are code rather than input/output pairs: HumanEval's prompt goes
before, its `check(candidate)` and a call-based wrapper that runs it after. The suffix is hidden like
any test, but it does run inside the sandbox, in the program's own process.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from verifiers.code.compare import FloatTolerance
from verifiers.errors import GroundTruthError

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class CodeTests:
    inputs: list[str]
    expected: list[Any]  # stdout text, or the decoded JSON value for call-based tests
    fn_name: str | None
    public: int
    time_limit: float | None
    program_prefix: str = ""
    program_suffix: str = ""
    abs_tol: float | None = None  # None: not set by the spec (the verifier's option applies)
    rel_tol: float | None = None

    def tolerance(self, abs_tol: float = 0.0, rel_tol: float = 0.0) -> FloatTolerance:
        """The spec's tolerance, falling back per field to the verifier's configured one.

        Raises ValueError for a negative or non-finite tolerance."""
        return FloatTolerance(
            abs_tol if self.abs_tol is None else self.abs_tol,
            rel_tol if self.rel_tol is None else self.rel_tol,
        )

    def __len__(self) -> int:
        return len(self.inputs)

    def program_under_test(self, program: str) -> str:
        return "\n".join(part for part in (self.program_prefix, program, self.program_suffix) if part)

    def visible_line_count(self, program: str) -> int:
        """Lines of the program under test that come before the hidden suffix."""
        return len("\n".join(part for part in (self.program_prefix, program) if part).split("\n"))

    def is_public(self, index: int) -> bool:
        return index < self.public


def parse_code_tests(ground_truth: Any) -> CodeTests:
    spec = _load(ground_truth)
    inputs, outputs = spec.get("inputs"), spec.get("outputs")
    if (
        not isinstance(inputs, list)
        or not isinstance(outputs, list)
        or len(inputs) != len(outputs)
        or not inputs
    ):
        raise GroundTruthError(
            "code ground truth needs non-empty 'inputs' and 'outputs' lists of equal length"
        )
    if not all(isinstance(value, str) for value in inputs):
        raise GroundTruthError("code ground truth: every input must be a string")
    fn_name = spec.get("fn_name") or None
    if fn_name is not None and not (isinstance(fn_name, str) and _IDENTIFIER.fullmatch(fn_name)):
        raise GroundTruthError(f"code ground truth: fn_name {fn_name!r} is not an identifier")
    if fn_name is None:
        if not all(isinstance(value, str) for value in outputs):
            raise GroundTruthError("code ground truth: stdin tests need string outputs")
        expected = list(outputs)
    else:
        expected = [_decoded_output(position, value) for position, value in enumerate(outputs)]
        for position, value in enumerate(inputs):
            _check_arguments(position, value)
    public = spec.get("public", 0)
    if isinstance(public, bool) or not isinstance(public, int) or not 0 <= public <= len(inputs):
        raise GroundTruthError(f"code ground truth: public={public!r} is not a count of leading tests")
    time_limit = spec.get("time_limit")
    if time_limit is not None and (
        isinstance(time_limit, bool) or not isinstance(time_limit, int | float) or time_limit <= 0
    ):
        raise GroundTruthError(
            f"code ground truth: time_limit={time_limit!r} is not a positive number of seconds"
        )
    prefix, suffix = (_source(spec, key) for key in ("program_prefix", "program_suffix"))
    tolerances = {name: _tolerance(spec, name) for name in ("abs_tol", "rel_tol")}
    return CodeTests(
        list(inputs),
        expected,
        fn_name,
        public,
        float(time_limit) if time_limit else None,
        prefix,
        suffix,
        **tolerances,
    )


def _tolerance(spec: dict, name: str) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    try:
        FloatTolerance(**{name: value})
    except ValueError as error:
        raise GroundTruthError(f"code ground truth: {error}") from None
    return float(value)


def _source(spec: dict, key: str) -> str:
    value = spec.get(key, "")
    if not isinstance(value, str):
        raise GroundTruthError(f"code ground truth: {key} must be Python source text")
    return value


def _load(ground_truth: Any) -> dict:
    if isinstance(ground_truth, dict):
        return ground_truth
    if not isinstance(ground_truth, str | bytes):
        raise GroundTruthError(f"code ground truth must be a JSON string, got {type(ground_truth).__name__}")
    try:
        spec = json.loads(ground_truth)
    except json.JSONDecodeError as error:
        raise GroundTruthError(f"code ground truth is not JSON: {error}") from None
    if not isinstance(spec, dict):
        raise GroundTruthError("code ground truth must be a JSON object with inputs and outputs")
    return spec


def _decoded_output(position: int, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise GroundTruthError(
            f"code ground truth: output {position} of a call-based problem is not JSON"
        ) from None


def _check_arguments(position: int, text: str) -> None:
    try:
        for line in text.split("\n"):
            if line.strip():
                json.loads(line)
    except json.JSONDecodeError:
        raise GroundTruthError(
            f"code ground truth: input {position} of a call-based problem is not newline-separated JSON"
        ) from None
