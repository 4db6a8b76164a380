"""Degenerate model output (an opener repeated to the length limit, unclosed tags, runs of capitals,
spaces and newlines, nested boxes) is graded by the scanners, never by running into a deadline.

The deadlines stay at their defaults: a verifier that needed one would answer with reason "timeout".
Math-verify, the one step that is super-linear in its input, still runs, but only on answers within
the bounds it handles quickly (checked on every call here); what exceeds them is decided in-process.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifiers import math_verifier
from verifiers.code.extract import extract_code
from verifiers.result import RESULT_KEYS
from verifiers.tool import CallFormatError, parse_tool_calls
from verifiers.verl_reward import compute_score

TOOL_GOLD = json.dumps([{"name": "getWeather", "arguments": {"city": "Paris"}}])
GRADED = (("math/x", "5"), ("science/x", "C"), ("tool/x", TOOL_GOLD))

# Every opener and delimiter the four verifiers look for, and the runs a policy falls into.
UNITS = [
    "\\boxed{", "\\boxed ", "\\fbox{", "{", "}", "{}", "\\{", "$", "$$", "\\[", "\\(",
    "<answer>", "</answer>", "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_call>{",
    "```", "```python\n", "```\n", "Answer:", "Answer: ", "**Answer:** ", "Final Answer: ",
    "The answer is ", "Action: f\n", "Action Input: {", "Action Input: [", '{"a": ', "[", "(", ")",
    "\\frac{", "^{", "\\text{", "\\left(", "A", "C ", "ANSWER IS ", "THE ", "CLEARLY ", " ", "\n", "\t",
    "1", "12345", ".", "*", "**", "-", "✅",
]  # fmt: skip
ENDINGS = ["", "}", "5}", "C}", "</answer>", "C</answer>", "\n```", "</tool_call>", "\nAnswer: C", "\n"]


@st.composite
def degenerate_responses(draw):
    count = draw(st.integers(300, 3000))
    units = draw(st.lists(st.sampled_from(UNITS), min_size=1, max_size=3))
    head = draw(st.sampled_from(["", "Let me think.\n", "<think>plan</think>\n"]))
    return head + "".join(units) * count + draw(st.sampled_from(ENDINGS))


@pytest.fixture
def bounded_math_verify(monkeypatch):
    """The real math-verify check, asserting each answer it is given is short and shallow."""
    real_check = math_verifier.math_verify_check

    def check(gold, pred, timeout_s, workers):
        assert len(pred) <= 200 and math_verifier.nesting_depth(pred) <= 6, pred[:80]
        return real_check(gold, pred, timeout_s, workers)

    monkeypatch.setattr(math_verifier, "math_verify_check", check)


@pytest.fixture
def no_math_verify(monkeypatch):
    def refuse(gold, pred, timeout_s, workers):
        raise AssertionError(f"this answer should be decided without math-verify: {pred[:80]!r}")

    monkeypatch.setattr(math_verifier, "math_verify_check", refuse)


def grade_everywhere(response):
    for data_source, gold in GRADED:
        result = compute_score(data_source, response, gold)
        assert tuple(result) == RESULT_KEYS
        assert result["score"] == 0.0 or result["reason"] == ""
        assert result["reason"] not in ("timeout", "verifier_error"), (data_source, result)
    program = extract_code(response)
    assert program is None or program in response
    try:
        calls = parse_tool_calls(response)
    except CallFormatError:
        calls = []
    assert all(call.name for call in calls)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(degenerate_responses())
def test_degenerate_responses_are_graded_without_a_deadline(bounded_math_verify, response):
    grade_everywhere(response)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(50, 2000), st.sampled_from(["\\boxed{", "{", "\\frac{", "(", "[", "^{", "\\sqrt{"]))
def test_deep_nesting_closed_or_not(bounded_math_verify, depth, opener):
    closer = {"(": ")", "[": "]"}.get(opener, "}")
    for response in (
        "\\boxed{" + opener * depth + "5" + closer * depth + "}",
        "\\boxed{" + opener * depth + "5",
        "Final Answer: " + opener * depth + "5" + closer * depth,
    ):
        grade_everywhere(response)


@pytest.mark.parametrize(
    "response",
    [
        "\\boxed{" * 4000,
        "\\boxed{" * 4000 + "5",
        "<answer>" * 4000 + "C",
        "<tool_call>" * 4000,
        "```python\n" * 4000,
        "A" * 100_000,
        " " * 100_000 + "x",
        "\n" * 100_000,
        "Answer: " + " " * 50_000 + "a",
        "**Answer:** " + "A B " * 20_000 + "x",
        "<answer>" + " ".join(["CLEARLY"] * 5000) + "</answer>",
        "Action: f\nAction Input: " + "[" * 50_000,
        "Action: f\nAction Input: " + "1" * 10_000,
        "<tool_call>" + '{"name": "f", "arguments": ' * 5000 + "</tool_call>",
    ],
    ids=lambda response: repr(response[:24]),
)
def test_named_degenerate_kinds(bounded_math_verify, response):
    grade_everywhere(response)


def test_boxed_opener_repeated_is_no_answer(no_math_verify):
    result = compute_score("math/x", "\\boxed{" * 4000, "5")
    assert (result["score"], result["reason"]) == (0.0, "no_answer")


def test_upper_case_sentence_in_answer_tag_is_no_answer():
    words = "THE FIRST OPTION DESCRIBES A REACTION THAT DOES NOT CONSERVE CHARGE SO WE REJECT IT AND KEEP THE"
    result = compute_score("science/x", f"<answer>{words} REST</answer>", "C")
    assert (result["score"], result["reason"]) == (0.0, "no_answer")


@pytest.mark.parametrize(
    "pred",
    [
        "{" * 20 + "1" + "}" * 20,  # math-verify took six minutes on this
        "(" * 30 + "1" + ")" * 30,
        "x^{" * 12 + "2" + "}" * 12,
        "A" * 500,
    ],
)
def test_answers_math_verify_cannot_handle_in_time_are_wrong_at_once(no_math_verify, pred):
    result = math_verifier.verify_math(f"\\boxed{{{pred}}}", "5")
    assert (result.acc, result.reason) == (False, "wrong_answer")


def test_long_or_deep_answers_are_kept_when_the_gold_is_long_or_deep(monkeypatch):
    seen = []
    monkeypatch.setattr(
        math_verifier,
        "math_verify_check",
        lambda gold, pred, timeout_s, workers: seen.append(pred) or math_verifier.MathCheck(equal=True),
    )
    deep = "\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{1+\\frac{1}{2}}}}}"  # depth 5
    assert math_verifier.verify_math(f"\\boxed{{{deep}}}", "\\frac{13}{21}").acc
    terms = [f"x_{{{i}}}" for i in range(60)]  # 360 characters
    assert math_verifier.verify_math(f"\\boxed{{{'+'.join(reversed(terms))}}}", "+".join(terms)).acc
    assert len(seen) == 2
