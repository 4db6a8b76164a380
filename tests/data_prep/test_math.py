import pytest

from data_prep import math_eval
from data_prep.math_common import MATH_PROMPT_SUFFIX, last_boxed_content, normalize_answer
from data_prep.validate import RowError


@pytest.mark.parametrize(
    "raw, expected",
    [
        (204, "204"),
        (12.0, "12"),
        (0.5, "0.5"),
        ("  70 ", "70"),
        ("$2\\sqrt{3}$", "2\\sqrt{3}"),
        ("\\boxed{\\frac{3}{4}}", "\\frac{3}{4}"),
        ("$\\boxed{5}$", "5"),
        ("\\(x^2\\)", "x^2"),
        ("\\boxed{1}+\\boxed{2}", "\\boxed{1}+\\boxed{2}"),
        ("$1$ and $2$", "$1$ and $2$"),
    ],
)
def test_answers_become_bare_strings(raw, expected):
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "  ", "$$", "\\boxed{}"])
def test_empty_answers_are_missing(raw):
    with pytest.raises(RowError, match="missing answer"):
        normalize_answer(raw)


def test_last_boxed_content_matches_braces():
    assert last_boxed_content("so \\boxed{1} then \\boxed{\\frac{a}{b}}.") == "\\frac{a}{b}"
    assert last_boxed_content("no box") is None
    assert last_boxed_content("\\boxed{unclosed") is None


def test_deepmath_rows(prepared):
    rows = prepared.rows("deepmath_train")

    assert prepared.runs["deepmath"].exit_code == 0
    assert [row["reward_model"]["ground_truth"] for row in rows] == [
        "\\frac{3}{4}",
        "204",
        "2\\sqrt{3}",
        "12",
    ]
    assert {row["data_source"] for row in rows} == {"math/deepmath"}
    assert all(row["prompt"][-1]["content"].endswith(MATH_PROMPT_SUFFIX) for row in rows)
    assert rows[0]["extra_info"] == {
        "index": 0,
        "split": "train",
        "verifier": "math",
        "difficulty": 2.0,
        "topic": "Mathematics -> Algebra -> Prealgebra -> Fractions",
    }


def test_deepmath_reports_each_malformed_record(prepared):
    output = prepared.runs["deepmath"].output

    assert "written 4, skipped 3" in output
    assert "row 4 [answer]: missing answer" in output
    assert "row 5 [problem]: empty prompt" in output
    assert (
        "row 6 [reward_model.ground_truth]: ground truth not in verifier format (unbalanced braces)" in output
    )


EXPECTED_EVAL_ANSWERS = {
    "aime2024": ["204", "033"],
    "aime2025": ["70", "588"],
    "hmmt_feb2025": ["\\frac{1}{576}", "103"],
    "hmmt_nov2025": ["2\\sqrt{3}", "\\dfrac{9}{4}"],
}


@pytest.mark.parametrize("benchmark", sorted(EXPECTED_EVAL_ANSWERS))
def test_eval_benchmark_rows(prepared, benchmark):
    rows = prepared.rows(f"{benchmark}_test")

    assert prepared.runs[benchmark].exit_code == 0
    assert [row["reward_model"]["ground_truth"] for row in rows] == EXPECTED_EVAL_ANSWERS[benchmark]
    assert {row["data_source"] for row in rows} == {f"math/{benchmark}"}
    assert {(row["extra_info"]["split"], row["extra_info"]["benchmark"]) for row in rows} == {
        ("test", benchmark)
    }


def test_eval_answer_comes_from_the_boxed_solution_when_no_answer_field(prepared):
    assert [row["extra_info"]["source_id"] for row in prepared.rows("aime2024_test")] == ["60", "61"]
    assert "row 2 [answer]: missing answer" in prepared.runs["aime2024"].output
    assert "row 2 [answer]: missing answer" in prepared.runs["aime2025"].output


def test_eval_local_path_needs_a_single_benchmark(fixtures_dir, tmp_path):
    with pytest.raises(SystemExit):
        math_eval.main(["--out", str(tmp_path), "--local-path", str(fixtures_dir / "math" / "aime24.jsonl")])
