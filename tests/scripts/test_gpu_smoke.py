"""`scripts/gpu_smoke.sh` is checked on CPU: its --dry-run command composes into verl's validated config
with what it claims to run (vLLM, one GPU, two steps, the released objective or the live teacher)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def smoke_overrides(*args: str, **env: str) -> list[str]:
    completed = subprocess.run(
        ["bash", str(REPO / "scripts/gpu_smoke.sh"), "/models/Qwen3-0.6B", "--dry-run", *args],
        check=False,
        capture_output=True,
        text=True,
        env={"HOME": "/tmp", "PATH": "/usr/bin:/bin", "OUT": "/tmp/smoke", **env},
    )
    assert completed.returncode == 0, completed.stderr
    argv = shlex.split(completed.stdout)
    assert argv[:3] == ["python3", "-m", "recipe.mopd.main_mopd"]
    return argv[3:]


def assert_one_gpu_vllm_smoke(config) -> None:
    assert config.actor_rollout_ref.rollout.name == "vllm"
    assert config.actor_rollout_ref.model.path == "/models/Qwen3-0.6B"
    assert (config.trainer.n_gpus_per_node, config.trainer.nnodes, config.trainer.total_training_steps) == (
        1,
        1,
        2,
    )
    assert config.data.train_files == "/tmp/smoke/data/tiny_add_train.parquet"
    assert config.trainer.device == "cuda"


def test_default_smoke_runs_the_released_objective(trainer_config):
    config = trainer_config(smoke_overrides())
    assert_one_gpu_vllm_smoke(config)
    assert (config.mopd.teacher, config.mopd.ema_rate, config.mopd.mode) == ("ema", 0.05, "contrastive")
    loss = config.distillation.distillation_loss
    assert (loss.loss_mode, loss.use_policy_gradient) == ("mopd_jsd_student_topk", False)
    assert config.algorithm.rollout_correction.rollout_is == "token"


def test_live_teacher_smoke_fits_teacher_inputs_in_the_rollout_context(trainer_config):
    config = trainer_config(smoke_overrides(TEACHER="live"))
    assert_one_gpu_vllm_smoke(config)
    assert config.mopd.teacher == "live"
    assert (
        config.actor_rollout_ref.rollout.engine_kwargs.vllm.max_logprobs
        >= config.distillation.distillation_loss.topk
    )


def test_extra_overrides_win(trainer_config):
    config = trainer_config(smoke_overrides("actor_rollout_ref.rollout.gpu_memory_utilization=0.3"))
    assert config.actor_rollout_ref.rollout.gpu_memory_utilization == 0.3


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [((), {"TEACHER": "frozen"}, "TEACHER must be"), (("--dry-run",), {}, "usage")],
)
def test_bad_invocations_say_why(args, env, message):
    command = ["bash", str(REPO / "scripts/gpu_smoke.sh"), *args]
    if not args:
        command.append("/models/m")
    completed = subprocess.run(
        command, check=False, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **env}
    )
    assert completed.returncode == 2 and message in completed.stderr
