import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_prep.common import (
    ROWS_PER_GROUP,
    build_parser,
    first_present,
    iter_records_file,
    local_files,
    read_local_records,
    sample_records,
    write_outputs,
    write_verl_parquet,
)
from data_prep.validate import EMPTY_PROMPT, RowProblem


def math_row(index: int, answer: str = "1") -> dict:
    return {
        "data_source": "math/deepmath",
        "prompt": [{"role": "user", "content": f"question {index}"}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"index": index, "split": "train", "verifier": "math"},
    }


def test_json_file_may_hold_an_array_or_json_lines(tmp_path):
    array_file = tmp_path / "array.json"
    array_file.write_text(json.dumps([{"a": 1}, {"a": 2}]))
    lines_file = tmp_path / "lines.json"
    lines_file.write_text('{"a": 1}\n{"a": 2}\n')
    single_line_file = tmp_path / "single.json"
    single_line_file.write_text('{"a": 1}\n')

    assert list(iter_records_file(array_file)) == [{"a": 1}, {"a": 2}]
    assert list(iter_records_file(lines_file)) == [{"a": 1}, {"a": 2}]
    assert list(iter_records_file(single_line_file)) == [{"a": 1}]


def test_jsonl_and_parquet_files_are_read(tmp_path):
    jsonl_file = tmp_path / "rows.jsonl"
    jsonl_file.write_text('{"a": 1}\n\n{"a": 2}\n')
    parquet_file = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([{"a": 3, "b": {"c": "x"}}]), parquet_file)

    assert list(iter_records_file(jsonl_file)) == [{"a": 1}, {"a": 2}]
    assert list(iter_records_file(parquet_file)) == [{"a": 3, "b": {"c": "x"}}]


def test_a_directory_is_read_file_by_file_in_name_order(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"n": 2}\n')
    (tmp_path / "a.jsonl").write_text('{"n": 1}\n')
    (tmp_path / "notes.txt").write_text("ignored")

    assert [p.name for p in local_files(tmp_path)] == ["a.jsonl", "b.jsonl"]
    assert read_local_records(tmp_path) == [{"n": 1}, {"n": 2}]


def test_missing_or_empty_local_path_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        local_files(tmp_path / "absent.jsonl")
    with pytest.raises(FileNotFoundError):
        local_files(tmp_path)


def test_sample_is_seeded_sized_and_keeps_source_order():
    records = list(range(100))
    sample = sample_records(records, 10, seed=3)

    assert len(sample) == 10
    assert sample == sorted(sample)
    assert sample == sample_records(records, 10, seed=3)
    assert sample != sample_records(records, 10, seed=4)
    assert sample_records(records, None, seed=3) == records
    assert sample_records(records, 500, seed=3) == records


def test_first_present_reads_the_first_published_field_name():
    assert first_present({"Problem": "p", "question": "q"}, ("problem", "Problem", "question")) == "p"
    assert first_present({"other": 1}, ("problem",)) is None


def test_cli_shape_is_shared():
    args = build_parser("x", default_seed=42).parse_args(["--out", "o"])
    assert (str(args.out), args.local_path, args.limit, args.seed) == ("o", None, None, 42)


def test_writer_uses_large_strings_and_small_row_groups(tmp_path):
    path = tmp_path / "out.parquet"
    report = write_verl_parquet([math_row(i) for i in range(2 * ROWS_PER_GROUP + 1)], path)

    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    assert report.written == 2 * ROWS_PER_GROUP + 1
    assert parquet.metadata.num_row_groups == 3
    assert schema.field("data_source").type == pa.large_string()
    assert schema.field("reward_model").type.field("ground_truth").type == pa.large_string()
    assert schema.field("prompt").type == pa.large_list(
        pa.struct([("role", pa.large_string()), ("content", pa.large_string())])
    )


def test_writer_skips_invalid_rows_and_reports_them(tmp_path):
    path = tmp_path / "out.parquet"
    rejected_by_converter = RowProblem(7, "question", EMPTY_PROMPT)
    report = write_verl_parquet([math_row(0), math_row(1, answer=""), rejected_by_converter], path)

    assert report.written == 1
    assert [(p.index, p.field) for p in report.skipped] == [(1, "reward_model.ground_truth"), (7, "question")]
    assert [row["extra_info"]["index"] for row in pq.read_table(path).to_pylist()] == [0]


def test_run_fails_and_writes_nothing_when_every_row_is_skipped(tmp_path, capsys):
    exit_code = write_outputs({"all_bad": [math_row(0, answer="")]}, tmp_path)

    printed = capsys.readouterr()
    assert exit_code == 1
    assert not (tmp_path / "all_bad.parquet").exists()
    assert "written 0, skipped 1 (missing answer x1)" in printed.out
    assert "row 0 [reward_model.ground_truth]: missing answer" in printed.out


def test_run_succeeds_when_some_rows_are_written(tmp_path, capsys):
    exit_code = write_outputs({"mixed": [math_row(0), math_row(1, answer="")]}, tmp_path)

    assert exit_code == 0
    assert "written 1, skipped 1" in capsys.readouterr().out
