"""The `hf` rollout backend: verl's async-server contract served by transformers on CPU.

Three pieces, mirroring verl's vLLM backend so the trainer cannot tell them apart:
- `HFRolloutServer`: a Ray actor (named `hf_server_<replica>_<node>`) that owns an `HFEngine` and
  batches every request that arrives while the previous batch runs;
- `HFReplica`: the `RolloutReplica` that launches one server per replica next to the trainer workers;
- `HFServerAdapter`: the `BaseRollout` living in each trainer worker; it forwards weight updates to
  the server after every optimizer step (sleep/wake are no-ops: there is no device memory to free).
Registered under rollout name `hf` by `register_hf_rollout()`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Generator
from typing import Any

import ray
import torch
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

from recipe.mopd.cpu.hf_engine import HFEngine, Request, SamplingSpec

logger = logging.getLogger(__name__)

ROLLOUT_NAME = "hf"
# Requests that arrive within this window join the same batch; long enough to gather the n siblings of
# a prompt group, short enough not to matter next to a forward pass.
BATCH_WINDOW_S = 0.005


def _server_actor_name(replica_rank: int, node_rank: int, role: str = "", suffix: str = "") -> str:
    """verl's naming: student servers are looked up by the trainer-side adapter under the plain name."""
    return f"{ROLLOUT_NAME}_server_{role}{replica_rank}_{node_rank}{suffix}"


class HFRolloutServer:
    def __init__(self, config, model_config, replica_rank: int):
        from transformers import AutoModelForCausalLM
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig

        model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        torch.set_num_threads(int(os.environ.get("MOPD_HF_NUM_THREADS", os.cpu_count() or 1)))
        self.config = config
        self.replica_rank = replica_rank
        attn = (model_config.override_config or {}).get("attn_implementation", "sdpa")
        if attn not in ("sdpa", "eager"):
            attn = "sdpa"
        model = AutoModelForCausalLM.from_pretrained(
            model_config.local_path, torch_dtype=torch.float32, attn_implementation=attn
        )
        tokenizer = model_config.tokenizer
        eos = (
            model_config.generation_config.eos_token_id
            if model_config.generation_config is not None
            else None
        )
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos_ids:
            eos_ids.append(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
        self.engine = HFEngine(
            model, eos_token_ids=eos_ids, pad_token_id=pad, seed=config.seed + replica_rank
        )
        self.max_model_len = config.max_model_len or (config.prompt_length + config.response_length)
        self.global_steps: int | None = None
        self._pending: list[tuple[Request, asyncio.Future]] = []
        self._batch_task: asyncio.Task | None = None
        self._engine_lock = asyncio.Lock()
        self.num_batches = 0
        self.num_requests = 0

    def _spec(self, prompt_ids: list[int], sampling_params: dict[str, Any]) -> SamplingSpec:
        room = self.max_model_len - len(prompt_ids)
        if room < 1:
            raise ValueError(
                f"Prompt length ({len(prompt_ids)}) leaves no room to generate within the model's maximum "
                f"context length ({self.max_model_len}); raise actor_rollout_ref.rollout.max_model_len."
            )
        params = dict(sampling_params)
        max_tokens = params.pop("max_tokens", params.pop("max_new_tokens", None))
        if max_tokens is None:
            max_tokens = min(
                self.config.response_length,
                self.config.prompt_length + self.config.response_length - len(prompt_ids),
            )
        top_k = params.get("top_k", -1)
        return SamplingSpec(
            max_tokens=max(1, min(int(max_tokens), room)),
            temperature=float(params.get("temperature", 1.0)),
            top_p=float(params.get("top_p", 1.0)),
            top_k=-1 if top_k is None else int(top_k),
            prompt_logprobs=params.get("prompt_logprobs"),
            return_logprobs=bool(params.get("logprobs", False)),
        )

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str,
        image_data: list[Any] | None = None,
        video_data: list[Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        if image_data or video_data:
            raise NotImplementedError("the hf CPU rollout serves text-only models")
        prompt_ids = [int(t) for t in prompt_ids]
        request = Request(prompt_ids=prompt_ids, spec=self._spec(prompt_ids, sampling_params))
        future = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._batch_task is None or self._batch_task.done():
            self._batch_task = asyncio.create_task(self._drain())
        result = await future
        extra_fields: dict[str, Any] = {"global_steps": self.global_steps}
        if result.prompt_logprobs is not None:
            extra_fields["prompt_ids"] = result.prompt_ids
            extra_fields["prompt_logprobs"] = result.prompt_logprobs
        return TokenOutput(
            token_ids=result.token_ids,
            log_probs=result.log_probs,
            stop_reason=result.stop_reason,
            extra_fields=extra_fields,
        )

    async def _drain(self) -> None:
        while self._pending:
            await asyncio.sleep(BATCH_WINDOW_S)
            batch, self._pending = self._pending, []
            try:
                async with self._engine_lock:
                    results = await asyncio.to_thread(self.engine.run, [request for request, _ in batch])
                self.num_batches += 1
                self.num_requests += len(batch)
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
            except Exception as error:  # one bad batch fails its requests, not the server
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)

    async def update_weights(
        self, named_tensors: dict[str, torch.Tensor], global_steps: int | None = None
    ):
        async with self._engine_lock:
            self.engine.load_weights(named_tensors)
        if global_steps is not None:
            self.global_steps = global_steps

    def stats(self) -> dict[str, int]:
        return {"num_batches": self.num_batches, "num_requests": self.num_requests}

    async def set_global_steps(self, global_steps: int):
        self.global_steps = global_steps

    async def wake_up(self, tags: list[str] | None = None):
        return None

    async def sleep(self):
        return None

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def abort_all_requests(self, reject_request: bool = False) -> dict[str, Any]:
        return {"aborted_count": 0, "request_ids": []}

    async def resume_generation(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None


class HFReplica(RolloutReplica):
    async def launch_servers(self):
        if self.world_size != 1:
            raise ValueError(
                "the hf CPU rollout runs one process per replica: set actor_rollout_ref.rollout."
                "tensor_model_parallel_size=1 (and data/pipeline parallel size 1)"
            )
        if self.workers:
            node_id = await self.workers[0].__ray_call__.remote(
                lambda worker: ray.get_runtime_context().get_node_id()
            )
        else:
            node_id = ray.get_runtime_context().get_node_id()
        role = "reward_" if self.is_reward_model else "teacher_" if self.is_teacher_model else ""
        server = (
            ray.remote(HFRolloutServer)
            .options(
                name=_server_actor_name(self.replica_rank, 0, role, self.name_suffix),
                num_cpus=0,
                max_concurrency=self.max_concurrency,
                scheduling_strategy=ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy(
                    node_id=node_id, soft=False
                ),
            )
            .remote(config=self.config, model_config=self.model_config, replica_rank=self.replica_rank)
        )
        await server.stats.remote()
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"{ROLLOUT_NAME}://{role}replica-{self.replica_rank}{self.name_suffix}"


class HFServerAdapter(BaseRollout):
    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        rollout_world_size = (
            config.tensor_model_parallel_size
            * config.data_parallel_size
            * config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // rollout_world_size if replica_rank == -1 else replica_rank
        self._has_server = rank % rollout_world_size == 0
        self._server = None

    def _server_handle(self):
        if self._server is None:
            self._server = ray.get_actor(_server_actor_name(self.replica_rank, 0))
        return self._server

    async def resume(self, tags: list[str]):
        return None

    async def release(self):
        return None

    @torch.no_grad()
    async def update_weights(
        self,
        weights: Generator[tuple[str, torch.Tensor], None, None],
        global_steps: int | None = None,
        wire_format: str = "named_tensors",
        **kwargs,
    ):
        if wire_format != "named_tensors":
            raise NotImplementedError(f"the hf rollout takes full named tensors, not {wire_format!r}")
        # Every rank must walk the generator: producing a full tensor from FSDP shards is a collective.
        named_tensors = {}
        for name, tensor in weights:
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            if self._has_server:
                named_tensors[name] = tensor.detach().to("cpu", copy=True)
        if self._has_server:
            await self._server_handle().update_weights.remote(named_tensors, global_steps)


def _accept_hf_teacher_topk(validate):
    """verl validates a teacher's top-k capability per engine name; like SGLang, the hf server takes the
    number of prompt log-probs per request, so there is no engine cap to check."""

    def wrapper(self, use_topk: bool, topk):
        if self.inference.name != ROLLOUT_NAME:
            return validate(self, use_topk, topk)
        if use_topk and topk is None:
            raise ValueError("topk must be specified when use_topk is True.")

    wrapper.__mopd_hf__ = True
    return wrapper


def register_hf_rollout() -> None:
    """Make `actor_rollout_ref.rollout.name=hf` resolvable by verl's rollout and replica registries."""
    from verl.workers.config.distillation import DistillationTeacherModelConfig
    from verl.workers.rollout.base import _ROLLOUT_REGISTRY
    from verl.workers.rollout.replica import RolloutReplicaRegistry

    _ROLLOUT_REGISTRY[(ROLLOUT_NAME, "async")] = f"{__name__}.HFServerAdapter"
    RolloutReplicaRegistry.register(ROLLOUT_NAME, lambda: HFReplica)
    validate = DistillationTeacherModelConfig._validate_topk_logprobs
    if not getattr(validate, "__mopd_hf__", False):
        DistillationTeacherModelConfig._validate_topk_logprobs = _accept_hf_teacher_topk(validate)
