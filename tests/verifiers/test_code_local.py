"""The code verifier end to end on the local sandbox: verdicts, formats and feedback."""

import textwrap

import pytest

from verifiers.code.verifier import verify_code

pytestmark = pytest.mark.usefixtures("local_sandbox", "no_leftover_processes")

ADD = "a, b = map(int, input().split())\nprint(a + b)"
ADD_TESTS = (["1 2\n", "10 20\n", "-5 5\n"], ["3\n", "30\n", "0\n"])


def test_stdin_program_passes(code_gt, fenced):
    result = verify_code(fenced(ADD), code_gt(*ADD_TESTS))
    assert result.acc and result.n_passed == 3 and result.feedback == "All 3 tests passed."


@pytest.mark.parametrize(
    "program",
    [
        "import sys\ndef main():\n    a, b = map(int, sys.stdin.read().split())\n    print(a + b)\n\nif __name__ == '__main__':\n    main()",
        "a, b = map(int, open(0).read().split())\nprint(a + b)",
        "import sys\na, b = map(int, sys.stdin.buffer.readline().split())\nsys.stdout.write(f'{a+b}\\n')",
        "print(sum(map(int, input().split())))\nexit(0)",
        textwrap.dedent(
            """
            import sys, threading
            def main():
                print(sum(map(int, input().split())))
            threading.stack_size(1 << 26)
            threading.Thread(target=main).start()
            """
        ),
    ],
    ids=["main-guard", "open0", "buffer", "exit", "thread"],
)
def test_common_stdin_idioms(program, code_gt, fenced):
    assert verify_code(fenced(program), code_gt(*ADD_TESTS)).acc


def test_leetcode_class_with_unimported_typing_names(code_gt, fenced):
    program = textwrap.dedent(
        """
        class Solution:
            def twoSum(self, nums: List[int], target: int) -> List[int]:
                seen = {}
                for i, x in enumerate(nums):
                    if target - x in seen:
                        return (seen[target - x], i)
                    seen[x] = i
        """
    )
    ground_truth = code_gt(["[2, 7, 11, 15]\n9", "[3, 2, 4]\n6"], ["[0, 1]", "[1, 2]"], fn_name="twoSum")
    result = verify_code(fenced(program), ground_truth)
    assert result.acc, result.feedback


def test_top_level_function_and_string_results(code_gt, fenced):
    program = "def longest(s):\n    return max(s.split(), key=len)"
    ground_truth = code_gt(['"a bab c"', '"xy z"'], ['"bab"', '"xy"'], fn_name="longest")
    assert verify_code(fenced(program), ground_truth).acc


def test_public_wrong_answer_is_described(code_gt, fenced):
    result = verify_code(
        fenced("a, b = map(int, input().split())\nprint(a - b)"), code_gt(*ADD_TESTS, public=1)
    )
    assert (result.acc, result.reason, result.format_ok) == (False, "wrong_answer", True)
    assert result.feedback.startswith("Test 1 of 3 failed: wrong answer.")
    assert "Input:\n1 2" in result.feedback and "Expected output:\n3" in result.feedback
    assert "Your output:\n-1" in result.feedback


def test_hidden_failures_are_only_counted(code_gt, fenced):
    program = "a, b = map(int, input().split())\nprint(a + b if a != -5 else 'boom')"
    result = verify_code(fenced(program), code_gt(*ADD_TESTS, public=1), stop_on_failure=False)
    assert result.reason == "wrong_answer" and result.n_passed == 2 and result.partial == pytest.approx(2 / 3)
    assert result.feedback.startswith("1 of 3 tests failed")
    assert "-5" not in result.feedback and "boom" not in result.feedback and "0" not in result.feedback


def test_stop_on_first_failure_reports_how_far_it_got(code_gt, fenced):
    program = "a, b = map(int, input().split())\nprint(a + b if a != 10 else 0)"
    result = verify_code(fenced(program), code_gt(*ADD_TESTS), split_tests=False)
    assert result.feedback.startswith("1 of 3 tests passed before a hidden test failed (wrong answer)")


def test_compile_error(code_gt, fenced):
    result = verify_code(fenced("def f(:\n    pass"), code_gt(*ADD_TESTS))
    assert result.reason == "compile_error" and "SyntaxError" in result.feedback


def test_runtime_error_shows_traceback_only_for_public_tests(code_gt, fenced):
    program = "a, b = map(int, input().split())\nprint(a // (b - 2))"
    public = verify_code(fenced(program), code_gt(*ADD_TESTS, public=3))
    assert public.reason == "runtime_error" and "ZeroDivisionError" in public.feedback
    assert 'File "solution.py", line 2' in public.feedback and "harness" not in public.feedback
    hidden = verify_code(fenced(program), code_gt(*ADD_TESTS))
    assert hidden.reason == "runtime_error" and "ZeroDivisionError" not in hidden.feedback


def test_missing_function(code_gt, fenced):
    result = verify_code(
        fenced("def other(x):\n    return x"), code_gt(["1"], ["1"], fn_name="solve", public=1)
    )
    assert result.reason == "runtime_error" and "solve" in result.feedback


def test_time_limit_from_ground_truth(code_gt, fenced):
    result = verify_code(fenced("while True:\n    pass"), code_gt(["1\n"], ["1\n"], public=1, time_limit=1))
    assert result.reason == "timeout" and "within 1 s" in result.feedback


def test_no_code_block_is_a_format_failure(code_gt):
    result = verify_code("print(1)", code_gt(*ADD_TESTS))
    assert (result.format_ok, result.reason) == (False, "no_code_block")
    cut_off = verify_code("<think>```python\nprint(3)\n```", code_gt(*ADD_TESTS))
    assert cut_off.reason == "no_code_block"


def test_large_input_and_unicode_output(code_gt, fenced):
    numbers = " ".join(["7"] * 300_000)
    program = "import sys\nprint(sum(map(int, sys.stdin.read().split())), 'é✓')"
    assert verify_code(fenced(program), code_gt([numbers], ["2100000 é✓"])).acc


def test_tests_split_across_sandboxes(code_gt, fenced):
    inputs = [f"{i} {i}\n" for i in range(16)]
    outputs = [f"{2 * i}\n" for i in range(16)]
    assert verify_code(fenced(ADD), code_gt(inputs, outputs), workers=4).n_passed == 16
    broken = "a, b = map(int, input().split())\nprint(a + b + (a == 13))"
    result = verify_code(fenced(broken), code_gt(inputs, outputs), workers=4)
    assert not result.acc and result.reason == "wrong_answer"
