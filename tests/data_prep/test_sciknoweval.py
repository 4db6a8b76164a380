import datasets
import pytest

from data_prep import sciknoweval
from data_prep.sciknoweval import system_prompt, train_test_positions


@pytest.mark.parametrize("count", [500, 935, 7])
def test_split_reproduces_datasets_train_test_split(count):
    reference = datasets.Dataset.from_dict({"position": list(range(count))}).train_test_split(
        test_size=0.1, seed=42
    )

    train, test = train_test_positions(count, 0.1, 42)

    assert train == reference["train"]["position"]
    assert test == reference["test"]["position"]


def test_paper_split_sizes():
    for count, (train_size, test_size) in {
        500: (450, 50),
        2100: (1890, 210),
        800: (720, 80),
        935: (841, 94),
    }.items():
        train, test = train_test_positions(count, 0.1, 42)
        assert (len(train), len(test)) == (train_size, test_size)


def test_only_the_domains_l3_multiple_choice_is_kept(prepared):
    output = prepared.runs["sciknoweval"].output

    assert prepared.runs["sciknoweval"].exit_code == 0
    for reason in ("another domain", "level other than L3", "not multiple choice"):
        assert f"filtered 1 source records: {reason}" in output


def test_rows_ask_for_the_letter_in_answer_tags(prepared):
    rows = prepared.rows("sciknoweval_biology_train") + prepared.rows("sciknoweval_biology_test")
    by_index = {row["extra_info"]["index"]: row for row in rows}

    assert sorted(by_index) == [0, 1, 2, 3, 4]
    assert [by_index[i]["reward_model"]["ground_truth"] for i in range(5)] == ["B", "D", "A", "C", "A"]
    assert {row["data_source"] for row in rows} == {"science/sciknoweval/biology"}
    system, user = by_index[0]["prompt"]
    assert (
        system["role"] == "system"
        and "<answer>" in system["content"]
        and "(A, B, C or D)" in system["content"]
    )
    assert user["content"].endswith("A: -0.01\nB: 1.69\nC: 2.49\nD: 0.45\nPlease reason step by step.")
    assert "(A or B)" in by_index[2]["prompt"][0]["content"]
    assert by_index[2]["extra_info"]["choice_labels"] == ["A", "B"]


def test_malformed_questions_are_skipped_with_their_field(prepared):
    output = prepared.runs["sciknoweval"].output

    assert "row 5 [answerKey]: missing answer" in output
    assert "row 6 [answerKey]: ground truth not in verifier format ('E' is not among the options" in output
    assert "row 7 [question]: empty prompt" in output


def test_split_is_ninety_ten_over_the_pool(prepared):
    train = prepared.rows("sciknoweval_biology_train")
    test = prepared.rows("sciknoweval_biology_test")
    pool_size = 8
    _, test_positions = train_test_positions(pool_size, 0.1, 42)

    assert len(test_positions) == 1
    assert {row["extra_info"]["split"] for row in train} == {"train"}
    assert [row["extra_info"]["index"] for row in test] == test_positions
    assert len(train) + len(test) == 5


def test_other_domains_are_selectable(fixtures_dir, tmp_path, run_cli, parquet_rows):
    argv = [
        "--out",
        str(tmp_path),
        "--local-path",
        str(fixtures_dir / "sciknoweval"),
        "--domain",
        "chemistry",
    ]
    run = run_cli(sciknoweval.main, argv)

    assert run.exit_code == 0
    rows = parquet_rows(tmp_path / "sciknoweval_chemistry_test.parquet")
    assert [(row["data_source"], row["reward_model"]["ground_truth"]) for row in rows] == [
        ("science/sciknoweval/chemistry", "B")
    ]


def test_system_prompt_names_the_options():
    assert "3 options" in system_prompt(["A", "B", "C"])
    assert "(A, B or C)" in system_prompt(["A", "B", "C"])
