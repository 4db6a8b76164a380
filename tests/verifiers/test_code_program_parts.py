"""Ground-truth `program_prefix`/`program_suffix`: code placed around the response's program (HumanEval)."""

import json

import pytest

from data_prep.validate import code_ground_truth_problem
from verifiers.code.tests_spec import parse_code_tests
from verifiers.code.verifier import verify_code
from verifiers.errors import GroundTruthError

CALL_TEST = {"inputs": ['"double"'], "outputs": ["true"], "fn_name": "run_check"}
SUFFIX = "def run_check(name):\n    assert globals()[name](21) == 42\n    return True"


def test_program_under_test_joins_prefix_program_and_suffix():
    tests = parse_code_tests({**CALL_TEST, "program_prefix": "import math", "program_suffix": SUFFIX})

    assert tests.program_under_test("x = 1") == "import math\nx = 1\n" + SUFFIX
    assert tests.visible_line_count("x = 1\ny = 2") == 3
    assert parse_code_tests(CALL_TEST).program_under_test("x = 1") == "x = 1"


@pytest.mark.parametrize("key", ["program_prefix", "program_suffix"])
def test_non_text_parts_are_rejected_by_verifier_and_validator(key):
    spec = {**CALL_TEST, key: ["not", "source"]}

    with pytest.raises(GroundTruthError, match=key):
        parse_code_tests(spec)
    assert key in code_ground_truth_problem(json.dumps(spec))


@pytest.mark.usefixtures("local_sandbox")
def test_suffix_runs_after_the_program_and_prefix_before(fenced):
    ground_truth = json.dumps({**CALL_TEST, "program_prefix": "FACTOR = 2", "program_suffix": SUFFIX})

    assert verify_code(fenced("def double(x):\n    return FACTOR * x"), ground_truth).acc
    wrong = verify_code(fenced("def double(x):\n    return x"), ground_truth)
    assert not wrong.acc and wrong.reason == "runtime_error"
    assert "21" not in wrong.feedback
