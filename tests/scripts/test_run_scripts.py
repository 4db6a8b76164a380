"""The GPU run scripts are checked on CPU: every method x domain x model's --dry-run command is built into
the full config (see conftest.py) and must pass verl's validation and the recipe's preflight checks that
do not need the model or data files, with the paper's settings in place: by default the released MOPD
objective (EMA self-teacher 0.05, JSD 0.5 over the student's top-100 + tail, rollout-mismatch weight)."""

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
# The loss each teacher supports by default, and whether it is trained as a policy gradient.
TEACHER_LOSS = {
    "ema": ("mopd_jsd_student_topk", False),
    "ref": ("mopd_jsd_student_topk", False),
    "live": ("mopd_k1", True),
    "frozen": ("mopd_k1", True),
}


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
    correction = config.algorithm.rollout_correction
    assert (correction.rollout_is, float(correction.rollout_is_threshold)) == ("token", 2.0)


def assert_released_objective(config) -> None:
    assert (config.mopd.teacher, config.mopd.ema_rate) == ("ema", 0.05)
    loss = config.distillation.distillation_loss
    assert (loss.loss_mode, loss.use_policy_gradient, loss.topk) == ("mopd_jsd_student_topk", False, 100)
    assert (config.mopd.jsd_alpha, config.mopd.jsd_topk, config.mopd.is_clip) == (0.5, 100, 2.0)
    assert config.actor_rollout_ref.actor.loss_agg_mode == "token-mean"


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
    assert (config.mopd.mode, config.mopd.num_success) == (mode, num_success)
    assert_released_objective(config)
    assert config.mopd.use_feedback is FEEDBACK[domain]
    assert config.mopd.max_prompt_tokens == 10240
    assert config.mopd.max_peer_tokens is None


def test_run_mopd_dry_run_prints_the_paper_configuration_without_any_variable():
    completed = subprocess.run(
        ["bash", str(REPO / "scripts/run_mopd.sh"), "--dry-run"],
        check=True,
        capture_output=True,
        text=True,
        env={"HOME": "/tmp", "PATH": "/usr/bin:/bin"},
    )
    printed = set(shlex.split(completed.stdout))
    assert {
        "mopd.teacher=ema",
        "mopd.ema_rate=0.05",
        "distillation.distillation_loss.loss_mode=mopd_jsd_student_topk",
        "distillation.distillation_loss.use_policy_gradient=false",
        "distillation.distillation_loss.topk=100",
        "mopd.jsd_alpha=0.5",
        "mopd.is_clip=2.0",
        "algorithm.rollout_correction.rollout_is=token",
        "algorithm.rollout_correction.rollout_is_threshold=2.0",
        "mopd.mode=contrastive",
        "mopd.num_success=2",
        "mopd.num_failure=1",
    } <= printed


@pytest.mark.parametrize("method", ["mopd", "opd", "sdpo"])
@pytest.mark.parametrize("teacher", list(TEACHER_LOSS))
def test_every_teacher_is_accepted_with_the_loss_it_supports(trainer_config, method, teacher):
    env = {"TEACHER": teacher}
    if teacher == "frozen":
        env["TEACHER_MODEL_PATH"] = "Qwen/Qwen3-8B"
    config = trainer_config(overrides(method, **env))
    loss = config.distillation.distillation_loss
    assert config.mopd.teacher == teacher
    assert (loss.loss_mode, loss.use_policy_gradient) == TEACHER_LOSS[teacher]
    assert config.trainer.experiment_name.endswith(f"_{method}_{teacher}")
    # Only the live teacher scores on the rollout servers, which must then hold whole teacher inputs.
    context = config.actor_rollout_ref.rollout.max_model_len
    assert context >= 10240 + 4096 + 1 if teacher == "live" else context == 2048 + 4096
    if teacher == "ema":
        assert config.mopd.ema_rate == 0.05


def test_baselines_share_the_teacher_and_loss_so_only_the_context_differs(trainer_config):
    configs = {method: trainer_config(overrides(method)) for method in ("mopd", "sdpo", "opd")}
    distillation = {m: OmegaConf.to_container(c.distillation) for m, c in configs.items()}
    teachers = {
        m: (c.mopd.teacher, c.mopd.ema_rate, c.mopd.jsd_alpha, c.mopd.is_clip) for m, c in configs.items()
    }
    assert distillation["mopd"] == distillation["sdpo"] == distillation["opd"]
    assert teachers["mopd"] == teachers["sdpo"] == teachers["opd"]
    assert {m: (c.mopd.mode, c.mopd.num_success) for m, c in configs.items()} == {
        "mopd": ("contrastive", 2),
        "sdpo": ("positive", 1),
        "opd": ("none", 2),
    }


def test_a_loss_can_be_chosen_for_a_server_teacher(trainer_config):
    config = trainer_config(overrides("mopd", TEACHER="live", LOSS="mopd_jsd"))
    loss = config.distillation.distillation_loss
    assert (loss.loss_mode, loss.use_policy_gradient) == ("mopd_jsd", False)


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
    assert config.trainer.experiment_name == "qwen3_4b_science-chemistry_sdpo_ema"


@pytest.mark.parametrize("method", METHODS)
def test_multi_turn_tool_domain_runs_verls_tool_agent_loop_with_the_recording_tools(trainer_config, method):
    config = trainer_config(overrides(method, DOMAIN="tool_multiturn"))
    assert_paper_settings(config)
    assert config.data.train_files == f"{DATA_DIR}/bfcl_multiturn_train.parquet"
    assert config.data.val_files == f"{DATA_DIR}/bfcl_multiturn_test.parquet"
    multi_turn = config.actor_rollout_ref.rollout.multi_turn
    assert (multi_turn.enable, multi_turn.format, multi_turn.max_assistant_turns) == (True, "hermes", 2)
    assert multi_turn.tool_config_path == f"{DATA_DIR}/bfcl_multiturn_tools.yaml"
    # the loop hands the raw chat and the rows' agent_name/extra_info to the tool agent
    assert config.data.return_raw_chat is True
    if method != "grpo":
        assert config.mopd.use_feedback is False
        assert config.mopd.include_tool_results is True


@pytest.mark.parametrize(
    ("method", "env", "message"),
    [
        ("mopd", {"DOMAIN": "vision"}, "DOMAIN must be"),
        ("mopd", {"MODEL": "llama"}, "MODEL must be"),
        ("opd", {"TEACHER": "teacher_pool"}, "TEACHER must be"),
        ("mopd", {"TEACHER": "live", "LOSS": "mopd_jsd_student_topk"}, "needs the student's logits"),
        ("sdpo", {"LOSS": "forward_kl_topk"}, "LOSS must be"),
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
