"""Gold tool calls with `allowed` (BFCL's accepted values per argument)."""

import json

import pytest

from verifiers.errors import GroundTruthError
from verifiers.tool import verify_tool


def gold(*calls) -> str:
    return json.dumps(list(calls))


def call(name, allowed) -> dict:
    example = {key: values[0] for key, values in allowed.items() if values[0] != ""}
    return {"name": name, "arguments": example, "allowed": allowed}


def response(*calls) -> str:
    return "".join(f"<tool_call>{json.dumps({'name': n, 'arguments': a})}</tool_call>" for n, a in calls)


def test_optional_argument_may_be_left_out_or_given_an_accepted_value():
    ground_truth = gold(call("area", {"base": [10], "unit": ["cm", "centimetres", ""]}))

    assert verify_tool(response(("area", {"base": 10})), ground_truth).acc
    assert verify_tool(response(("area", {"base": 10, "unit": "centimetres"})), ground_truth).acc
    result = verify_tool(response(("area", {"base": 10, "unit": "inch"})), ground_truth)
    assert not result.acc and result.reason == "wrong_arguments"
    assert result.feedback == "Call to area: wrong value for 'unit'."


def test_required_and_unknown_arguments_are_reported_by_name():
    ground_truth = gold(call("area", {"base": [10], "height": [5]}))

    result = verify_tool(response(("area", {"base": 10, "depth": 5})), ground_truth)

    assert not result.acc
    assert result.feedback == "Call to area: unexpected argument 'depth'; missing argument 'height'."


def test_matching_pairs_calls_whatever_their_order():
    # The first predicted call fits both gold calls; only pairing it with the second gold call matches all.
    ground_truth = gold(call("f", {"x": [1, 2]}), call("f", {"x": [1]}))

    assert verify_tool(response(("f", {"x": 1}), ("f", {"x": 2})), ground_truth).acc
    assert not verify_tool(response(("f", {"x": 2}), ("f", {"x": 2})), ground_truth).acc


def test_gold_calls_without_allowed_still_compare_exactly():
    ground_truth = gold({"name": "f", "arguments": {"x": 1}})

    assert verify_tool(response(("f", {"x": "1"})), ground_truth).acc
    assert not verify_tool(response(("f", {"x": 1, "y": 2})), ground_truth).acc


@pytest.mark.parametrize("allowed", [{"x": []}, {"x": 1}, ["x"]])
def test_malformed_allowed_is_a_ground_truth_error(allowed):
    with pytest.raises(GroundTruthError, match="allowed"):
        verify_tool(response(("f", {"x": 1})), gold({"name": "f", "arguments": {}, "allowed": allowed}))
