"""LiveCodeBench's output comparison, used by every backend so they all grade alike."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _as_decimals(line: str) -> list[Decimal] | None:
    try:
        return [Decimal(token) for token in line.split()]
    except InvalidOperation:
        return None


def stdout_matches(actual: str, expected: str) -> bool:
    """Same number of lines (after stripping), each equal exactly or as a list of decimal tokens.

    No float tolerance (0.5 equals 0.50, not 0.5000001), and a missing or extra line always fails,
    unlike `zip`-based checkers.
    """
    actual_lines, expected_lines = _stripped_lines(actual), _stripped_lines(expected)
    if len(actual_lines) != len(expected_lines):
        return False
    for actual_line, expected_line in zip(actual_lines, expected_lines, strict=True):
        if actual_line == expected_line:
            continue
        actual_numbers, expected_numbers = _as_decimals(actual_line), _as_decimals(expected_line)
        if actual_numbers is None or expected_numbers is None or actual_numbers != expected_numbers:
            return False
    return True


def call_result_matches(result_payload: str, expected: Any) -> bool:
    """The harness's `{"value": ...}` equals the expected JSON value (tuples were sent as lists)."""
    try:
        result = json.loads(result_payload)
    except json.JSONDecodeError:
        return False
    return isinstance(result, dict) and "value" in result and result["value"] == expected


def describe_call_result(result_payload: str) -> str:
    """The returned value as JSON text, for feedback."""
    try:
        result = json.loads(result_payload)
    except json.JSONDecodeError:
        return "(no value returned)"
    if "unserializable" in result:
        return f"(a {result['unserializable']} object, not a JSON value)"
    return json.dumps(result.get("value"))
