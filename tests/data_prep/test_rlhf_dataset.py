"""The written parquet loads in verl's RLHFDataset with the project's tokenizer."""

from pathlib import Path

import datasets
import pytest
import verl
from omegaconf import OmegaConf
from transformers import AutoTokenizer
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

LEGACY_DATA_CONFIG = Path(verl.__file__).parent / "trainer" / "config" / "data" / "legacy_data.yaml"


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def data_config(cache_dir: Path):
    config = OmegaConf.load(LEGACY_DATA_CONFIG)
    # Filtering tokenizes every prompt through the chat template; the limit is high enough to keep them all.
    config.filter_overlong_prompts = True
    config.filter_overlong_prompts_workers = 1
    config.max_prompt_length = 100_000
    config.cache_dir = str(cache_dir)
    return config


def test_every_written_file_loads(prepared, tokenizer, tmp_path, monkeypatch, parquet_rows):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    files = prepared.parquet_files()
    assert len(files) == 11

    for path in files:
        dataset = RLHFDataset(str(path), tokenizer, data_config(tmp_path / "verl_cache"))
        rows = parquet_rows(path)
        assert len(dataset) == len(rows), path.name

        items = [dataset[i] for i in range(len(dataset))]
        for item, row in zip(items, rows):
            assert item["raw_prompt"] == row["prompt"]
            assert item["index"] == row["extra_info"]["index"]
            assert item["reward_model"]["ground_truth"] == row["reward_model"]["ground_truth"]
            assert item["tools_kwargs"] == row["extra_info"].get("tools_kwargs", {})
        batch = collate_fn(items)
        assert list(batch["data_source"]) == [row["data_source"] for row in rows]
