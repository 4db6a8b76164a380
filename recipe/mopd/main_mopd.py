"""Hydra entry point: `python -m recipe.mopd.main_mopd [platform=cpu] key=value ...`.

It runs verl's own V1 TaskRunner (`verl.trainer.main_ppo.run_ppo`); MOPD plugs in through config
(agent-loop manager class, trainer mode, losses), never by replacing the training loop. Before handing
over it checks the configuration for mistakes that would otherwise surface minutes later inside a Ray
worker, and on CPU it activates the CPU runtime in this process and in the Ray cluster it starts.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

import recipe.mopd.plugin  # noqa: F401  (registrations; imported explicitly so failures are loud)
from recipe.mopd.cpu import activate as activate_cpu_runtime
from recipe.mopd.cpu.hf_rollout import ROLLOUT_NAME as CPU_ROLLOUT_NAME
from recipe.mopd.cpu.vllm_cpu import check_vllm_cpu_ready
from recipe.mopd.engine_teacher import EngineTeacherSettings, check_same_tokenizer, same_checkpoint
from recipe.mopd.losses import JSD_ALPHA_ENV, STUDENT_TOPK_JSD_LOSS
from recipe.mopd.settings import ENGINE_TEACHERS


def module_file(module_name: str) -> str:
    """OmegaConf resolver `${mopd_module_file:pkg.mod}`: the file verl should load a function from."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise ValueError(f"cannot locate module {module_name!r} for a config path")
    return spec.origin


if not OmegaConf.has_resolver("mopd_module_file"):
    OmegaConf.register_new_resolver("mopd_module_file", module_file)


class ConfigError(ValueError):
    pass


def preflight(config: DictConfig) -> None:
    """Fail fast, with the key to change, on configurations verl would reject late or obscurely."""
    device = config.trainer.device
    rollout_name = config.actor_rollout_ref.rollout.name
    if rollout_name == CPU_ROLLOUT_NAME and device != "cpu":
        raise ConfigError(
            f"actor_rollout_ref.rollout.name={CPU_ROLLOUT_NAME} is the CPU stand-in backend but trainer.device="
            f"{device}: on GPUs use rollout.name=vllm, or run on CPU with platform=cpu"
        )
    if device == "cpu" and rollout_name == "vllm":
        try:
            check_vllm_cpu_ready(config)
        except ValueError as error:
            raise ConfigError(str(error)) from error
    elif device == "cpu" and rollout_name != CPU_ROLLOUT_NAME:
        raise ConfigError(
            f"trainer.device=cpu needs actor_rollout_ref.rollout.name={CPU_ROLLOUT_NAME} or vllm (vllm-cpu, "
            f"platform=cpu_vllm), got {rollout_name!r}"
        )
    if device == "cpu":
        for role in ("actor", "ref"):
            strategy = config.actor_rollout_ref[role].strategy
            if strategy != "fsdp2":
                raise ConfigError(
                    f"actor_rollout_ref.{role}.strategy={strategy}: FSDP1 cannot shard CPU parameters; use fsdp2"
                )
    if config.get("mopd") is not None:
        check_teacher_context_fits(config)
        check_teacher_and_loss(config)
    model_path = str(config.actor_rollout_ref.model.path)
    looks_like_hub_id = model_path.count("/") == 1 and not model_path.startswith((".", "/", "~"))
    if not Path(os.path.expanduser(model_path)).exists():
        if not looks_like_hub_id:
            raise ConfigError(f"actor_rollout_ref.model.path={model_path!r} does not exist")
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise ConfigError(
                f"actor_rollout_ref.model.path={model_path!r} is not a local directory and HF_HUB_OFFLINE=1"
            )
    for key in ("train_files", "val_files"):
        files = config.data[key]
        for file in [files] if isinstance(files, str) else list(files or []):
            if "://" not in str(file) and not Path(os.path.expanduser(str(file))).exists():
                raise ConfigError(f"data.{key}: {file!r} does not exist")


def check_teacher_context_fits(config: DictConfig) -> None:
    """The teacher scores [teacher prompt ; response]; its context must hold the longest one, which the
    default `prompt_length + response_length` sizing does not (peers make teacher prompts longer)."""
    if config.mopd.teacher in ENGINE_TEACHERS or not config.distillation.get("enabled", True):
        return  # scored by the training engine (no serving context limit), or no teacher at all (GRPO)
    needed = int(config.mopd.max_prompt_tokens) + int(config.data.max_response_length) + 1
    if config.mopd.teacher == "live":
        key = "actor_rollout_ref.rollout.max_model_len"
        max_len = config.actor_rollout_ref.rollout.max_model_len
        if max_len is None:
            return  # the rollout server then uses the model's own maximum length
    else:
        key = "distillation.teacher_models.teacher_model.inference.max_model_len"
        max_len = config.distillation.teacher_models.teacher_model.inference.max_model_len
    if max_len is None or int(max_len) < needed:
        raise ConfigError(
            f"{key}={max_len} cannot hold the longest teacher input: mopd.max_prompt_tokens "
            f"({config.mopd.max_prompt_tokens}) + data.max_response_length ({config.data.max_response_length}) + 1 "
            f"= {needed}; raise {key} or lower mopd.max_prompt_tokens"
        )


def check_teacher_and_loss(config: DictConfig) -> None:
    """The losses each teacher source can feed, and what an in-engine teacher (ema/ref) needs."""
    loss = config.distillation.distillation_loss
    teacher = config.mopd.teacher
    if loss.loss_mode == STUDENT_TOPK_JSD_LOSS:
        if teacher not in ENGINE_TEACHERS:
            raise ConfigError(
                f"distillation.distillation_loss.loss_mode={STUDENT_TOPK_JSD_LOSS} evaluates the teacher at the "
                f"student's top-k ids, which only an in-engine teacher can: set mopd.teacher=ema or ref "
                f"(got {teacher})"
            )
        if loss.use_policy_gradient:
            raise ConfigError(
                f"{STUDENT_TOPK_JSD_LOSS} is backpropagated directly: set "
                "distillation.distillation_loss.use_policy_gradient=false"
            )
    if teacher not in ENGINE_TEACHERS:
        return
    try:
        settings = EngineTeacherSettings.from_config(config)
    except ValueError as error:
        raise ConfigError(str(error)) from error
    model = config.actor_rollout_ref.model
    if int(model.get("lora_rank", 0) or 0) > 0 or int((model.get("lora") or {}).get("rank", 0) or 0) > 0:
        raise ConfigError(f"mopd.teacher={teacher} needs full-parameter training; the student uses LoRA")
    if int(config.actor_rollout_ref.actor.get("ulysses_sequence_parallel_size", 1) or 1) > 1:
        raise ConfigError(f"mopd.teacher={teacher} does not support Ulysses sequence parallelism")
    student_path = str(model.path)
    if same_checkpoint(settings.model_path, student_path):
        return
    key = "distillation.teacher_models.teacher_model.model_path"
    if settings.updates:
        raise ConfigError(
            f"mopd.teacher=ema averages the student's weights into the teacher, so {key} must be the student's "
            f"checkpoint ({student_path}), got {settings.model_path}; use mopd.teacher=ref for another model"
        )
    from transformers import AutoTokenizer

    trust = bool(model.get("trust_remote_code", False))
    try:
        check_same_tokenizer(
            AutoTokenizer.from_pretrained(student_path, trust_remote_code=trust),
            AutoTokenizer.from_pretrained(settings.model_path, trust_remote_code=trust),
            student_path,
            settings.model_path,
        )
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from error


def prepare_cpu_cluster(config: DictConfig) -> None:
    """Activate the CPU platform here and size Ray's logical GPU slots to the trainer's ranks."""
    activate_cpu_runtime()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with open_dict(config):
        ray_init = config.ray_kwargs.ray_init
        slots = config.trainer.n_gpus_per_node * config.trainer.nnodes
        if config.get("mopd") is not None and config.mopd.teacher == "frozen":
            slots += config.distillation.n_gpus_per_node * config.distillation.nnodes
        ray_init.num_gpus = slots
        # Ray sets OMP_NUM_THREADS=1 in every worker whose environment lacks it, so the FSDP actor would
        # train on one core (a SmolLM2-135M update: minutes). The trainer's phases run one after another,
        # so each may use every core this process may use.
        env_vars = ray_worker_env_vars(config)
        if "OMP_NUM_THREADS" not in env_vars:
            env_vars.OMP_NUM_THREADS = os.environ.get("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))


# Read by Ray actors (the TaskRunner owns the loggers), which see only the runtime_env, not this shell.
FORWARDED_ENV_VARS = (
    "VERL_FILE_LOGGER_PATH",
    "VERL_FILE_LOGGER_ROOT",
    "HF_HUB_OFFLINE",
    "VERL_PLATFORM",
    JSD_ALPHA_ENV,
)


def ray_worker_env_vars(config: DictConfig) -> DictConfig:
    """`ray_kwargs.ray_init.runtime_env.env_vars`, created if absent, open for new keys. (DictConfig's
    `setdefault` returns its argument, not the node it stores, so it cannot build this path.)"""
    ray_init = config.ray_kwargs.ray_init
    with open_dict(config):
        if ray_init.get("runtime_env") is None:
            ray_init.runtime_env = {}
        if ray_init.runtime_env.get("env_vars") is None:
            ray_init.runtime_env.env_vars = {}
    env_vars = ray_init.runtime_env.env_vars
    OmegaConf.set_struct(env_vars, False)
    return env_vars


def forward_environment(config: DictConfig) -> None:
    """Put FORWARDED_ENV_VARS into Ray's runtime_env: workers of a cluster started by `ray start` (Slurm)
    do not inherit the driver's shell."""
    if config.get("mopd") is not None:
        os.environ[JSD_ALPHA_ENV] = str(float(config.mopd.jsd_alpha))
    env_vars = ray_worker_env_vars(config)
    for name in FORWARDED_ENV_VARS:
        if name in os.environ:
            env_vars[name] = os.environ[name]


def run_mopd(config: DictConfig) -> None:
    from verl.trainer.main_ppo import TaskRunnerV1, run_ppo
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config
    from verl.utils.device import auto_set_device

    OmegaConf.resolve(config)
    preflight(config)
    if config.trainer.device == "cpu":
        prepare_cpu_cluster(config)
    forward_environment(config)
    auto_set_device(config)
    validate_config(
        config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )
    if not config.trainer.use_v1:
        raise ConfigError("MOPD runs on verl's V1 trainer: keep trainer.use_v1=true")
    run_ppo(config, task_runner_class=TaskRunnerV1)


@hydra.main(config_path="config", config_name="mopd_trainer", version_base=None)
def main(config: DictConfig) -> None:
    run_mopd(config)


if __name__ == "__main__":
    main()
