"""Without --local-path each module asks the hub for the right dataset; the hub itself is replaced by the
checked-in fixtures, as nothing here can reach it."""

import datasets
import huggingface_hub
import pytest

from data_prep import deepmath, livecodebench, math_eval, sciknoweval, toolalpaca
from data_prep.common import read_local_records


class FakeDataset:
    """The part of datasets.Dataset the loaders use; it keeps the fixtures' deliberately mixed column types."""

    def __init__(self, records):
        self.records = records
        self.column_names = list(dict.fromkeys(key for record in records for key in record))

    def select_columns(self, columns):
        return FakeDataset(
            [{key: record[key] for key in columns if key in record} for record in self.records]
        )

    def __iter__(self):
        return iter(self.records)


@pytest.fixture
def hub_calls(monkeypatch, fixtures_dir):
    """Record every datasets.load_dataset call and answer it with fixture records."""
    calls = []
    answers = {
        "zwhe99/DeepMath-103K": fixtures_dir / "math" / "deepmath.jsonl",
        "math-ai/aime24": fixtures_dir / "math" / "aime24.jsonl",
        "math-ai/aime25": fixtures_dir / "math" / "aime25.jsonl",
        "MathArena/hmmt_feb_2025": fixtures_dir / "math" / "hmmt_feb_2025.jsonl",
        "MathArena/hmmt_nov_2025": fixtures_dir / "math" / "hmmt_nov_2025.jsonl",
        "hicai-zju/SciKnowEval": fixtures_dir / "sciknoweval" / "sciknoweval_test.jsonl",
        toolalpaca.SDPO_FILE_URL.format(split="train"): fixtures_dir / "tooluse" / "train.json",
        toolalpaca.SDPO_FILE_URL.format(split="test"): fixtures_dir / "tooluse" / "test.json",
    }

    def load_dataset(path, name=None, *, split, data_files=None, **kwargs):
        calls.append({"path": path, "name": name, "split": split, "data_files": data_files, **kwargs})
        return FakeDataset(read_local_records(answers[data_files or path]))

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_deepmath_reads_the_train_split(hub_calls, tmp_path, run_cli, parquet_rows):
    assert run_cli(deepmath.main, ["--out", str(tmp_path)]).exit_code == 0

    assert hub_calls == [{"path": "zwhe99/DeepMath-103K", "name": None, "split": "train", "data_files": None}]
    assert len(parquet_rows(tmp_path / "deepmath_train.parquet")) == 4


def test_math_eval_reads_every_benchmark(hub_calls, tmp_path, run_cli):
    assert run_cli(math_eval.main, ["--out", str(tmp_path)]).exit_code == 0

    assert [(call["path"], call["split"]) for call in hub_calls] == [
        ("math-ai/aime24", "test"),
        ("math-ai/aime25", "test"),
        ("MathArena/hmmt_feb_2025", "train"),
        ("MathArena/hmmt_nov_2025", "train"),
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "aime2024_test.parquet",
        "aime2025_test.parquet",
        "hmmt_feb2025_test.parquet",
        "hmmt_nov2025_test.parquet",
    ]


def test_sciknoweval_reads_the_published_test_split(hub_calls, tmp_path, run_cli):
    assert run_cli(sciknoweval.main, ["--out", str(tmp_path)]).exit_code == 0

    assert hub_calls == [{"path": "hicai-zju/SciKnowEval", "name": None, "split": "test", "data_files": None}]


def test_toolalpaca_reads_sdpo_files_at_a_pinned_commit(hub_calls, tmp_path, run_cli):
    assert run_cli(toolalpaca.main, ["--out", str(tmp_path)]).exit_code == 0

    assert [call["data_files"] for call in hub_calls] == [
        f"https://raw.githubusercontent.com/lasgroup/SDPO/{toolalpaca.SDPO_COMMIT}/datasets/tooluse/train.json",
        f"https://raw.githubusercontent.com/lasgroup/SDPO/{toolalpaca.SDPO_COMMIT}/datasets/tooluse/test.json",
    ]


def test_livecodebench_downloads_the_release_files_not_the_loading_script(
    monkeypatch, fixtures_dir, tmp_path, run_cli, parquet_rows
):
    downloads = []

    def hf_hub_download(repo_id, filename, *, repo_type):
        downloads.append((repo_id, filename, repo_type))
        return str(fixtures_dir / "livecodebench" / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    argv = ["--out", str(tmp_path), "--release", "v5_v6", "--start-date", "2025-01-01"]
    assert run_cli(livecodebench.main, argv).exit_code == 0

    assert downloads == [
        ("livecodebench/code_generation_lite", "test5.jsonl", "dataset"),
        ("livecodebench/code_generation_lite", "test6.jsonl", "dataset"),
    ]
    questions = {
        row["extra_info"]["question_id"] for row in parquet_rows(tmp_path / "livecodebench_test.parquet")
    }
    assert questions == {"abc389_a", "abc390_a", "abc400_a", "3500"}
