import json

import pytest

from data_prep import toolalpaca
from data_prep.toolalpaca import TOOL_NAME, gold_calls
from data_prep.validate import RowError


def test_sdpo_actions_become_name_and_arguments():
    answer = json.dumps(
        [
            {"Action": "getForecast", "Action_Input": '{"city": "Zurich", "options": {"units": "metric"}}'},
            {"Action": "getRandomAxolotlImage", "Action_Input": "{}"},
            {"Action": "search", "Action_Input": {"q": "already decoded"}},
        ]
    )

    assert gold_calls(answer) == [
        {"name": "getForecast", "arguments": {"city": "Zurich", "options": {"units": "metric"}}},
        {"name": "getRandomAxolotlImage", "arguments": {}},
        {"name": "search", "arguments": {"q": "already decoded"}},
    ]


@pytest.mark.parametrize(
    "answer, reason",
    [
        (None, "missing answer"),
        ("", "missing answer"),
        ("[]", "missing answer"),
        ("[{", "not in verifier format"),
        (json.dumps([{"Action": "", "Action_Input": "{}"}]), "not in verifier format"),
        (json.dumps([{"Action": "a", "Action_Input": "{category: x}"}]), "not in verifier format"),
        (json.dumps([{"Action": "a", "Action_Input": "[1, 2]"}]), "not in verifier format"),
        (json.dumps(["getFacts"]), "not in verifier format"),
    ],
)
def test_malformed_answers_are_row_errors(answer, reason):
    with pytest.raises(RowError, match=reason):
        gold_calls(answer)


def test_files_feed_the_split_their_name_says(prepared):
    test_rows = prepared.rows("toolalpaca_test")
    train_rows = prepared.rows("toolalpaca_train")

    assert prepared.runs["toolalpaca"].exit_code == 0
    assert [row["extra_info"]["source_id"] for row in test_rows] == ["4046", "4047"]
    assert [row["extra_info"]["source_id"] for row in train_rows] == ["0", "3"]
    assert {row["extra_info"]["split"] for row in test_rows} == {"test"}
    assert {row["extra_info"]["split"] for row in train_rows} == {"train"}


def test_rows_keep_the_prompt_and_carry_gold_calls(prepared):
    row = prepared.rows("toolalpaca_test")[1]

    assert row["data_source"] == "tool/toolalpaca"
    assert row["prompt"][0]["role"] == "user"
    assert row["prompt"][0]["content"].startswith(
        "Your task is to answer the user's question using available tools."
    )
    assert row["prompt"][0]["content"].endswith(
        "Question: Show me a random axolotl picture and then three facts about their habitat."
    )
    assert json.loads(row["reward_model"]["ground_truth"]) == [
        {"name": "getRandomAxolotlImage", "arguments": {}},
        {"name": "getAxolotlFacts", "arguments": {"category": "habitat", "limit": 3}},
    ]


def test_rows_are_ready_for_the_tool_agent_loop(prepared):
    row = prepared.rows("toolalpaca_train")[0]

    assert row["agent_name"] == "single_turn_agent"
    assert row["extra_info"]["api_name"] == "WeatherNow"
    assert row["extra_info"]["need_tools_kwargs"] is False
    assert row["extra_info"]["tools_kwargs"] == {
        TOOL_NAME: {
            "create_kwargs": {"api_name": "WeatherNow", "ground_truth": row["reward_model"]["ground_truth"]}
        }
    }


def test_malformed_instances_are_reported(prepared):
    output = prepared.runs["toolalpaca"].output

    assert (
        "row 2 [answer]: ground truth not in verifier format (Action_Input of step 0 is not JSON)" in output
    )
    assert "row 1 [answer]: missing answer" in output
    assert "row 2 [prompt]: empty prompt" in output


def test_tool_agent_option_marks_rows_for_multi_turn(fixtures_dir, tmp_path, run_cli, parquet_rows):
    local = fixtures_dir / "tooluse" / "test.json"
    argv = ["--out", str(tmp_path), "--local-path", str(local), "--agent-name", "tool_agent", "--limit", "1"]
    assert run_cli(toolalpaca.main, argv).exit_code == 0

    rows = parquet_rows(tmp_path / "toolalpaca_test.parquet")
    assert len(rows) == 1
    assert not (tmp_path / "toolalpaca_train.parquet").exists()
    assert rows[0]["agent_name"] == "tool_agent"
    assert rows[0]["extra_info"]["need_tools_kwargs"] is True
