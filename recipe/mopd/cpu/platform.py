"""verl platform for CPU-only machines: gloo collectives, FSDP2 on CPU, logical Ray "GPU" slots.

verl 0.9.1 resolves its device layer through `PlatformRegistry`; without an accelerator it falls back to
"nvidia" and asks for NCCL and CUDA meshes. `PlatformCPU` answers every platform question for the CPU,
and `install_cpu_patches` covers the few places where verl 0.9.1 assumes an accelerator regardless of
the platform (see each patch's comment). Everything here is inert unless `VERL_PLATFORM=cpu`.
"""

from __future__ import annotations

import functools
import logging
import os
import types
from contextlib import contextmanager
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

logger = logging.getLogger(__name__)

CPU_PLATFORM_NAME = "cpu"
KV_CACHE_GIB_DEFAULT = "1"


def _zero(*_args, **_kwargs) -> int:
    return 0


def _build_cpu_device_module() -> types.ModuleType:
    """`torch.cpu` plus the memory/introspection calls verl makes on `get_torch_device()`.

    verl's metrics and memory helpers call `max_memory_allocated`, `memory_reserved`, `mem_get_info`,
    `get_device_name` ... on the device module; `torch.cpu` has none of them. Memory figures read 0
    because the CPU allocator keeps no such statistics.
    """
    module = types.ModuleType("mopd_cpu_device")
    for name in dir(torch.cpu):
        if not name.startswith("__"):
            setattr(module, name, getattr(torch.cpu, name))
    for name in (
        "memory_allocated",
        "max_memory_allocated",
        "memory_reserved",
        "max_memory_reserved",
        "reset_peak_memory_stats",
        "reset_max_memory_allocated",
        "empty_cache",
        "ipc_collect",
    ):
        setattr(module, name, _zero)
    module.mem_get_info = lambda *_a, **_k: (0, 0)
    module.get_device_name = lambda *_a, **_k: "cpu"
    module.get_device_properties = lambda *_a, **_k: types.SimpleNamespace(name="cpu", total_memory=0)
    # verl restores the accelerator RNG from the checkpoint key named after the device, here "cpu".
    module.get_rng_state = torch.get_rng_state
    module.set_rng_state = torch.set_rng_state
    module.manual_seed = torch.manual_seed
    module.manual_seed_all = torch.manual_seed
    module.set_device = lambda *_a, **_k: None
    module.current_device = lambda: 0
    module.device_count = lambda: 1
    module.is_available = lambda: True
    module.memory = types.SimpleNamespace(_set_allocator_settings=lambda *_a, **_k: None)
    return module


@PlatformRegistry.register(platform=CPU_PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """CPU platform. Ray placement still uses logical "GPU" slots so verl's resource pools keep working."""

    _device_module: types.ModuleType | None = None

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        if PlatformCPU._device_module is None:
            PlatformCPU._device_module = _build_cpu_device_module()
        return PlatformCPU._device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check=False) -> bool:
        # Never auto-detected: a machine with a GPU must not silently train on CPU.
        return False

    def current_device(self) -> str:
        # verl uses get_device_id() only as a `.to()` / torch.device target; an index would mean cuda:N.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray exports the ids of the logical GPU slots it assigned through this variable.
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        # verl's ResourcePoolManager hard-codes use_gpu=True; on CPU the driver declares as many logical
        # GPU slots as trainer ranks (recipe.mopd.main_mopd does it), and torch never sees a device.
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def is_ipc_supported(self) -> bool:
        return False

    def rollout_env_vars(self) -> dict[str, str]:
        # vLLM's CPU worker otherwise reserves gpu_memory_utilization x host RAM (12 GiB at verl's 0.5) for
        # its KV cache (vllm/v1/worker/cpu_worker.py); 1 GiB holds every CPU run's batch many times over.
        return {"VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", KV_CACHE_GIB_DEFAULT)}

    def cudart(self) -> Any:
        return None


def _gloo_only(init_fn):
    """verl builds the backend string "cpu:gloo,<device>:<backend>", i.e. "cpu:gloo,cpu:gloo" here,
    which torch rejects as a duplicate device type."""

    @functools.wraps(init_fn)
    def wrapper(timeout_second=None, backend=None):
        if backend is None or backend == "cpu:gloo,cpu:gloo":
            backend = "gloo"
        return init_fn(timeout_second=timeout_second, backend=backend)

    wrapper.__mopd_cpu_patch__ = True
    return wrapper


def _unpinned_offload_policy_class():
    """FSDP2's `CPUOffloadPolicy(pin_memory=True)` needs an accelerator; verl's FSDP engine asks for it
    for the reference model. Pinning buys nothing when the "device" is the CPU. A subclass keeps
    torch's isinstance checks working."""
    from torch.distributed.fsdp import CPUOffloadPolicy

    class UnpinnedCPUOffloadPolicy(CPUOffloadPolicy):
        def __init__(self, pin_memory: bool = True):
            super().__init__(pin_memory=False)

    return UnpinnedCPUOffloadPolicy


def _engine_lookup_on_cpu(get_engine_cls):
    """verl registers its FSDP engines for devices cuda/npu only; the same classes run on CPU tensors."""

    @functools.wraps(get_engine_cls)
    def wrapper(cls, model_type: str, backend: str):
        if backend not in ("fsdp", "fsdp2", "dp"):
            raise ValueError(f"the CPU runtime supports the FSDP engine only, got engine backend {backend!r}")
        previous = os.environ.get("VERL_ENGINE_DEVICE")
        os.environ["VERL_ENGINE_DEVICE"] = "cuda"
        try:
            return get_engine_cls(cls, model_type, backend)
        finally:
            if previous is None:
                os.environ.pop("VERL_ENGINE_DEVICE", None)
            else:
                os.environ["VERL_ENGINE_DEVICE"] = previous

    wrapper.__mopd_cpu_patch__ = True
    return classmethod(wrapper)


def install_cpu_patches() -> None:
    """Apply the CPU patches once per process. Idempotent."""
    import sys

    import verl.utils.distributed as verl_distributed
    import verl.utils.fsdp_utils as verl_fsdp_utils
    from verl.workers.engine.base import EngineRegistry

    if not getattr(verl_distributed.initialize_global_process_group_ray, "__mopd_cpu_patch__", False):
        verl_distributed.initialize_global_process_group_ray = _gloo_only(
            verl_distributed.initialize_global_process_group_ray
        )
    for module_name in ("verl.workers.engine_workers", "verl.checkpoint_engine.base"):
        module = sys.modules.get(module_name)
        if module is not None:
            module.initialize_global_process_group_ray = verl_distributed.initialize_global_process_group_ray

    if verl_fsdp_utils.CPUOffloadPolicy.__name__ != "UnpinnedCPUOffloadPolicy":
        unpinned = _unpinned_offload_policy_class()
        verl_fsdp_utils.CPUOffloadPolicy = unpinned
        impl = sys.modules.get("verl.workers.engine.fsdp.transformer_impl")
        if impl is not None:
            impl.CPUOffloadPolicy = unpinned

    if not getattr(EngineRegistry.get_engine_cls, "__mopd_cpu_patch__", False):
        EngineRegistry.get_engine_cls = _engine_lookup_on_cpu(EngineRegistry.get_engine_cls.__func__)
