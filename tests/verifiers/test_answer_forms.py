"""The answer forms people write, from public bug reports of math and science graders (issue 11)."""

import pytest

from verifiers.math_verifier import extract_answer_line, fast_verdict, verify_math
from verifiers.science import verify_science


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        (r"So the increase is \boxed{28}.", r"28\%"),
        (r"So the increase is \boxed{28\%}.", "28"),
        (r"\boxed{28\%}", r"28\%"),
        (r"\boxed{28%}", "28"),
        (r"\boxed{28}", "28%"),
        (r"\boxed{12.5\%}", "12.5"),
        (r"\boxed{12.5}", r"12.5\%"),
        (r"\boxed{28 \%}", r"28\%"),
        (r"\boxed{28\text{\%}}", "28"),
        (r"\boxed{0.28}", r"28\%"),  # a percentage is also a fraction of one
        (r"\boxed{\frac{25}{2}\%}", "12.5"),
    ],
)
def test_percent_sign_is_a_unit_not_a_different_number(response, gold):
    result = verify_math(response, gold)
    assert result.acc, result


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        (r"\boxed{29}", r"28\%"),
        (r"\boxed{2800}", r"28\%"),
        (r"\boxed{2800\%}", "28"),
        (r"\boxed{0.28}", "28"),  # no percent sign anywhere: 0.28 is not 28
        (r"\boxed{12.6\%}", "12.5"),
        (r"\boxed{0.28\%}", "28"),
    ],
)
def test_a_different_number_stays_wrong_with_or_without_percent(response, gold):
    result = verify_math(response, gold)
    assert (result.acc, result.reason) == (False, "wrong_answer"), result


def test_percent_comparisons_are_decided_without_math_verify():
    assert fast_verdict(r"28\%", "28") is True
    assert fast_verdict(r"28\%", "0.28") is True
    assert fast_verdict(r"28\%", "2800") is False


@pytest.mark.parametrize(
    "last_line",
    [
        "✅ Final Answer: **73**",
        "Final Answer: 73",
        "**Final Answer:** 73",
        "**Final Answer**: 73",
        "- **Final answer:** 73",
        "* Answer: 73",
        "> Answer: $73$",
        "### Final Answer: 73",
        "🎯 **Final Answer: 73** ✅",
        "__Final Answer:__ 73",
        "The answer is: 73",
        "The answer is 73.",
        "Therefore, the final answer is 73.",
        "Final Answer：73",
        "Answer: \\(73\\)",
    ],
)
def test_final_answer_line_without_a_box(last_line):
    response = f"We count the cases one by one.\nThere are 70 of the first kind and 3 more.\n{last_line}"
    result = verify_math(response, "73")
    assert result.acc and result.pred == "73", result


@pytest.mark.parametrize(
    "response",
    [
        "**Final Answer**\n\n73",
        "## Final Answer\n$$73$$",
        "Final Answer\n\\[\n73\n\\]",
    ],
)
def test_answer_on_the_line_after_a_final_answer_heading(response):
    assert verify_math(response, "73").acc


@pytest.mark.parametrize(
    "response",
    [
        "So we get 73 apples in total.",
        "I believe 73 is right, but the answer depends on the second case.",
        "The answers to both parts are listed above: 73 and 12.",
        "73",
    ],
)
def test_a_number_in_prose_is_not_a_final_answer(response):
    result = verify_math(response, "73")
    assert (result.acc, result.reason, result.format_ok) == (False, "no_answer", False), result


def test_the_last_final_answer_line_wins_and_a_box_wins_over_lines():
    assert extract_answer_line("Answer: 5\nwait, recount.\nFinal Answer: 7") == "7"
    assert verify_math("Final Answer: 7\nCheck: \\boxed{5}", "5").acc


@pytest.mark.parametrize(
    "response",
    [
        "**Answer:** D",
        "**Answer**: D",
        "*Answer:* D",
        "*Answer*: D",
        "__Answer:__ D",
        "**Answer: D**",
        "**Final Answer:** D",
        "Answer: **D**",
        "The correct answer is **(D)**.",
        "The answer is: D",
        "Answer:\nD",
        "Answer: $\\text{D}$",
        "The answer choice is D.",
        "<answer>Answer: D</answer>",
        "<answer>\\boxed{D}</answer>",
    ],
)
def test_markdown_decorated_answer_labels(response):
    result = verify_science(f"Option D fits the measured spectrum.\n{response}", "D")
    assert result.acc and result.pred == "D", result


def test_final_answer_statement_wins_over_a_formula_box_in_the_reasoning():
    response = (
        "The perturbation is small compared with the gap, i.e. $\\boxed{\\langle H\\rangle \\ll \\Delta E}$, "
        "so first-order theory applies and the shift is linear in the field.\n**Answer: D**"
    )
    assert verify_science(response, "D").acc


@pytest.mark.parametrize(
    ("response", "gold"),
    [
        ("Answer: A\nOn reflection the sign flips, so the final choice is $\\boxed{D}$.", "D"),
        ("<answer>A</answer>\nActually no: **Answer: D**", "D"),
        ("\\boxed{A} was my first guess.\nThe answer is (D).", "D"),
        ("Answer: D\nwhere $\\boxed{E = mc^2}$ was used.", "D"),  # a later box naming no option
    ],
)
def test_the_last_statement_that_names_an_option_decides(response, gold):
    assert verify_science(response, gold).acc


def test_a_final_statement_naming_another_option_is_wrong():
    result = verify_science("**Answer: D**\nHmm, re-reading the question: **Answer: B**", "D")
    assert (result.acc, result.reason) == (False, "wrong_answer")


def test_letters_outside_the_options_are_not_answers():
    result = verify_science(
        "Answer: B\nwith the energy \\boxed{E}", "B", {"choice_labels": ["A", "B", "C", "D"]}
    )
    assert result.acc


@pytest.mark.parametrize(
    "response",
    [
        "<answer>THE ANSWER IS CLEARLY NOT IN THIS LIST OF OPTIONS SO WE PICK THE ONE THAT LOOKS BEST</answer>",
        "Honestly the answer is a bit subtle.",
        "ANSWER: CLEARLY THE THIRD ONE",
    ],
)
def test_upper_case_sentences_name_no_option(response):
    result = verify_science(response, "C")
    assert (result.acc, result.reason) == (False, "no_answer"), result
