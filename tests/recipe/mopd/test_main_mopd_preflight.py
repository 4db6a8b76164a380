"""`main_mopd.preflight` on the real composed hydra config (verl's ppo_trainer + MOPD delta + platform).

preflight exists to turn mistakes that verl would report minutes later, inside a Ray worker, into an
immediate error naming the key to change. Composing the real config here also proves that the
`platform` group and verl's search path resolve, and that verl's own validator accepts the CPU overlay.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from recipe.mopd import main_mopd
from recipe.mopd.main_mopd import ConfigError, preflight

CONFIG_DIR = Path(main_mopd.__file__).resolve().parent / "config"


def compose_config(*overrides: str, resolve: bool = True):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        config = compose(config_name="mopd_trainer", overrides=list(overrides))
    if resolve:
        OmegaConf.resolve(config)
    return config


@pytest.fixture(scope="module")
def cpu_overrides(tiny_assets) -> list[str]:
    return [
        "platform=cpu",
        f"actor_rollout_ref.model.path={tiny_assets['model']}",
        f"data.train_files={tiny_assets['train']}",
        f"data.val_files={tiny_assets['val']}",
    ]


@pytest.fixture(scope="module")
def gpu_overrides(tiny_assets) -> list[str]:
    return [
        "actor_rollout_ref.rollout.name=vllm",
        f"actor_rollout_ref.model.path={tiny_assets['model']}",
        f"data.train_files={tiny_assets['train']}",
        f"data.val_files={tiny_assets['val']}",
    ]


def test_good_cpu_config_passes(cpu_overrides):
    config = compose_config(*cpu_overrides)
    assert config.trainer.device == "cpu"
    assert config.actor_rollout_ref.rollout.name == "hf"
    preflight(config)


def test_gpu_config_with_local_paths_passes(gpu_overrides):
    config = compose_config(*gpu_overrides)
    assert config.trainer.device == "cuda"
    preflight(config)


def test_hf_rollout_on_a_gpu_device_is_rejected(gpu_overrides):
    config = compose_config(*gpu_overrides, "actor_rollout_ref.rollout.name=hf", "trainer.device=cuda")
    with pytest.raises(ConfigError, match=r"rollout\.name=hf.*trainer\.device=cuda"):
        preflight(config)


def test_cpu_device_with_sglang_is_rejected(cpu_overrides):
    config = compose_config(*cpu_overrides, "actor_rollout_ref.rollout.name=sglang")
    with pytest.raises(ConfigError, match=r"trainer\.device=cpu needs actor_rollout_ref\.rollout\.name=hf or vllm"):
        preflight(config)


@pytest.mark.parametrize("user_threads", [None, "3"])
def test_cpu_cluster_gives_ray_workers_every_core(cpu_overrides, monkeypatch, user_threads):
    """Ray sets OMP_NUM_THREADS=1 in a worker whose environment lacks it; the CPU cluster passes every usable
    core instead, and a value the user exported wins."""
    for name in ("VERL_PLATFORM", "HF_HUB_OFFLINE", "TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    if user_threads is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", user_threads)
    config = compose_config(*cpu_overrides)
    main_mopd.prepare_cpu_cluster(config)
    expected = user_threads or str(len(os.sched_getaffinity(0)))
    assert config.ray_kwargs.ray_init.runtime_env.env_vars.OMP_NUM_THREADS == expected


def test_forward_environment_puts_variables_into_the_ray_runtime_env(cpu_overrides, monkeypatch):
    """Workers of a cluster started by `ray start` see only the runtime_env, not the driver's shell."""
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", "/tmp/metrics.jsonl")
    monkeypatch.delenv(main_mopd.JSD_ALPHA_ENV, raising=False)
    config = compose_config(*cpu_overrides, "mopd.jsd_alpha=0.25")
    main_mopd.forward_environment(config)
    env_vars = config.ray_kwargs.ray_init.runtime_env.env_vars
    assert env_vars.VERL_FILE_LOGGER_PATH == "/tmp/metrics.jsonl"
    assert env_vars[main_mopd.JSD_ALPHA_ENV] == "0.25"


def cpu_vllm_overrides(cpu_overrides) -> list[str]:
    return ["platform=cpu_vllm", *cpu_overrides[1:]]


def test_cpu_vllm_overlay_holds_what_vllm_needs_on_cpu(cpu_overrides):
    config = compose_config(*cpu_vllm_overrides(cpu_overrides), "mopd.teacher=frozen")
    rollout = config.actor_rollout_ref.rollout
    assert (rollout.name, rollout.dtype, rollout.enforce_eager, rollout.enable_sleep_mode) == (
        "vllm",
        "float32",
        True,
        False,
    )
    assert rollout.engine_kwargs.vllm.max_logprobs == config.distillation.distillation_loss.topk
    teacher = config.distillation.teacher_models.teacher_model.inference
    assert (teacher.name, teacher.dtype, teacher.enable_sleep_mode) == ("vllm", "float32", False)
    # everything else is the CPU overlay's
    assert config.trainer.device == "cpu" and config.data.train_batch_size == 4


def test_cpu_vllm_without_vllm_says_what_to_install(cpu_overrides, monkeypatch):
    from recipe.mopd.cpu import vllm_cpu

    config = compose_config(*cpu_vllm_overrides(cpu_overrides))
    monkeypatch.setattr(vllm_cpu, "vllm_importable", lambda: False)
    with pytest.raises(ConfigError, match=r"vllm-cpu==0\.27\.1.*bash scripts/setup_vllm\.sh"):
        preflight(config)


def test_cpu_vllm_with_a_cuda_vllm_build_is_rejected(cpu_overrides, monkeypatch):
    from recipe.mopd.cpu import vllm_cpu

    config = compose_config(*cpu_vllm_overrides(cpu_overrides))
    monkeypatch.setattr(vllm_cpu, "vllm_importable", lambda: True)
    monkeypatch.setattr(vllm_cpu, "version", lambda name: "0.24.0")
    with pytest.raises(ConfigError, match=r"0\.24\.0\) is not a CPU build"):
        preflight(config)


@pytest.mark.vllm
def test_cpu_vllm_overlay_passes_preflight_and_verl_validation(cpu_overrides):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = compose_config(*cpu_vllm_overrides(cpu_overrides))
    preflight(config)
    validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


@pytest.mark.vllm
@pytest.mark.parametrize("teacher", ["live", "frozen"])
def test_cpu_vllm_with_sleep_mode_is_rejected(cpu_overrides, teacher):
    key = (
        "actor_rollout_ref.rollout"
        if teacher == "live"
        else "distillation.teacher_models.teacher_model.inference"
    )
    config = compose_config(*cpu_vllm_overrides(cpu_overrides), f"mopd.teacher={teacher}", f"{key}.enable_sleep_mode=true")
    with pytest.raises(ConfigError, match=rf"{key}\.enable_sleep_mode must be false"):
        preflight(config)


@pytest.mark.parametrize("role", ["actor", "ref"])
def test_cpu_device_with_fsdp1_is_rejected(cpu_overrides, role):
    config = compose_config(*cpu_overrides, f"actor_rollout_ref.{role}.strategy=fsdp")
    with pytest.raises(ConfigError, match=rf"actor_rollout_ref\.{role}\.strategy=fsdp\b.*fsdp2"):
        preflight(config)


def test_missing_model_path_is_rejected(cpu_overrides, tmp_path):
    missing = tmp_path / "no_such_model"
    config = compose_config(*cpu_overrides, f"actor_rollout_ref.model.path={missing}")
    with pytest.raises(ConfigError, match=r"actor_rollout_ref\.model\.path=.*does not exist"):
        preflight(config)


def test_hub_id_is_rejected_offline_only(cpu_overrides, monkeypatch):
    config = compose_config(*cpu_overrides, "actor_rollout_ref.model.path=Qwen/Qwen3-0.6B")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        preflight(config)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    preflight(config)


@pytest.mark.parametrize("key", ["train_files", "val_files"])
def test_missing_data_files_are_rejected(cpu_overrides, tmp_path, key):
    missing = tmp_path / f"{key}.parquet"
    config = compose_config(*cpu_overrides, f"data.{key}={missing}")
    with pytest.raises(ConfigError, match=rf"data\.{key}: .*does not exist"):
        preflight(config)


def test_missing_file_in_a_list_is_rejected(cpu_overrides, tiny_assets, tmp_path):
    config = compose_config(
        *cpu_overrides, f"data.train_files=[{tiny_assets['train']},{tmp_path / 'gone.parquet'}]"
    )
    with pytest.raises(ConfigError, match="gone.parquet"):
        preflight(config)


def test_cpu_overlay_passes_verls_own_validation(cpu_overrides):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = compose_config(*cpu_overrides)
    # CPU runs score with the project's verifiers, resolved to a file path for verl's loader.
    assert config.reward.custom_reward_function.path.endswith(str(Path("verifiers", "verl_reward.py")))
    validate_config(
        config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )


def test_verl_validation_still_catches_a_bad_cpu_batch_geometry(cpu_overrides):
    """Guards the test above against a validator that checks nothing for this config."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = compose_config(*cpu_overrides, "actor_rollout_ref.actor.ppo_mini_batch_size=5")
    with pytest.raises((AssertionError, ValueError), match="ppo_mini_batch_size"):
        validate_config(
            config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
        )


def test_teacher_context_length_check_names_the_key_to_raise():
    from omegaconf import OmegaConf

    from recipe.mopd.main_mopd import ConfigError, check_teacher_context_fits

    def config(teacher, rollout_len, teacher_len):
        return OmegaConf.create(
            {
                "mopd": {"teacher": teacher, "max_prompt_tokens": 1000},
                "data": {"max_response_length": 500},
                "actor_rollout_ref": {"rollout": {"max_model_len": rollout_len}},
                "distillation": {"teacher_models": {"teacher_model": {"inference": {"max_model_len": teacher_len}}}},
            }
        )

    check_teacher_context_fits(config("live", 1501, None))
    check_teacher_context_fits(config("live", None, None))  # the server then uses the model's own length
    check_teacher_context_fits(config("frozen", None, 1501))
    with pytest.raises(ConfigError, match=r"actor_rollout_ref\.rollout\.max_model_len=1500 .* 1501"):
        check_teacher_context_fits(config("live", 1500, None))
    with pytest.raises(ConfigError, match=r"teacher_model\.inference\.max_model_len=None"):
        check_teacher_context_fits(config("frozen", 4096, None))
