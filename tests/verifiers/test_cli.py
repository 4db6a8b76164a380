import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from verifiers.cli import main


def test_check_reads_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(r"so \boxed{204}"))
    assert main(["check", "--data-source", "math/aime", "--ground-truth", "204"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["acc"] and result["pred"] == "204"


def test_check_reads_files(tmp_path, capsys):
    (tmp_path / "r.txt").write_text("<answer>A</answer>")
    (tmp_path / "gt.txt").write_text("B")
    args = ["check", "--data-source", "science/x", "--ground-truth-file", str(tmp_path / "gt.txt")]
    assert main([*args, "--response-file", str(tmp_path / "r.txt")]) == 0
    assert json.loads(capsys.readouterr().out)["reason"] == "wrong_answer"


def test_check_config_error_exits_2(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("x"))
    assert main(["check", "--data-source", "nowhere/x", "--ground-truth", "1"]) == 2
    assert "cannot route" in capsys.readouterr().err


ROWS = [
    {"data_source": "math/aime", "response": r"\boxed{1}", "ground_truth": "1"},
    {"data_source": "math/aime", "response": "no idea", "ground_truth": "1"},
    {
        "data_source": "science/x",
        "response": "<answer>C</answer>",
        "ground_truth": "C",
        "extra_info": {"split": "test"},
    },
]


def test_batch_jsonl(tmp_path, capsys):
    path = tmp_path / "rollouts.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in ROWS))
    output = tmp_path / "scored.jsonl"
    assert main(["batch", str(path), "--workers", "2", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "rollouts: 3   mean score: 0.6667" in printed and "no_answer" in printed
    assert [json.loads(line)["acc"] for line in output.read_text().splitlines()] == [True, False, True]


def test_batch_parquet_json_summary(tmp_path, capsys):
    path = tmp_path / "rollouts.parquet"
    rows = [{**row, "extra_info": json.dumps(row.get("extra_info", {}))} for row in ROWS]
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert main(["batch", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 3 and summary["per_data_source"]["math/aime"]["mean_score"] == 0.5
    assert summary["failure_reasons"] == {"no_answer": 1}


@pytest.mark.parametrize("command", [["check", "--help"], ["batch", "--help"]])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(command)
    assert exit_info.value.code == 0 and "usage" in capsys.readouterr().out
