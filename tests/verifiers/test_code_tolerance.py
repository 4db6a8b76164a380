"""Float tolerance for code outputs: exact by default (LiveCodeBench), opt-in per test spec or per
verifier config, never between integers."""

import json

import pytest

from verifiers.code.compare import FloatTolerance, call_result_matches, stdout_matches
from verifiers.code.tests_spec import parse_code_tests
from verifiers.code.verifier import verify_code
from verifiers.errors import GroundTruthError, VerifierConfigError
from verifiers.verl_reward import compute_score

THIRD = "print(1 / 3)"  # prints 0.3333333333333333
CLOSE = FloatTolerance(abs_tol=1e-9)


@pytest.mark.parametrize(
    ("actual", "expected", "tolerance", "match"),
    [
        ("0.3333333333333333\n", "0.333333333333\n", None, False),  # LiveCodeBench's exact default
        ("0.3333333333333333\n", "0.333333333333\n", CLOSE, True),
        ("0.3333333333333333\n", "0.333333333333\n", FloatTolerance(rel_tol=1e-9), True),
        ("0.3334\n", "0.3333\n", CLOSE, False),
        ("1.0 0.3333333333333333\n", "1 0.333333333333\n", CLOSE, True),  # 1.0 == 1 exactly
        ("2\n", "3\n", FloatTolerance(abs_tol=5), False),  # integers: never within a tolerance
        ("2.0\n", "3\n", FloatTolerance(abs_tol=5), False),
        ("2\n", "2.5\n", FloatTolerance(abs_tol=5), False),
        ("2.1\n", "2.5\n", FloatTolerance(abs_tol=0.5), True),
        ("1e-10\n", "0.0\n", CLOSE, True),
        ("0.5 x\n", "0.5000000001 x\n", CLOSE, False),  # a line with words stays exact
        ("0.5\n0.5\n", "0.5000000001\n", CLOSE, False),  # line counts still have to agree
    ],
)
def test_stdout_tolerance(actual, expected, tolerance, match):
    if tolerance is None:
        assert stdout_matches(actual, expected) is match
    else:
        assert stdout_matches(actual, expected, tolerance) is match


@pytest.mark.parametrize(
    ("value", "expected", "match"),
    [
        (0.3333333333333333, 0.333333333333, True),
        ([1.0, [0.3333333333333333]], [1.0, [0.333333333333]], True),
        ({"p": 0.3333333333333333}, {"p": 0.333333333333}, True),
        (2, 3, False),
        (3, 3.0000000001, False),  # an int result is compared exactly
        (True, 1.0000000001, False),
        ([0.3333333333333333], [0.333333333333, 1.0], False),
    ],
)
def test_call_result_tolerance(value, expected, match):
    payload = json.dumps({"value": value})
    assert call_result_matches(payload, expected, CLOSE) is match
    assert call_result_matches(payload, expected) is (value == expected)


def test_spec_tolerance_wins_over_the_verifier_option():
    tests = parse_code_tests({"inputs": ["\n"], "outputs": ["0.3\n"], "abs_tol": 1e-6})
    assert tests.tolerance(abs_tol=0.5, rel_tol=1e-3) == FloatTolerance(abs_tol=1e-6, rel_tol=1e-3)
    assert parse_code_tests({"inputs": ["\n"], "outputs": ["0.3\n"]}).tolerance() == FloatTolerance()


@pytest.mark.parametrize("bad", [-1e-9, "1e-9", True, float("inf")])
def test_bad_tolerance_in_a_spec_is_a_ground_truth_error(bad):
    with pytest.raises(GroundTruthError, match="abs_tol"):
        parse_code_tests({"inputs": ["\n"], "outputs": ["0.3\n"], "abs_tol": bad})


def test_bad_tolerance_option_is_a_config_error():
    with pytest.raises(VerifierConfigError, match="rel_tol"):
        verify_code(
            f"```python\n{THIRD}\n```", json.dumps({"inputs": ["\n"], "outputs": ["0.3\n"]}), rel_tol=-1
        )


@pytest.mark.usefixtures("local_sandbox")
def test_a_correct_float_program_passes_only_with_an_opted_in_tolerance(fenced):
    exact_spec = {"inputs": ["\n"], "outputs": ["0.333333333333\n"]}
    response = fenced(THIRD)

    assert compute_score("code/lcb", response, json.dumps(exact_spec))["reason"] == "wrong_answer"
    per_spec = compute_score("code/x", response, json.dumps({**exact_spec, "abs_tol": 1e-9}))
    per_config = compute_score(
        "code/x", response, json.dumps(exact_spec), verifier_options={"code": {"rel_tol": 1e-9}}
    )
    assert per_spec["score"] == per_config["score"] == 1.0
    integer_spec = {"inputs": ["\n"], "outputs": ["2\n"], "abs_tol": 10}
    assert compute_score("code/x", fenced("print(3)"), json.dumps(integer_spec))["score"] == 0.0
