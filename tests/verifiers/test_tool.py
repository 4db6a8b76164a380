import json

import pytest

from verifiers.errors import GroundTruthError
from verifiers.tool import parse_tool_calls, verify_tool


def gold(*calls):
    return json.dumps([{"name": name, "arguments": arguments} for name, arguments in calls])


REACT_TWO_CALLS = """Thought: I need the facts first.
Action: getFacts
Action Input: {"category": "habitat", "filters": {"region": {"name": "Mexico"}}, "limit": 3}
Observation: ...
Thought: now the picture
Action: getImage
Action Input: {"id": 7}
"""


def test_react_nested_json():
    calls = parse_tool_calls(REACT_TWO_CALLS)
    assert [c.name for c in calls] == ["getFacts", "getImage"]
    assert calls[0].arguments["filters"] == {"region": {"name": "Mexico"}}


def test_hermes_blocks_and_string_arguments():
    text = (
        '<tool_call>{"name": "a", "arguments": {"x": 1}}</tool_call>\n'
        '<tool_call>\n{"name": "b", "arguments": "{\\"y\\": [1, {\\"z\\": 2}]}"}\n'
        '{"name": "c", "parameters": {}}\n</tool_call>'
    )
    calls = parse_tool_calls(text)
    assert [(c.name, c.arguments) for c in calls] == [("a", {"x": 1}), ("b", {"y": [1, {"z": 2}]}), ("c", {})]


def test_exact_match_in_any_order():
    expected = gold(
        ("getImage", {"id": 7}),
        ("getFacts", {"category": "habitat", "filters": {"region": {"name": "Mexico"}}, "limit": 3}),
    )
    result = verify_tool(REACT_TWO_CALLS, expected)
    assert result.acc and result.n_passed == 2 and result.partial == 1.0


@pytest.mark.parametrize(
    ("predicted", "gold_value", "options", "acc"),
    [
        ('"5"', 5, {}, True),
        ("5.0", 5, {}, True),
        ('"5"', 5, {"coerce_types": False}, False),
        ('"true"', True, {}, True),
        ('"  New   York "', "New York", {}, True),
        ('"new york"', "New York", {}, False),
        ('"new york"', "New York", {"case_sensitive": False}, True),
        ("1", True, {}, False),  # a bool stays a bool
    ],
)
def test_value_normalization(predicted, gold_value, options, acc):
    response = f'Action: search\nAction Input: {{"q": {predicted}}}'
    assert verify_tool(response, gold(("search", {"q": gold_value})), **options).acc is acc


def test_empty_optional_arguments_count_as_absent():
    response = 'Action: search\nAction Input: {"q": "x", "page": null}'
    assert verify_tool(response, gold(("search", {"q": "x", "lang": ""}))).acc


def test_calls_are_matched_per_call_not_merged():
    # MOPD's merged-dict rule would accept this: the union of the argument dicts is the same.
    response = 'Action: f\nAction Input: {"a": 1, "b": 2}\nAction: f\nAction Input: {}'
    result = verify_tool(response, gold(("f", {"a": 1}), ("f", {"b": 2})))
    assert not result.acc and result.reason == "wrong_arguments" and result.n_passed == 0


def test_wrong_arguments_feedback_names_keys_not_values():
    response = 'Action: getFacts\nAction Input: {"category": "diet", "extra": 1}'
    result = verify_tool(response, gold(("getFacts", {"category": "habitat", "limit": 3})))
    assert result.reason == "wrong_arguments"
    assert "'category'" in result.feedback and "'limit'" in result.feedback and "'extra'" in result.feedback
    assert "habitat" not in result.feedback and "3" not in result.feedback


def test_wrong_and_missing_tools():
    response = 'Action: getImage\nAction Input: {"id": 7}\nAction: getImage\nAction Input: {"id": 8}'
    result = verify_tool(response, gold(("getFacts", {"limit": 3}), ("getImage", {"id": 7})))
    assert result.reason == "wrong_tools"
    assert (
        "Missing call(s) to: getFacts" in result.feedback
        and "Unexpected call(s) to: getImage" in result.feedback
    )
    assert 0 < result.partial < 1 and result.n_passed == 1


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("I would call the weather API.", "no_tool_call"),
        ("Action: getFacts\nAction Input: {'category': 'x'}", "bad_tool_call"),
        ("Action: getFacts\nThought: hmm", "bad_tool_call"),
        ("Action: get facts please\nAction Input: {}", "bad_tool_call"),
        ("<tool_call>{not json}</tool_call>", "bad_tool_call"),
        ("Action: f\nAction Input: [1, 2]", "bad_tool_call"),
    ],
)
def test_unreadable_calls_are_format_failures(response, reason):
    result = verify_tool(response, gold(("getFacts", {"category": "x"})))
    assert (result.acc, result.format_ok, result.reason) == (False, False, reason)


def test_fenced_action_input_and_think_block():
    response = (
        '<think>Action: wrong\nAction Input: {}</think>\nAction: f\nAction Input: ```json\n{"a": 1}\n```'
    )
    assert verify_tool(response, gold(("f", {"a": 1}))).acc


@pytest.mark.parametrize(
    "bad_gold", ["not json", '{"name": "f"}', '[{"arguments": {}}]', '[{"name": "f", "arguments": [1]}]']
)
def test_malformed_gold_raises(bad_gold):
    with pytest.raises(GroundTruthError):
        verify_tool("Action: f\nAction Input: {}", bad_gold)
