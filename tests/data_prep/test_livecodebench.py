import argparse
import base64
import json
import pickle
import re
import zlib
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_prep import livecodebench
from data_prep.common import read_local_records
from data_prep.livecodebench import decode_test_cases, release_files
from data_prep.validate import RowError

# Valid in-window problems of the fixture: the stdin problem abc400_a (2 public + 4 private tests) and
# the call-based problem 3500 (1 public + 3 private tests).
TEST_COUNTS = {"abc400_a": 6, "3500": 4}
PUBLIC_COUNTS = {"abc400_a": 2, "3500": 1}


def encode(payload: bytes) -> str:
    return base64.b64encode(zlib.compress(payload)).decode()


def by_question(rows):
    return {row["extra_info"]["question_id"]: row for row in rows}


def ground_truth_tests(row):
    return json.loads(row["reward_model"]["ground_truth"])


@pytest.mark.parametrize(
    "tag, files",
    [
        ("release_v1", ["test.jsonl"]),
        ("release_v3", ["test.jsonl", "test2.jsonl", "test3.jsonl"]),
        ("release_latest", list(livecodebench.RELEASE_FILES)),
        ("v6", ["test6.jsonl"]),
        ("v4_v5", ["test4.jsonl", "test5.jsonl"]),
    ],
)
def test_release_tags_name_the_published_files(tag, files):
    assert release_files(tag) == files


@pytest.mark.parametrize("tag", ["release_v7", "v0", "v5_v4", "latest"])
def test_unknown_release_tags_are_rejected(tag):
    with pytest.raises(argparse.ArgumentTypeError):
        release_files(tag)


def test_private_tests_decode_from_plain_json_or_the_compressed_pickle():
    tests = [{"input": "1\n", "output": "2\n", "testtype": "stdin"}]

    assert decode_test_cases(json.dumps(tests), "private_test_cases") == tests
    assert decode_test_cases(encode(pickle.dumps(json.dumps(tests))), "private_test_cases") == tests
    assert decode_test_cases(encode(pickle.dumps(tests)), "private_test_cases") == tests


def test_a_pickled_global_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    hostile = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()

    with pytest.raises(RowError, match="undecodable tests.*refused global os.system"):
        decode_test_cases(encode(hostile), "private_test_cases")
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        "not-a-valid-payload",
        encode(b"\x80\x04\x95garbage"),
        encode(pickle.dumps({1, 2, 3})),
        encode(pickle.dumps(json.dumps({"input": "1"}))),
        base64.b64encode(zlib.compress(pickle.dumps("[]"))[:-4]).decode(),
    ],
    ids=["not-base64", "bad-pickle", "set", "not-a-test-list", "truncated-zlib"],
)
def test_undecodable_tests_are_row_errors(payload):
    with pytest.raises(RowError, match="undecodable tests"):
        decode_test_cases(payload, "private_test_cases")


def test_paper_protocol_trains_on_half_of_each_problems_tests(prepared):
    train = by_question(prepared.rows("livecodebench_train"))
    test = by_question(prepared.rows("livecodebench_test"))

    assert set(train) == set(test) == set(TEST_COUNTS)
    for question_id, count in TEST_COUNTS.items():
        full, subset = ground_truth_tests(test[question_id]), ground_truth_tests(train[question_id])
        assert len(full["inputs"]) == count and full["public"] == PUBLIC_COUNTS[question_id]
        assert len(subset["inputs"]) == count // 2 == train[question_id]["extra_info"]["num_tests"]
        kept = [full["inputs"].index(test_input) for test_input in subset["inputs"]]
        assert kept == sorted(kept)
        assert subset["outputs"] == [full["outputs"][i] for i in kept]
        assert subset["public"] == sum(1 for i in kept if i < PUBLIC_COUNTS[question_id])
        assert train[question_id]["extra_info"]["split"] == "train"
        assert test[question_id]["extra_info"]["split"] == "test"


def test_public_tests_come_first(prepared):
    full = ground_truth_tests(by_question(prepared.rows("livecodebench_test"))["abc400_a"])

    assert full["inputs"][:2] == ["1 2\n", "5 7\n"]
    assert full["fn_name"] is None and full["time_limit"] == 6


def test_call_based_problem_carries_fn_name_and_starter_code(prepared):
    row = by_question(prepared.rows("livecodebench_test"))["3500"]

    assert ground_truth_tests(row)["fn_name"] == "countAbove"
    assert ground_truth_tests(row)["inputs"][0] == "[1, 5, 3]\n2"
    assert "def countAbove(self, nums: List[int], k: int) -> int:" in row["prompt"][0]["content"]
    assert "standard input" not in row["prompt"][0]["content"]


def test_stdin_problem_prompt_asks_for_stdin_io(prepared):
    content = by_question(prepared.rows("livecodebench_test"))["abc400_a"]["prompt"][0]["content"]

    assert "Read the input from standard input" in content
    assert "```python code block" in content


def test_window_filter_and_skips_are_reported(prepared):
    output = prepared.runs["livecodebench"].output

    assert prepared.runs["livecodebench"].exit_code == 0
    assert "filtered 1 source records: contest_date outside [2025-02-01, 2025-05-01)" in output
    assert "row 3 [private_test_cases]: undecodable tests" in output
    assert (
        "row 4 [private_test_cases]: undecodable tests (UnpicklingError: refused global os.system)" in output
    )
    assert (
        "row 5 [metadata]: ground truth not in verifier format (call-based tests but no func_name)" in output
    )


def test_test_subsets_are_reproducible_and_seeded(fixtures_dir, tmp_path, run_cli, parquet_rows):
    def train_inputs(seed: int) -> tuple:
        out = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        argv = ["--out", str(out), "--local-path", str(fixtures_dir / "livecodebench"), "--seed", str(seed)]
        run_cli(livecodebench.main, argv)
        rows = by_question(parquet_rows(out / "livecodebench_train.parquet"))
        return tuple(ground_truth_tests(rows["abc400_a"])["inputs"])

    default = train_inputs(0)
    assert train_inputs(0) == default
    assert any(train_inputs(seed) != default for seed in range(1, 6))


def test_problem_split_keeps_all_tests_and_separates_problems(fixtures_dir, tmp_path, run_cli, parquet_rows):
    argv = [
        "--out",
        str(tmp_path),
        "--local-path",
        str(fixtures_dir / "livecodebench"),
        "--split-mode",
        "problems",
    ]
    assert run_cli(livecodebench.main, argv).exit_code == 0

    train = by_question(parquet_rows(tmp_path / "livecodebench_train.parquet"))
    test = by_question(parquet_rows(tmp_path / "livecodebench_test.parquet"))
    assert set(train).isdisjoint(test)
    assert set(train) | set(test) == set(TEST_COUNTS)
    for question_id, row in {**train, **test}.items():
        assert len(ground_truth_tests(row)["inputs"]) == TEST_COUNTS[question_id]


def test_release_tag_and_window_select_problems(fixtures_dir, tmp_path, run_cli, parquet_rows):
    argv = [
        "--out",
        str(tmp_path),
        "--local-path",
        str(fixtures_dir / "livecodebench"),
        "--release",
        "v5_v6",
        "--start-date",
        "2025-01-01",
        "--end-date",
        "2025-02-01",
    ]
    assert run_cli(livecodebench.main, argv).exit_code == 0

    assert set(by_question(parquet_rows(tmp_path / "livecodebench_test.parquet"))) == {"abc389_a", "abc390_a"}


def test_release_files_missing_from_a_local_directory_are_an_error(fixtures_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="test.jsonl"):
        livecodebench.main(
            [
                "--out",
                str(tmp_path),
                "--local-path",
                str(fixtures_dir / "livecodebench"),
                "--release",
                "release_v6",
            ]
        )


def test_nothing_in_the_window_fails_the_run(fixtures_dir, tmp_path, run_cli):
    argv = [
        "--out",
        str(tmp_path),
        "--local-path",
        str(fixtures_dir / "livecodebench"),
        "--start-date",
        "2030-01-01",
        "--end-date",
        "2031-01-01",
    ]
    assert run_cli(livecodebench.main, argv).exit_code == 1


def test_the_parquet_conversion_is_read_too(fixtures_dir, tmp_path, run_cli, parquet_rows):
    """refs/pr/6 publishes the same fields as parquet, with contest_date as a timestamp."""
    records = read_local_records(fixtures_dir / "livecodebench" / "test6.jsonl")
    for record in records:
        record["contest_date"] = datetime.fromisoformat(record["contest_date"])
    converted = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(records), converted)

    run = run_cli(livecodebench.main, ["--out", str(tmp_path / "out"), "--local-path", str(converted)])

    assert run.exit_code == 0
    rows = parquet_rows(tmp_path / "out" / "livecodebench_test.parquet")
    assert {row["extra_info"]["question_id"]: row["extra_info"]["contest_date"] for row in rows} == {
        "abc400_a": "2025-02-15",
        "3500": "2025-03-08",
    }


def test_limit_samples_among_the_problems_inside_the_window(fixtures_dir, tmp_path, run_cli):
    def counts(limit: int) -> tuple[int, int]:
        argv = [
            "--out",
            str(tmp_path),
            "--local-path",
            str(fixtures_dir / "livecodebench"),
            "--limit",
            str(limit),
        ]
        output = run_cli(livecodebench.main, argv).output
        written, skipped = re.search(
            r"livecodebench_test.parquet.*: written (\d+), skipped (\d+)", output
        ).groups()
        return int(written), int(skipped)

    assert counts(5) == (2, 3)
    assert sum(counts(3)) == 3
