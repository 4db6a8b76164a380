"""The bundled tiny task: deterministic data, an honest verifier, a model with *partial* accuracy, and
parquet that verl's own dataset class loads with the tiny tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import verl
from omegaconf import OmegaConf

from recipe.mopd.cpu import tiny_task

LEGACY_DATA_CONFIG = Path(verl.__file__).parent / "trainer" / "config" / "data" / "legacy_data.yaml"


def test_make_rows_is_deterministic_and_seed_dependent():
    first, second = tiny_task.make_rows(50, seed=3), tiny_task.make_rows(50, seed=3)
    assert first == second
    assert first != tiny_task.make_rows(50, seed=4)
    for index, row in enumerate(first):
        assert row["data_source"] == tiny_task.DATA_SOURCE
        assert row["extra_info"]["index"] == index
        assert row["answer_text"] == f"\\boxed{{{row['reward_model']['ground_truth']}}}"
        a, b = row["prompt"][0]["content"].removeprefix("Add ").split(".")[0].split("+")
        assert int(a) + int(b) == int(row["reward_model"]["ground_truth"])
        assert max(int(a), int(b)) <= tiny_task.MAX_OPERAND


@pytest.mark.parametrize(
    "solution, score, format_ok",
    [
        ("\\boxed{12}", 1.0, True),
        ("first \\boxed{3} then corrected to \\boxed{12}", 1.0, True),  # the last box is the answer
        ("  \\boxed{ 12 } ", 1.0, True),
        ("\\boxed{13}", 0.0, True),
        ("\\boxed{12} no wait \\boxed{21}", 0.0, True),
        ("the answer is 12", 0.0, False),
        ("", 0.0, False),
    ],
)
def test_compute_score_verdicts(solution, score, format_ok):
    result = tiny_task.compute_score(tiny_task.DATA_SOURCE, solution, "12")
    assert result["score"] == score
    assert result["acc"] is (score == 1.0)
    assert result["format_ok"] is format_ok
    assert (result["feedback"] == "") is (score == 1.0)


def test_feedback_never_leaks_the_ground_truth():
    # MOPD shows the verifier feedback to the teacher; a leaked answer would make the signal a cheat.
    for total in range(2 * tiny_task.MAX_OPERAND + 1):
        truth = str(total)
        for solution in ("no box here", f"\\boxed{{{total + 1}}}", "\\boxed{}", f"{truth} but unboxed"):
            feedback = tiny_task.compute_score(tiny_task.DATA_SOURCE, solution, truth)["feedback"]
            assert feedback and truth not in feedback, (solution, feedback)


def test_prepared_model_has_partial_accuracy(tiny_assets):
    info = json.loads((Path(tiny_assets["model"]) / "pretrain.json").read_text())
    assert info["sampled_accuracy_t1"] == tiny_assets["sampled_accuracy_t1"]
    # MOPD learns from groups that mix successes and failures; a model at 0 or 1 gives it nothing.
    assert 0.05 < info["sampled_accuracy_t1"] < 0.95
    # The stored figure must describe the weights on disk, not an earlier build.
    measured = tiny_task.sampled_accuracy(Path(tiny_assets["model"]), num_prompts=32, seed=1)
    assert 0.05 < measured < 0.95


def test_prepare_reuses_the_fingerprinted_build(tiny_assets, tmp_path):
    root = Path(tiny_assets["model"]).parent
    weights = Path(tiny_assets["model"]) / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    again = tiny_task.prepare(root)
    assert again == tiny_assets
    assert weights.stat().st_mtime_ns == stamp, "a cached build was rebuilt"
    assert Path(again["model"]).name.endswith(tiny_task._fingerprint())


def test_parquet_loads_in_verls_rlhf_dataset(tiny_assets, tmp_path, monkeypatch):
    import datasets
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))
    config = OmegaConf.load(LEGACY_DATA_CONFIG)
    config.cache_dir = str(tmp_path / "verl_cache")
    config.filter_overlong_prompts = True
    config.filter_overlong_prompts_workers = 1
    # The CPU overlay's limit: every task prompt must survive the overlong filter.
    config.max_prompt_length = 64
    tokenizer = AutoTokenizer.from_pretrained(tiny_assets["model"])

    for split in ("train", "val"):
        rows = pq.read_table(tiny_assets[split]).to_pylist()
        assert "answer_text" not in rows[0], "the target answer must not ride along in the RL data"
        dataset = RLHFDataset(tiny_assets[split], tokenizer, config)
        assert len(dataset) == len(rows) > 0
        items = [dataset[i] for i in range(len(dataset))]
        for item, row in zip(items, rows):
            assert item["raw_prompt"] == row["prompt"]
            assert item["reward_model"]["ground_truth"] == row["reward_model"]["ground_truth"]
            assert item["index"] == row["extra_info"]["index"]
        batch = collate_fn(items)
        assert set(batch["data_source"]) == {tiny_task.DATA_SOURCE}
