"""CPU runtime for verl 0.9.1: run the real trainer (V1 trainer, agent loop, TransferQueue, FSDP2 engine)
on a machine without a GPU.

Only two things differ from a GPU run, and both are selected by configuration, never by recipe code:
- the platform (`platform.PlatformCPU`: gloo, unpinned offload, FSDP2 engine lookup, logical Ray GPU
  slots), active when `VERL_PLATFORM=cpu`;
- the rollout backend (`hf_rollout`, rollout name `hf`: a batched transformers server honouring verl's
  async server contract, including prompt log-prob scoring).
`tiny_model` builds the deterministic tiny tokenizer/model and `tiny_task` the bundled task that tests
and the CPU demo train on. See recipe/mopd/cpu/README.md.
"""

import os

PLATFORM_ENV = "VERL_PLATFORM"


def cpu_platform_requested() -> bool:
    return os.environ.get(PLATFORM_ENV, "").strip().lower() == "cpu"


def activate() -> None:
    """Select the CPU platform in this process (and, through the environment, in Ray workers it starts)."""
    os.environ[PLATFORM_ENV] = "cpu"
    from verl.plugin.platform import platform_manager

    from recipe.mopd.cpu.platform import PlatformCPU, install_cpu_patches

    if platform_manager._current_platform is not None and not isinstance(
        platform_manager._current_platform, PlatformCPU
    ):
        platform_manager.set_platform(PlatformCPU())
    install_cpu_patches()
