"""LiveCodeBench's output comparison, used by every backend so they all grade alike.

Exact by default, as LiveCodeBench grades: numbers compare as decimals (0.5 equals 0.50), never
within a tolerance. A problem that accepts approximate real answers opts in with a `FloatTolerance`
(per test spec or per verifier config); it applies only when both numbers are written as reals, so
an integer answer is always compared exactly.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

_INTEGER_TOKEN = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class FloatTolerance:
    """`math.isclose` semantics: |a - b| <= max(rel_tol * max(|a|, |b|), abs_tol). Both >= 0."""

    abs_tol: float = 0.0
    rel_tol: float = 0.0

    def __post_init__(self) -> None:
        for name in ("abs_tol", "rel_tol"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise ValueError(f"{name}={value!r} is not a finite number >= 0")

    @property
    def exact(self) -> bool:
        return self.abs_tol == 0 and self.rel_tol == 0

    def close(self, actual: float, expected: float) -> bool:
        return math.isclose(actual, expected, rel_tol=self.rel_tol, abs_tol=self.abs_tol)


EXACT = FloatTolerance()


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _as_decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except InvalidOperation:
        return None


def _is_real(token: str) -> bool:
    return not _INTEGER_TOKEN.fullmatch(token)


def _tokens_close(actual_line: str, expected_line: str, tolerance: FloatTolerance) -> bool:
    actual_tokens, expected_tokens = actual_line.split(), expected_line.split()
    if len(actual_tokens) != len(expected_tokens):
        return False
    for actual, expected in zip(actual_tokens, expected_tokens, strict=True):
        if Decimal(actual) == Decimal(expected):
            continue
        if not (_is_real(actual) and _is_real(expected)):
            return False
        if not tolerance.close(float(actual), float(expected)):
            return False
    return True


def stdout_matches(actual: str, expected: str, tolerance: FloatTolerance = EXACT) -> bool:
    """Same number of lines (after stripping), each equal exactly or as a list of decimal tokens
    (within `tolerance` for tokens that both are reals).

    By default no float tolerance (0.5 equals 0.50, not 0.5000001), and a missing or extra line
    always fails, unlike `zip`-based checkers.
    """
    actual_lines, expected_lines = _stripped_lines(actual), _stripped_lines(expected)
    if len(actual_lines) != len(expected_lines):
        return False
    for actual_line, expected_line in zip(actual_lines, expected_lines, strict=True):
        if actual_line == expected_line:
            continue
        actual_numbers, expected_numbers = _as_decimals(actual_line), _as_decimals(expected_line)
        if actual_numbers is None or expected_numbers is None:
            return False
        if actual_numbers == expected_numbers:
            continue
        if tolerance.exact or not _tokens_close(actual_line, expected_line, tolerance):
            return False
    return True


def values_match(actual: Any, expected: Any, tolerance: FloatTolerance = EXACT) -> bool:
    """JSON values equal, with `tolerance` between two floats (never between ints or bools)."""
    if tolerance.exact:
        return actual == expected
    if isinstance(actual, float) and isinstance(expected, float):
        return actual == expected or tolerance.close(actual, expected)
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(
            values_match(a, e, tolerance) for a, e in zip(actual, expected, strict=True)
        )
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            values_match(actual[key], expected[key], tolerance) for key in expected
        )
    return actual == expected


def call_result_matches(result_payload: str, expected: Any, tolerance: FloatTolerance = EXACT) -> bool:
    """The harness's `{"value": ...}` equals the expected JSON value (tuples were sent as lists)."""
    try:
        result = json.loads(result_payload)
    except (ValueError, RecursionError):
        return False
    return (
        isinstance(result, dict) and "value" in result and values_match(result["value"], expected, tolerance)
    )


def describe_call_result(result_payload: str) -> str:
    """The returned value as JSON text, for feedback."""
    try:
        result = json.loads(result_payload)
    except json.JSONDecodeError:
        return "(no value returned)"
    if "unserializable" in result:
        return f"(a {result['unserializable']} object, not a JSON value)"
    return json.dumps(result.get("value"))
