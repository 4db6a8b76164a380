import pytest

from verifiers.errors import GroundTruthError
from verifiers.science import verify_science


@pytest.mark.parametrize(
    "response",
    [
        "<reasoning>...</reasoning><answer>C</answer>",
        "<answer> (C) </answer>",
        "<answer>c</answer>",
        "<answer>C) 42 kJ/mol</answer>",
        "<answer>**C**</answer>",
        "<answer>A</answer> on reflection <answer>C</answer>",
        r"so the option is $\boxed{C}$",
        r"\boxed{\text{C}}",
        "Reasoning...\nAnswer: C",
        "The answer is (C).",
        "<think><answer>A</answer></think><answer>C</answer>",
    ],
)
def test_correct_letter(response):
    result = verify_science(response, "C")
    assert result.acc and result.pred == "C", result


def test_wrong_letter_does_not_name_it():
    result = verify_science("<answer>B</answer>", "C")
    assert (result.acc, result.format_ok, result.reason) == (False, True, "wrong_answer")
    assert "B" not in result.feedback and "C" not in result.feedback


@pytest.mark.parametrize(
    "response", ["<answer>A, C</answer>", "<answer>AC</answer>", "<answer>A and C</answer>"]
)
def test_several_letters_is_a_format_failure(response):
    result = verify_science(response, "C")
    assert (result.acc, result.format_ok, result.reason) == (False, False, "multiple_answers")


@pytest.mark.parametrize(
    "response",
    [
        "I think it is C.",
        "<answer></answer>",
        "<answer>the second one</answer>",
        "<think>C",
        "Honestly the answer is a bit subtle.",
    ],
)
def test_no_letter_is_a_format_failure(response):
    result = verify_science(response, "C")
    assert (result.acc, result.format_ok) == (False, False)


def test_choice_labels_restrict_valid_letters():
    result = verify_science("<answer>E</answer>", "A", {"choice_labels": ["A", "B", "C", "D"]})
    assert not result.format_ok and "A, B, C, D" in result.feedback
    assert verify_science("<answer>B</answer>", "B", {"choice_labels": ("A", "B")}).acc


@pytest.mark.parametrize(
    ("response", "gold", "acc"),
    [
        ("<answer>True</answer>", "True", True),
        ("<answer>yes</answer>", "True", True),
        ("<answer>FALSE</answer>", "False", True),
        ("<answer>False</answer>", "True", False),
    ],
)
def test_true_or_false(response, gold, acc):
    assert verify_science(response, gold).acc is acc


def test_letter_for_true_false_item_is_a_format_failure():
    assert not verify_science("<answer>A</answer>", "True").format_ok
    assert not verify_science("<answer>True</answer>", "A").format_ok


@pytest.mark.parametrize("gold", ["", "AB", "maybe", None, 3])
def test_malformed_gold_raises(gold):
    with pytest.raises(GroundTruthError):
        verify_science("<answer>A</answer>", gold)
