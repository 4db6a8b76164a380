"""BFCL as multi-turn tool episodes: rows in verl's tool_agent format, a tool config verl's own loader
turns into recording tools with the full schemas, and the tool verifier scoring the calls of an episode."""

import asyncio
import contextlib
import copy
import io
import json

import pytest
import yaml
from verl.tools.tool_registry import initialize_tools_from_config

from data_prep import bfcl_multiturn, validate
from data_prep.bfcl_multiturn import SCHEMA_CONFLICT, converter, register_tools
from data_prep.validate import RowError
from recipe.mopd.recording_tool import ACKNOWLEDGEMENT
from verifiers import verl_reward


@pytest.fixture(scope="module")
def prepared(fixtures_dir, tmp_path_factory, run_cli, parquet_rows):
    out = tmp_path_factory.mktemp("bfcl_multiturn")
    run = run_cli(
        bfcl_multiturn.main,
        ["--out", str(out), "--local-path", str(fixtures_dir / "bfcl"), "--test-size", "1", "--seed", "3"],
    )
    rows = [row for stem in bfcl_multiturn.STEMS for row in parquet_rows(out / f"{stem}.parquet")]
    return run, out, {row["extra_info"]["bfcl_id"]: row for row in rows}


def load_tools(path):
    with contextlib.redirect_stdout(io.StringIO()):  # verl prints every schema it loads
        return {tool.name: tool for tool in initialize_tools_from_config(str(path))}


def episode(calls, closing="I asked for it."):
    """A response as verl's loop leaves it after decoding: calls, the tool's answer, the closing turn."""
    text = "".join(f"<tool_call>\n{json.dumps(call)}\n</tool_call>" for call in calls)
    return f"{text}\nuser\n<tool_response>\n{ACKNOWLEDGEMENT}\n</tool_response>\nassistant\n{closing}"


def score(row, response):
    return verl_reward.compute_score(
        row["data_source"], response, row["reward_model"]["ground_truth"], extra_info=row["extra_info"]
    )["score"]


def test_rows_are_valid_tool_agent_rows_split_by_seed(prepared):
    run, out, rows = prepared

    assert run.exit_code == 0
    assert "bfcl_multiturn_train.parquet: written 4, skipped 1" in run.output
    assert "bfcl_multiturn_test.parquet: written 1, skipped 0" in run.output
    assert validate.main([str(path) for path in sorted(out.glob("*.parquet"))]) == 0
    assert sorted(row["extra_info"]["split"] for row in rows.values()) == ["test"] + ["train"] * 4
    row = rows["multiple_0"]
    assert row["agent_name"] == "tool_agent"
    assert row["data_source"] == "tool/bfcl_multiturn/multiple"
    assert row["extra_info"]["tool_selection"] == ["triangle_properties.get", "circle_properties.get"]
    # the chat template shows the functions from the tool config, so the prompt does not repeat them
    assert [message["role"] for message in row["prompt"]] == ["system", "user"]
    assert "triangle_properties" not in row["prompt"][0]["content"]
    assert "tools_kwargs" not in row["extra_info"]


def test_tool_config_loads_in_verl_as_recording_tools_with_full_schemas(prepared):
    _, out, rows = prepared
    tools = load_tools(out / bfcl_multiturn.TOOLS_FILE)

    assert set(tools) == {name for row in rows.values() for name in row["extra_info"]["tool_selection"]}
    schema = tools["db_fetch_records"].tool_schema.model_dump(exclude_unset=True, exclude_none=True)
    conditions = schema["function"]["parameters"]["properties"]["conditions"]
    # pydantic's verl models would drop the nested properties; the model must see them
    assert conditions["type"] == "object" and set(conditions["properties"]) >= {"department", "school"}
    response, reward, _ = asyncio.run(tools["db_fetch_records"].execute("id", {"database_name": "x"}))
    assert (response.text, reward) == (ACKNOWLEDGEMENT, 0.0)


def test_an_episode_passes_with_the_gold_calls_and_fails_with_a_repeated_or_wrong_call(prepared):
    for row in prepared[2].values():
        gold = [
            {"name": c["name"], "arguments": c["arguments"]}
            for c in json.loads(row["reward_model"]["ground_truth"])
        ]
        assert score(row, episode(gold)) == 1.0, row["extra_info"]["bfcl_id"]
        assert score(row, episode(gold + gold[:1])) == 0.0
        assert score(row, episode([{**gold[0], "name": "another_function"}])) == 0.0
        assert score(row, episode([], closing="I cannot help.")) == 0.0


def test_a_name_registered_with_another_schema_skips_the_row(fixtures_dir):
    records = [json.loads(line) for line in (fixtures_dir / "bfcl/BFCL_v4_simple_python.json").open()]
    variant = copy.deepcopy(records[0])
    variant["id"] = "simple_python_variant"
    variant["function"][0]["parameters"]["properties"]["base"]["type"] = "float"
    registry = register_tools([records[0], variant, records[0]])
    answers = {
        record["id"]: [{"calculate_triangle_area": {"base": [10], "height": [5]}}] for record in records
    }
    answers["simple_python_variant"] = answers["simple_python_0"]
    convert = converter("simple_python", answers, registry)

    assert convert(0, records[0])["extra_info"]["tool_selection"] == ["calculate_triangle_area"]
    with pytest.raises(RowError) as raised:
        convert(1, variant)
    assert (raised.value.reason, raised.value.detail) == (SCHEMA_CONFLICT, "calculate_triangle_area")
    # the most frequent schema of a name is the one registered
    assert (
        registry["calculate_triangle_area"]["function"]["parameters"]["properties"]["base"]["type"]
        == "integer"
    )


def test_tool_config_declares_each_function_once(prepared):
    _, out, _ = prepared
    declared = yaml.safe_load((out / bfcl_multiturn.TOOLS_FILE).read_text())["tools"]
    names = [tool["config"]["schema"]["function"]["name"] for tool in declared]
    assert len(names) == len(set(names)) == 7
    assert {tool["class_name"] for tool in declared} == {bfcl_multiturn.TOOL_CLASS}
