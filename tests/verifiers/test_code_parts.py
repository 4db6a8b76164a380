"""The pure parts of the code verifier: extraction, comparison, ground-truth parsing, planning."""

import json

import pytest

from verifiers.code.compare import call_result_matches, describe_call_result, stdout_matches
from verifiers.code.extract import extract_code
from verifiers.code.protocol import ReportReader
from verifiers.code.tests_spec import parse_code_tests
from verifiers.code.verifier import plan_chunks
from verifiers.errors import GroundTruthError

TWO_BLOCKS = "First:\n```python\nprint(1)\nprint(2)\nprint(3)\n```\nUsage:\n```python\nprint(9)\n```\n"


@pytest.mark.parametrize(
    ("text", "policy", "expected"),
    [
        (TWO_BLOCKS, "last", "print(9)\n"),
        (TWO_BLOCKS, "longest", "print(1)\nprint(2)\nprint(3)\n"),
        ("```\nx = 1\n```", "last", "x = 1\n"),
        ("```python\na\n```\n```text\nsample output\n```", "last", "a\n"),  # python blocks win
        ("```py3\nb\n```", "last", "b\n"),
        ("```python\nprint(1)\n", "last", None),  # unclosed: cut off mid-program
        ("no code at all", "last", None),
        ("```python\n\n```", "last", None),
    ],
)
def test_extract_code(text, policy, expected):
    assert extract_code(text, policy) == expected


def test_unknown_policy():
    with pytest.raises(ValueError):
        extract_code(TWO_BLOCKS, "first")


@pytest.mark.parametrize(
    ("actual", "expected", "match"),
    [
        ("3\n", "3", True),
        ("  3  \n\n", "3\n", True),
        ("1 2\n3\n", "1 2\n3", True),
        ("0.50\n", "0.5\n", True),
        ("1e2\n", "100\n", True),
        ("1.0000001\n", "1.0\n", False),
        ("1 2\n", "1  2\n", True),  # token-wise decimal comparison
        ("YES\n", "yes\n", False),
        ("1\n2\n", "1\n", False),  # an extra line always fails
        ("1\n", "1\n2\n", False),  # and so does a missing one
        ("", "", True),
    ],
)
def test_stdout_matches(actual, expected, match):
    assert stdout_matches(actual, expected) is match


@pytest.mark.parametrize(
    ("payload", "expected", "match"),
    [
        ('{"value": [1, 2]}', [1, 2], True),  # a returned tuple arrives as a list
        ('{"value": 2.0}', 2, True),
        ('{"value": "bab"}', "bab", True),
        ('{"value": [1, 2]}', [2, 1], False),
        ('{"unserializable": "set"}', [1], False),
        ("garbage", 1, False),
    ],
)
def test_call_result_matches(payload, expected, match):
    assert call_result_matches(payload, expected) is match


def test_describe_call_result():
    assert describe_call_result('{"value": [1]}') == "[1]"
    assert "set" in describe_call_result('{"unserializable": "set"}')


def test_parse_stdin_tests():
    tests = parse_code_tests(
        json.dumps({"inputs": ["1\n"], "outputs": ["2\n"], "fn_name": None, "public": 1})
    )
    assert tests.expected == ["2\n"] and tests.is_public(0) and tests.time_limit is None


def test_parse_call_tests_decodes_outputs():
    spec = {"inputs": ['[1, 2]\n"x"'], "outputs": ['"bab"'], "fn_name": "solve", "time_limit": 2}
    tests = parse_code_tests(json.dumps(spec))
    assert tests.expected == ["bab"] and tests.fn_name == "solve" and tests.time_limit == 2.0
    assert not tests.is_public(0)
    assert parse_code_tests({**spec, "outputs": [["already", "decoded"]]}).expected == [
        ["already", "decoded"]
    ]


@pytest.mark.parametrize(
    "spec",
    [
        "not json",
        "[1, 2]",
        {"inputs": [], "outputs": []},
        {"inputs": ["1"], "outputs": ["1", "2"]},
        {"inputs": [1], "outputs": ["1"]},
        {"inputs": ["1"], "outputs": ["1"], "fn_name": "not an identifier"},
        {"inputs": ["not json"], "outputs": ["1"], "fn_name": "f"},
        {"inputs": ["1"], "outputs": ["not json"], "fn_name": "f"},
        {"inputs": ["1"], "outputs": ["1"], "public": 2},
        {"inputs": ["1"], "outputs": ["1"], "time_limit": 0},
    ],
)
def test_malformed_tests_raise(spec):
    with pytest.raises(GroundTruthError):
        parse_code_tests(spec if isinstance(spec, str) else json.dumps(spec))


@pytest.mark.parametrize(
    ("n_tests", "public", "workers", "split", "expected"),
    [
        (10, 0, 1, True, [range(10)]),
        (10, 2, 1, True, [range(2), range(2, 10)]),
        (10, 0, 4, False, [range(10)]),
        (16, 0, 4, True, [range(4), range(4, 8), range(8, 12), range(12, 16)]),
        (6, 0, 4, True, [range(6)]),  # too few tests to be worth a second sandbox
        (10, 3, 2, True, [range(3), range(3, 10)]),
    ],
)
def test_plan_chunks(n_tests, public, workers, split, expected):
    assert plan_chunks(n_tests, public, workers, split) == expected


def test_report_reader():
    seen = []
    reader = ReportReader(lambda outcome: seen.append(outcome.index) or outcome.status == "ok")
    reader.feed_text(
        '{"index": 0, "status": "ok", "stdout": "1"}\n{"index": 1, "status": "timeout"}\n{"index": 2, "status": "ok"}\n'
    )
    report = reader.finish()
    assert seen == [0, 1] and report.error is None and len(report.outcomes) == 2

    truncated = ReportReader(lambda outcome: True)
    truncated.feed_text('{"index": 0, "status": "ok"}\n')
    assert "before reporting every test" in truncated.finish().error

    broken = ReportReader(lambda outcome: True)
    broken.feed_text("Traceback (most recent call last):\n")
    assert "unreadable" in broken.finish().error
