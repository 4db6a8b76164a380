import copy
import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from data_prep import validate
from data_prep.common import rows_to_table
from data_prep.validate import (
    BAD_GROUND_TRUTH,
    EMPTY_PROMPT,
    MALFORMED_FIELD,
    MISSING_ANSWER,
    code_ground_truth_problem,
    tool_ground_truth_problem,
    validate_row,
)

CODE_TESTS = {"inputs": ["1 2\n"], "outputs": ["3\n"], "fn_name": None, "public": 1, "time_limit": 6}

VALID_ROWS = {
    "math": ("math/aime2024", "\\frac{3}{4}", {}),
    "code": ("code/livecodebench", json.dumps(CODE_TESTS), {}),
    "science": ("science/sciknoweval/biology", "C", {"choice_labels": ["A", "B", "C", "D"]}),
    "tool": ("tool/toolalpaca", json.dumps([{"name": "getFacts", "arguments": {"limit": 3}}]), {}),
}


def make_row(verifier: str) -> dict:
    data_source, ground_truth, extra = VALID_ROWS[verifier]
    return {
        "data_source": data_source,
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "A question"}],
        "ability": verifier,
        "reward_model": {"style": "rule", "ground_truth": ground_truth},
        "extra_info": {"index": 5, "split": "test", "verifier": verifier, **extra},
    }


@pytest.mark.parametrize("verifier", sorted(VALID_ROWS))
def test_valid_rows_pass(verifier):
    assert validate_row(make_row(verifier)) == []


def answer(value):
    return lambda row: row["reward_model"].update(ground_truth=value)


def extra(**changes):
    return lambda row: row["extra_info"].update(changes)


MALFORMED = [
    ("math", answer(""), "reward_model.ground_truth", MISSING_ANSWER),
    ("math", answer(None), "reward_model.ground_truth", MISSING_ANSWER),
    ("math", lambda row: row.update(prompt=[]), "prompt", EMPTY_PROMPT),
    ("math", lambda row: row["prompt"][1].update(content="  "), "prompt", EMPTY_PROMPT),
    ("math", lambda row: row["prompt"][1].update(role="assistant"), "prompt", MALFORMED_FIELD),
    ("math", answer("\\frac{1}{2"), "reward_model.ground_truth", BAD_GROUND_TRUTH),
    ("math", answer("\\boxed{2}"), "reward_model.ground_truth", BAD_GROUND_TRUTH),
    ("math", lambda row: row["reward_model"].update(style="model"), "reward_model.style", MALFORMED_FIELD),
    ("math", extra(verifier="code"), "data_source", MALFORMED_FIELD),
    ("math", extra(verifier="chemistry"), "extra_info.verifier", MALFORMED_FIELD),
    ("math", extra(index=-1), "extra_info.index", MALFORMED_FIELD),
    ("math", extra(split=""), "extra_info.split", MALFORMED_FIELD),
    ("code", answer("{not json"), "reward_model.ground_truth", BAD_GROUND_TRUTH),
    ("science", answer("E"), "reward_model.ground_truth", BAD_GROUND_TRUTH),
    ("science", answer("c"), "reward_model.ground_truth", BAD_GROUND_TRUTH),
    ("tool", answer("[]"), "reward_model.ground_truth", BAD_GROUND_TRUTH),
    ("tool", lambda row: row.update(agent_name="react_agent"), "agent_name", MALFORMED_FIELD),
    ("tool", extra(tool_selection=[]), "extra_info.tool_selection", MALFORMED_FIELD),
    ("tool", extra(tool_selection=["getFacts", ""]), "extra_info.tool_selection", MALFORMED_FIELD),
    ("tool", extra(tools_kwargs=["getFacts"]), "extra_info.tools_kwargs", MALFORMED_FIELD),
]


def test_tool_agent_rows_pass():
    row = make_row("tool")
    row["agent_name"] = "tool_agent"
    row["extra_info"].update(tool_selection=["getFacts"], tools_kwargs={"getFacts": {"create_kwargs": {}}})
    assert validate_row(row) == []


def test_tools_kwargs_keyed_by_per_row_tool_names_are_caught_after_a_parquet_round_trip(tmp_path):
    rows = [make_row("tool"), make_row("tool")]
    for row, name in zip(rows, ("getFacts", "getJoke")):
        row["agent_name"] = "tool_agent"
        row["extra_info"]["tools_kwargs"] = {name: {"create_kwargs": {"limit": 3}}}
    pq.write_table(rows_to_table(rows), tmp_path / "tool.parquet")

    _, problems = validate.validate_file(tmp_path / "tool.parquet")

    assert [(p.index, p.field) for p in problems] == [
        (0, "extra_info.tools_kwargs"),
        (1, "extra_info.tools_kwargs"),
    ]
    assert "'getJoke' maps to None" in problems[0].detail


@pytest.mark.parametrize("verifier, mutate, field, reason", MALFORMED)
def test_malformed_rows_are_reported_with_index_and_field(verifier, mutate, field, reason):
    row = copy.deepcopy(make_row(verifier))
    mutate(row)

    problems = validate_row(row)

    assert (problems[0].index, problems[0].field, problems[0].reason) == (
        row["extra_info"]["index"],
        field,
        reason,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"inputs": []},
        {"outputs": ["3\n", "4\n"]},
        {"inputs": [1]},
        {"fn_name": "not an identifier"},
        {"public": 2},
        {"public": True},
        {"time_limit": 0},
        {"fn_name": "solve", "inputs": ["[1, 2"]},
    ],
)
def test_code_ground_truth_must_be_runnable_tests(change):
    assert code_ground_truth_problem(json.dumps({**CODE_TESTS, **change}))


def test_call_based_tests_are_newline_separated_json():
    tests = {"inputs": ["[1, 2]\n3"], "outputs": ["true"], "fn_name": "solve", "public": 0}
    assert code_ground_truth_problem(json.dumps(tests)) is None


@pytest.mark.parametrize(
    "ground_truth",
    [
        json.dumps({"name": "x", "arguments": {}}),
        json.dumps([{"name": "x"}]),
        json.dumps([{"name": "", "arguments": {}}]),
        json.dumps([{"name": "x", "arguments": "{}"}]),
        json.dumps([{"Action": "x", "Action_Input": "{}"}]),
    ],
)
def test_tool_ground_truth_is_a_list_of_name_and_arguments(ground_truth):
    assert tool_ground_truth_problem(ground_truth)


def test_command_reports_bad_rows_and_fails(tmp_path, capsys):
    bad = make_row("math")
    bad["reward_model"]["ground_truth"] = ""
    path = tmp_path / "rows.parquet"
    pq.write_table(rows_to_table([make_row("math"), bad]), path)

    exit_code = validate.main([str(path)])

    printed = capsys.readouterr().out
    assert exit_code == 1
    assert "2 rows, 1 valid, 1 invalid" in printed
    assert "row 1 [reward_model.ground_truth]: missing answer" in printed


def test_command_accepts_every_file_the_writers_produced(prepared, capsys):
    assert validate.main([str(path) for path in prepared.parquet_files()]) == 0
    assert "invalid" not in capsys.readouterr().out.replace(" 0 invalid", "")


def test_module_runs_as_a_command(prepared):
    result = subprocess.run(
        [sys.executable, "-m", "data_prep.validate", str(prepared.out_dir / "livecodebench_test.parquet")],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "2 rows, 2 valid, 0 invalid" in result.stdout


def run_validate(*paths):
    return subprocess.run(
        [sys.executable, "-m", "data_prep.validate", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: None, "no such file"),
        (lambda path: path.write_bytes(b""), "empty file"),
        (lambda path: path.write_text("index,answer\n0,42\n"), "cannot read as parquet"),
        (lambda path: path.write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1"), "cannot read as parquet"),
        (lambda path: path.mkdir(), "is a directory"),
    ],
    ids=["missing", "empty", "csv", "corrupt", "directory"],
)
def test_unreadable_file_is_one_line_naming_it(tmp_path, make, problem):
    path = tmp_path / "rows.parquet"
    make(path)

    result = run_validate(path)

    assert result.returncode == 1
    assert result.stdout.strip().splitlines() == [result.stdout.strip()]
    assert result.stdout.startswith(f"{path}: ") and problem in result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unreadable_file_does_not_stop_the_others(tmp_path, capsys):
    good = tmp_path / "good.parquet"
    pq.write_table(rows_to_table([make_row("math")]), good)

    exit_code = validate.main([str(tmp_path / "missing.parquet"), str(good)])

    printed = capsys.readouterr().out
    assert exit_code == 1
    assert "missing.parquet: no such file" in printed and "1 rows, 1 valid, 0 invalid" in printed


# (spec, what it exercises): the validator and the code verifier must agree on every one of them.
CODE_SPECS = [
    (
        {"inputs": ["[1, 2]\n3\n"], "outputs": ["true"], "fn_name": "solve"},
        "call-based input, trailing newline",
    ),
    ({"inputs": ["[1, 2]\n\n3"], "outputs": ["true"], "fn_name": "solve"}, "blank line between arguments"),
    ({"inputs": ["[1, 2"], "outputs": ["true"], "fn_name": "solve"}, "broken JSON argument"),
    ({"inputs": ["1"], "outputs": ["not json"], "fn_name": "solve"}, "call-based output not JSON"),
    ({"inputs": ["1"], "outputs": [True], "fn_name": "solve"}, "call-based output already decoded"),
    ({"inputs": ["1 2\n"], "outputs": ["3\n"], "fn_name": ""}, "empty fn_name means stdin"),
    ({"inputs": ["1 2\n"], "outputs": [3]}, "stdin output not a string"),
    ({"inputs": ["1 2\n"], "outputs": ["3\n"], "fn_name": "no such name"}, "fn_name not an identifier"),
    ({"inputs": ["1 2\n"], "outputs": ["3\n"], "public": 2}, "public beyond the tests"),
    ({"inputs": ["1 2\n"], "outputs": ["3\n"], "time_limit": 0}, "zero time limit"),
    ({"inputs": ["1 2\n"], "outputs": ["3\n"], "abs_tol": 1e-6, "rel_tol": 1e-9}, "float tolerance"),
    ({"inputs": ["1 2\n"], "outputs": ["3\n"], "abs_tol": -1}, "negative tolerance"),
    ({"inputs": ["1 2\n"], "outputs": ["3\n"], "program_suffix": 3}, "suffix not source"),
    ({"inputs": [], "outputs": []}, "no tests"),
    ({"inputs": ["1"], "outputs": ["1", "2"]}, "lengths differ"),
]


@pytest.mark.parametrize(("spec", "case"), CODE_SPECS, ids=[case for _, case in CODE_SPECS])
def test_validator_and_code_verifier_agree_on_test_specs(spec, case):
    from verifiers.code.tests_spec import parse_code_tests
    from verifiers.errors import GroundTruthError

    try:
        parse_code_tests(json.dumps(spec))
        verifier_accepts = True
    except GroundTruthError:
        verifier_accepts = False

    assert (code_ground_truth_problem(json.dumps(spec)) is None) is verifier_accepts


def test_call_based_input_with_a_trailing_newline_is_valid():
    row = make_row("code")
    spec = {"inputs": ["[1, 2]\n3\n"], "outputs": ["true"], "fn_name": "solve", "public": 0}
    row["reward_model"]["ground_truth"] = json.dumps(spec)
    assert validate_row(row) == []
