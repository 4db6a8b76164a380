"""The GPU run scripts are checked on CPU: every method x domain x model's --dry-run command is built into
the full config (see conftest.py) and must pass verl's validation and the recipe's preflight checks that
do not need the model or data files, with the paper's settings in place."""

from __future__ import annotations

import itertools
import shlex
import subprocess
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from data_prep.math_eval import BENCHMARKS

REPO = Path(__file__).resolve().parents[2]
METHODS = ("mopd", "opd", "sdpo", "grpo")
DOMAINS = ("code", "math", "science", "tool")
MODELS = {"qwen3_4b": "Qwen/Qwen3-4B", "qwen3_8b": "Qwen/Qwen3-8B"}
DATA_DIR = "/data/mopd"
# The names data_prep writes (`--out DIR`); science defaults to SciKnowEval's biology split.
DATA_FILES = {
    "code": ("livecodebench_train.parquet", ["livecodebench_test.parquet"]),
    "math": ("deepmath_train.parquet", [f"{name}_test.parquet" for name in BENCHMARKS]),
    "science": ("sciknoweval_biology_train.parquet", ["sciknoweval_biology_test.parquet"]),
    "tool": ("toolalpaca_train.parquet", ["toolalpaca_test.parquet"]),
}
# Verifier feedback can give the gold answer away on science (2-choice questions) and tool use.
FEEDBACK = {"code": True, "math": True, "science": False, "tool": False}
PEERS = {"mopd": ("contrastive", 2), "sdpo": ("positive", 1), "opd": ("none", 2)}


def dry_run(method: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(REPO / f"scripts/run_{method}.sh"), "--dry-run", *args],
        check=False,
        capture_output=True,
        text=True,
        env={"HOME": "/tmp", "PATH": "/usr/bin:/bin", "DATA_DIR": DATA_DIR, **env},
    )


def overrides(method: str, *args: str, **env: str) -> list[str]:
    completed = dry_run(method, *args, **env)
    assert completed.returncode == 0, completed.stderr
    argv = shlex.split(completed.stdout)
    assert argv[:3] == ["python3", "-m", "recipe.mopd.main_mopd"]
    return argv[3:]


def assert_paper_settings(config) -> None:
    assert config.actor_rollout_ref.rollout.name == "vllm"
    assert config.data.train_batch_size == 32
    assert config.actor_rollout_ref.rollout.n == 8
    assert config.actor_rollout_ref.actor.ppo_mini_batch_size == 32
    assert config.actor_rollout_ref.actor.optim.lr == 1e-5
    assert config.data.max_response_length == 4096
    assert config.data.apply_chat_template_kwargs.enable_thinking is False
    val = config.actor_rollout_ref.rollout.val_kwargs
    assert (val.n, val.temperature, val.top_p, val.do_sample) == (8, 0.6, 0.95, True)


@pytest.mark.parametrize(("method", "domain", "model"), list(itertools.product(METHODS, DOMAINS, MODELS)))
def test_run_script_config_passes_verl_validation(trainer_config, method, domain, model):
    config = trainer_config(overrides(method, DOMAIN=domain, MODEL=model))
    assert_paper_settings(config)
    assert config.actor_rollout_ref.model.path == MODELS[model]
    train, val = DATA_FILES[domain]
    assert config.data.train_files == f"{DATA_DIR}/{train}"
    val_files = OmegaConf.to_container(config.data.val_files) if len(val) > 1 else [config.data.val_files]
    assert val_files == [f"{DATA_DIR}/{name}" for name in val]
    assert (config.trainer.n_gpus_per_node, config.trainer.nnodes) == (8, 1)
    if method == "grpo":
        assert config.distillation.enabled is False
        assert config.trainer.v1.trainer_mode == "sync"
        assert config.actor_rollout_ref.rollout.agent.agent_loop_manager_class is None
        assert config.algorithm.adv_estimator == "grpo"
        return
    mode, num_success = PEERS[method]
    assert config.distillation.enabled is True
    assert config.trainer.v1.trainer_mode == "mopd_sync"
    assert (config.mopd.teacher, config.mopd.mode, config.mopd.num_success) == ("live", mode, num_success)
    assert config.mopd.use_feedback is FEEDBACK[domain]
    assert config.mopd.max_prompt_tokens == 10240


@pytest.mark.parametrize("method", ["mopd", "opd", "sdpo"])
def test_frozen_teacher_shares_the_node_with_the_trainer(trainer_config, method):
    config = trainer_config(overrides(method, TEACHER="frozen", TEACHER_MODEL_PATH="Qwen/Qwen3-8B"))
    assert config.mopd.teacher == "frozen"
    # 256 sequences per step must split evenly over the trainer's GPUs: 4 + 4, not 6 + 2.
    assert (config.trainer.n_gpus_per_node, config.trainer.nnodes) == (4, 1)
    assert (config.distillation.n_gpus_per_node, config.distillation.nnodes) == (4, 1)
    teacher = config.distillation.teacher_models.teacher_model
    assert teacher.model_path == "Qwen/Qwen3-8B"
    assert teacher.inference.max_model_len >= 10240 + 4096 + 1


@pytest.mark.parametrize(
    ("method", "env"),
    [("mopd", {"DOMAIN": "math", "TEACHER": "frozen"}), ("grpo", {"DOMAIN": "tool", "MODEL": "qwen3_8b"})],
    ids=["mopd-frozen-math", "grpo-tool"],
)
def test_fast_composition_matches_hydra_compose(compose_config, hydra_config, method, env):
    args = overrides(method, **env)
    assert OmegaConf.to_container(compose_config(args)) == OmegaConf.to_container(hydra_config(args))


def test_environment_and_extra_arguments_override_the_defaults(trainer_config):
    args = overrides(
        "sdpo",
        "mopd.selection=shortest",
        "actor_rollout_ref.actor.optim.lr=2e-6",
        DOMAIN="science",
        SCIENCE_DOMAIN="chemistry",
        MODEL_PATH="/models/qwen3-4b",
        FEEDBACK="true",
        STEPS="7",
    )
    assert args[-2:] == ["mopd.selection=shortest", "actor_rollout_ref.actor.optim.lr=2e-6"]
    config = trainer_config(args)
    assert config.data.train_files == f"{DATA_DIR}/sciknoweval_chemistry_train.parquet"
    assert config.actor_rollout_ref.model.path == "/models/qwen3-4b"
    assert config.mopd.use_feedback is True
    assert config.mopd.selection == "shortest"
    assert config.actor_rollout_ref.actor.optim.lr == 2e-6
    assert config.trainer.total_training_steps == 7
    assert config.trainer.experiment_name == "qwen3_4b_science-chemistry_sdpo_live"


@pytest.mark.parametrize(
    ("method", "env", "message"),
    [
        ("mopd", {"DOMAIN": "vision"}, "DOMAIN must be"),
        ("mopd", {"MODEL": "llama"}, "MODEL must be"),
        ("opd", {"TEACHER": "ema"}, "TEACHER must be"),
        ("grpo", {"TEACHER": "frozen"}, "no meaning for GRPO"),
    ],
)
def test_bad_selection_is_refused(method, env, message):
    completed = dry_run(method, **env)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert completed.stdout == ""


def test_scripts_pass_shellcheck():
    shellcheck = REPO / ".venv/bin/shellcheck"
    binary = str(shellcheck) if shellcheck.exists() else "shellcheck"
    scripts = [
        *(REPO / "scripts").glob("*.sh"),
        *(REPO / "scripts/lib").glob("*.sh"),
        *(REPO / "scripts/slurm").glob("*.sbatch"),
        *(REPO / "tests/scripts/fake_slurm").iterdir(),
        REPO / ".ci/run",
    ]
    completed = subprocess.run(
        [binary, "--external-sources", *map(str, scripts)],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert completed.returncode == 0, completed.stdout
