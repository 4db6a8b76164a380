"""BFCL simple_python / multiple rows: the ground-truth calls, and every answer BFCL accepts, pass the tool
verifier; answers it rejects fail."""

import json

import pytest

from data_prep import bfcl, validate
from data_prep.bfcl import gold_calls, json_schema
from data_prep.validate import RowError
from verifiers import verl_reward

PACKAGE_COUNTS = {"simple_python": 400, "multiple": 200}


@pytest.fixture(scope="module")
def prepared_rows(fixtures_dir, tmp_path_factory, run_cli, parquet_rows):
    out = tmp_path_factory.mktemp("bfcl")
    run = run_cli(bfcl.main, ["--out", str(out), "--local-path", str(fixtures_dir / "bfcl")])
    rows = {
        row["extra_info"]["bfcl_id"]: row
        for category in bfcl.CATEGORIES
        for row in parquet_rows(out / f"bfcl_{category}_test.parquet")
    }
    return run, out, rows


def tool_call(name: str, arguments: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def score(row, response: str) -> float:
    return verl_reward.compute_score(
        row["data_source"], response, row["reward_model"]["ground_truth"], extra_info=row["extra_info"]
    )["score"]


def test_fixture_rows_are_valid_tool_rows(prepared_rows):
    run, out, rows = prepared_rows

    assert run.exit_code == 0
    assert "bfcl_simple_python_test.parquet: written 3, skipped 0" in run.output
    assert "bfcl_multiple_test.parquet: written 2, skipped 1" in run.output
    assert "row 2 [id]: missing answer (no possible answer for 'multiple_without_answer')" in run.output
    assert validate.main([str(path) for path in sorted(out.glob("*.parquet"))]) == 0
    row = rows["multiple_0"]
    assert row["data_source"] == "tool/bfcl/multiple"
    assert [message["role"] for message in row["prompt"]] == ["system", "user"]
    tools = json.loads(row["extra_info"]["tools"])
    assert [tool["name"] for tool in tools] == ["triangle_properties.get", "circle_properties.get"]
    assert tools[0]["parameters"]["type"] == "object"
    assert row["extra_info"]["tools"] in row["prompt"][0]["content"]


def test_ground_truth_calls_pass(prepared_rows):
    for row in prepared_rows[2].values():
        calls = json.loads(row["reward_model"]["ground_truth"])
        assert score(row, "".join(tool_call(c["name"], c["arguments"]) for c in calls)) == 1.0, row[
            "extra_info"
        ]


@pytest.mark.parametrize(
    "bfcl_id, arguments, passes",
    [
        ("simple_python_0", {"base": 10, "height": 5, "unit": "units"}, True),
        ("simple_python_0", {"base": 10, "height": 5}, True),
        ("simple_python_0", {"base": "10", "height": 5.0}, True),
        ("simple_python_0", {"base": 10, "height": 5, "unit": "cm"}, False),
        ("simple_python_0", {"base": 10}, False),
        ("simple_python_0", {"base": 10, "height": 5, "colour": "red"}, False),
        (
            "simple_python_89",
            {
                "database_name": "StudentDB",
                "table_name": "students",
                "conditions": {"department": "Science", "school": "Bluebird HS"},
                "fetch_limit": 0,
            },
            True,
        ),
        (
            "simple_python_89",
            {"database_name": "StudentDB", "table_name": "students", "conditions": {"department": "Science"}},
            False,
        ),
        (
            "simple_python_96",
            {
                "table": "user",
                "conditions": [
                    {"field": "age", "operation": ">", "value": "25"},
                    {"field": "job", "operation": "=", "value": "engineer"},
                ],
            },
            True,
        ),
        (
            "simple_python_96",
            {"table": "user", "conditions": [{"field": "age", "operation": ">", "value": "25"}]},
            False,
        ),
        ("multiple_3", {"pointA": [3, 4], "pointB": [1, 2], "rounding": 0}, True),
        ("multiple_3", {"pointA": [4, 3], "pointB": [1, 2]}, False),
    ],
)
def test_bfcl_accepted_values_decide(prepared_rows, bfcl_id, arguments, passes):
    row = prepared_rows[2][bfcl_id]
    name = json.loads(row["reward_model"]["ground_truth"])[0]["name"]

    assert score(row, tool_call(name, arguments)) == (1.0 if passes else 0.0)


def test_calling_the_other_offered_function_fails(prepared_rows):
    assert score(prepared_rows[2]["multiple_0"], tool_call("circle_properties.get", {"radius": 3})) == 0.0


def test_possible_answers_become_calls_with_allowed_values():
    calls = gold_calls([{"f": {"a": [1, 2], "b": ["", True], "c": [{"x": ["y", "z"]}], "d": [""]}}])

    assert calls == [
        {
            "name": "f",
            "arguments": {"a": 1, "b": True, "c": {"x": "y"}},
            "allowed": {"a": [1, 2], "b": ["", True], "c": [{"x": ["y", "z"]}], "d": [""]},
        }
    ]


@pytest.mark.parametrize(
    "possible_answer", [None, [], [{"f": {}, "g": {}}], [{"f": {"a": []}}], [{"f": {"a": 1}}], ["f"]]
)
def test_malformed_possible_answers_are_row_errors(possible_answer):
    with pytest.raises(RowError):
        gold_calls(possible_answer)


def test_python_type_names_become_json_schema():
    schema = {
        "type": "dict",
        "properties": {"x": {"type": "float"}, "p": {"type": "tuple", "items": {"type": "any"}}},
    }

    assert json_schema(schema) == {
        "type": "object",
        "properties": {"x": {"type": "number"}, "p": {"type": "array", "items": {"type": "string"}}},
    }


def test_installed_package_gives_both_categories(require_real_package, tmp_path, run_cli, parquet_rows):
    require_real_package("bfcl-eval")

    run = run_cli(bfcl.main, ["--out", str(tmp_path)])

    assert run.exit_code == 0
    for category, count in PACKAGE_COUNTS.items():
        rows = parquet_rows(tmp_path / f"bfcl_{category}_test.parquet")
        assert len(rows) == count
        for row in rows:
            (call,) = json.loads(row["reward_model"]["ground_truth"])
            assert score(row, tool_call(call["name"], call["arguments"])) == 1.0, row["extra_info"]["bfcl_id"]


@pytest.mark.parametrize(
    "call, valid",
    [
        ({"name": "f", "arguments": {"x": 1}, "allowed": {"x": [1, ""]}}, True),
        ({"name": "f", "arguments": {}, "allowed": {"x": []}}, False),
        ({"name": "f", "arguments": {}, "allowed": [1]}, False),
        ({"name": "f", "arguments": {}, "accepted": {"x": [1]}}, False),
    ],
)
def test_validator_reads_allowed_values(call, valid):
    assert (validate.tool_ground_truth_problem(json.dumps([call])) is None) == valid
