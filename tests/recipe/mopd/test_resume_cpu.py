"""verl's own checkpoint resume through the MOPD recipe on CPU: a 2-step run saving every step, then a run
to step 4 with `trainer.resume_mode=auto` on the same checkpoint directory, against an uninterrupted 4-step
run. The resumed run must log exactly steps 3 and 4 and train on the same prompts at those steps as the
uninterrupted run, i.e. verl's saved dataloader state (`data.pt`) put the sampler where it stopped."""

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import torch

from recipe.mopd.cpu.demo import training_command
from recipe.mopd.metrics_report import read_metrics

# shuffle is on by default; a fixed seed makes the uninterrupted run a valid reference for prompt order.
DATA_SEED = "data.seed=7"


def _train(assets, run_dir: Path, ckpt_dir: Path, steps: int, *overrides: str) -> list[dict]:
    run_dir.mkdir(parents=True, exist_ok=True)
    # verl's file logger truncates its file on open, so each run gets its own.
    metrics = run_dir / "metrics.jsonl"
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": str(metrics), "HF_HUB_OFFLINE": "1", "RAY_DEDUP_LOGS": "0"}
    command = training_command(
        assets,
        steps,
        [
            f"trainer.default_local_dir={ckpt_dir}",
            f"trainer.rollout_data_dir={run_dir / 'rollouts'}",
            "trainer.logger=[file]",
            DATA_SEED,
            *overrides,
        ],
    )
    completed = subprocess.run(
        command, env=env, cwd=run_dir, capture_output=True, text=True, timeout=900, check=False
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]
    return read_metrics(metrics)


def _prompts_at(run_dir: Path, step: int) -> Counter:
    """The multiset of prompts trained on at `step` (verl dumps one JSON line per rollout)."""
    lines = (run_dir / "rollouts" / f"{step}.jsonl").read_text().splitlines()
    return Counter(json.loads(line)["input"] for line in lines if line.strip())


def _latest(ckpt_dir: Path) -> int:
    return int((ckpt_dir / "latest_checkpointed_iteration.txt").read_text().strip())


@pytest.mark.slow
def test_resume_continues_steps_and_data_order(tiny_assets, tmp_path):
    ckpt = tmp_path / "ckpt"
    first = _train(tiny_assets, tmp_path / "first", ckpt, 2, "trainer.save_freq=1")
    assert [s["step"] for s in first] == [1, 2]
    assert _latest(ckpt) == 2
    # StatefulDataLoader counts the batches it handed out: one train batch per step.
    assert torch.load(ckpt / "global_step_2" / "data.pt", weights_only=False)["_num_yielded"] == 2

    resumed = _train(
        tiny_assets, tmp_path / "resumed", ckpt, 4, "trainer.save_freq=1", "trainer.resume_mode=auto"
    )
    assert [s["step"] for s in resumed] == [3, 4]
    # The rollout server got the restored step-2 weights, not the base model's: rollout and actor agree.
    assert resumed[0]["training/rollout_probs_diff_max"] < 1e-3
    assert _latest(ckpt) == 4
    assert torch.load(ckpt / "global_step_4" / "data.pt", weights_only=False)["_num_yielded"] == 4

    reference = _train(tiny_assets, tmp_path / "reference", tmp_path / "ckpt_reference", 4)
    assert [s["step"] for s in reference] == [1, 2, 3, 4]
    for step in (1, 2):
        assert _prompts_at(tmp_path / "first", step) == _prompts_at(tmp_path / "reference", step)
    for step in (3, 4):
        assert _prompts_at(tmp_path / "resumed", step) == _prompts_at(tmp_path / "reference", step)
    # Guard against a vacuous pass: consecutive steps must draw different prompts.
    assert _prompts_at(tmp_path / "reference", 2) != _prompts_at(tmp_path / "reference", 3)
