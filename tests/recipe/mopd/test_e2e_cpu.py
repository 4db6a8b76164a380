"""Real verl V1 training runs on CPU through `python -m recipe.mopd.main_mopd platform=cpu`: the agent-loop
group barrier, live teacher scoring on the hf rollout server, the mopd_k1 loss in the FSDP2 engine and
the mopd/ metrics, for each teacher-context mode."""

import math
import os
import subprocess
from pathlib import Path

import pytest

from recipe.mopd.cpu import tiny_task
from recipe.mopd.cpu.demo import training_command
from recipe.mopd.metrics_report import read_metrics

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def assets():
    return tiny_task.prepare(os.environ.get("MOPD_TEST_CACHE", REPO / ".cache" / "test_assets"))


def train(assets, tmp_path: Path, *overrides: str) -> list[dict]:
    metrics = tmp_path / "metrics.jsonl"
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": str(metrics), "HF_HUB_OFFLINE": "1", "RAY_DEDUP_LOGS": "0"}
    command = training_command(
        assets, 2, [f"trainer.default_local_dir={tmp_path / 'ckpt'}", "trainer.logger=[file]", *overrides]
    )
    completed = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]
    steps = [s for s in read_metrics(metrics) if any(key.startswith("mopd/") for key in s)]
    assert [s["step"] for s in steps] == [1, 2]
    return steps


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.mark.slow
def test_contrastive_live_teacher_trains_and_reports_teacher_signal(assets, tmp_path):
    steps = train(assets, tmp_path, "trainer.val_before_train=true")
    # validation rollouts went through the same worker but were never teacher-scored
    validation = [s for s in read_metrics(tmp_path / "metrics.jsonl") if any(k.startswith("val-core/") for k in s)]
    assert validation and not any(k.startswith("mopd/") for k in validation[0])
    for step in steps:
        assert _finite(step["actor/distillation/loss"])
        assert 0.0 <= step["mopd/masked_frac"] <= 1.0
        # peers make the teacher prompt longer than the student's
        assert step["mopd/teacher_prompt_tokens_vs_student"] > 1.0
        # the eight teacher sequences of a group share at least their question
        assert 0.0 < step["mopd/teacher_prefill_unique_frac"] < 1.0
        # weights reached the rollout server after the update: rollout and actor agree
        assert step["training/rollout_probs_diff_max"] < 1e-3
        # mopd_k1 hands the rollout-mismatch weights (on by default) to verl's policy-gradient loss
        assert 0.5 < step["actor/mopd/rollout_is_weight"] <= 2.0
    # the bundled task gives mixed groups, so failure peers appear
    assert max(s["mopd/with_failure_peer_frac"] for s in steps) > 0.0
    aurocs = [s["mopd/signal/auroc"] for s in steps if "mopd/signal/auroc" in s]
    assert all(0.0 <= a <= 1.0 for a in aurocs)


@pytest.mark.slow
def test_mode_none_is_plain_on_policy_distillation(assets, tmp_path):
    steps = train(assets, tmp_path, "mopd.mode=none")
    for step in steps:
        assert step["mopd/teacher_prompt_tokens_vs_student"] == pytest.approx(1.0)
        assert step["mopd/with_success_peer_frac"] == 0.0
        assert step["mopd/with_failure_peer_frac"] == 0.0
        # teacher == student on the same context: the sampled-token gap is ~0
        assert abs(step["mopd/signal/mean"]) < 1e-3


@pytest.mark.slow
def test_positive_mode_with_grpo_outcome_term(assets, tmp_path):
    steps = train(
        assets,
        tmp_path,
        "mopd.mode=positive",
        "mopd.num_success=1",
        "distillation.distillation_loss.use_task_rewards=true",
        "distillation.distillation_loss.distillation_loss_coef=0.5",
    )
    for step in steps:
        assert step["mopd/with_failure_peer_frac"] == 0.0
        assert _finite(step["actor/pg_loss"])


@pytest.mark.slow
def test_frozen_teacher_from_verl_teacher_pool(assets, tmp_path):
    steps = train(
        assets,
        tmp_path,
        "mopd.teacher=frozen",
        "distillation.n_gpus_per_node=1",
        "distillation.nnodes=1",
        "distillation.teacher_models.teacher_model.inference.tensor_model_parallel_size=1",
        "distillation.teacher_models.teacher_model.inference.max_model_len=1024",
    )
    for step in steps:
        assert _finite(step["actor/distillation/loss"])
        assert step["mopd/teacher_prompt_tokens_vs_student"] > 1.0


JSD = (
    "distillation.distillation_loss.loss_mode=mopd_jsd",
    "distillation.distillation_loss.use_policy_gradient=false",
)


@pytest.mark.slow
def test_jsd_over_teacher_topk_with_contrastive_peers(assets, tmp_path):
    steps = train(assets, tmp_path, *JSD)
    for step in steps:
        assert 0.0 < step["actor/mopd/jsd"] < math.log(2)  # JSD(0.5) is bounded by ln 2
        assert 0.5 < step["actor/mopd/teacher_topk_mass"] <= 1.0
        assert _finite(step["actor/grad_norm"])


@pytest.mark.slow
def test_jsd_vanishes_when_teacher_reads_the_student_prompt(assets, tmp_path):
    # mode none: the teacher is the live student on the same context, so the top-k rows it returns,
    # once moved into the student's layout, must describe the very distribution being trained.
    steps = train(assets, tmp_path, *JSD, "mopd.mode=none")
    for step in steps[:1]:
        assert step["actor/mopd/jsd"] < 1e-3
        assert step["actor/mopd/student_mass_on_teacher_topk"] == pytest.approx(
            step["actor/mopd/teacher_topk_mass"], abs=1e-3
        )
