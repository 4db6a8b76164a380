"""The in-engine teacher (`mopd.teacher=ema|ref`): the paper's self-teacher inside verl's training engine.

The teacher is a second FSDP engine in every actor worker, built like verl's reference model (same
engine config, forward-only, so FSDP2 keeps its parameters CPU-offloaded) and initialised from the
teacher checkpoint (the student's own by default). It never runs on the rollout servers:
- `ema`: after every successful optimizer step, θ_T ← (1 − λ) θ_T + λ θ_S on the local FSDP shards
  (λ = `mopd.ema_rate`); its shards are saved next to the actor's in every verl checkpoint and restored
  on resume. The teacher must have the student's architecture.
- `ref`: the same with λ = 0, i.e. a frozen teacher (the initial student, or a larger checkpoint with
  the same tokenizer via `distillation.teacher_models.teacher_model.model_path`); nothing to save.

Teacher forward. The agent loop attaches each rollout's peer-conditioned teacher prompt
(`mopd_teacher_prompt_ids`); the worker appends the student's response ids from the batch itself, so
the teacher reads [teacher prompt ; response] exactly. The forward runs under no_grad inside the actor
update, per micro-batch, as SDPO does: for `mopd_jsd_student_topk` in verl's logits processor (the
student's logits of the same micro-batch are at hand, so the teacher is evaluated at the *current*
student's top-k ids: exact for any number of mini-batches and epochs), for `mopd_k1` just before the loss
(teacher log-prob of the sampled token). Rows are paired with `alignment.packed_response_rows`, logits are
divided by the rollout temperature, and only the response rows' logits are computed
(`logits_to_keep`). The micro-batch's teacher sequences are split further so that no teacher forward
exceeds the actor's token budget (`ppo_max_token_len_per_gpu` with dynamic batching), with the same
number of forwards on every DP rank; the teacher's logits therefore exist for one such chunk at a time.
Rollouts of a chunk that share a teacher prompt (`mopd.selection=shared` makes most of a group do so) get
it computed once and its keys/values reused for each response (`engine_prefix_cache`, exact); a chunk's
budget then counts each distinct prompt once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import nullcontext
from copy import deepcopy
from dataclasses import asdict, dataclass

import torch
from omegaconf import OmegaConf, open_dict
from tensordict import TensorDict

from recipe.mopd.alignment import packed_response_rows
from recipe.mopd.engine_prefix_cache import prompt_key, shared_prefix_logits, supports_prefix_sharing
from recipe.mopd.losses import MASK_FIELD, STUDENT_TOPK_JSD_LOSS, student_topk_jsd_rows
from recipe.mopd.prefix_sharing import distinct_prompt_plan, shared_budget_chunks
from recipe.mopd.settings import ENGINE_TEACHERS

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

TEACHER_PROMPT_FIELD = "mopd_teacher_prompt_ids"
# The worker receives only `actor_rollout_ref`; the mopd_sync trainer puts the teacher settings here.
WORKER_CONFIG_KEY = "mopd_engine_teacher"
CHECKPOINT_DIR = "mopd_teacher"
ENGINE_TEACHER_LOSSES = (STUDENT_TOPK_JSD_LOSS, "mopd_k1")


@dataclass(frozen=True)
class EngineTeacherSettings:
    source: str
    rate: float
    model_path: str
    loss_mode: str
    jsd_alpha: float
    jsd_topk: int | None
    is_clip: float | None
    # Compute each distinct teacher prompt of a chunk once (engine_prefix_cache); exact either way.
    share_prefixes: bool = True

    def __post_init__(self):
        if self.source not in ENGINE_TEACHERS:
            raise ValueError(f"in-engine teacher must be one of {ENGINE_TEACHERS}, got {self.source!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"mopd.ema_rate must lie in [0, 1], got {self.rate}")
        if self.source == "ref" and self.rate != 0.0:
            raise ValueError("mopd.teacher=ref is the frozen teacher: its rate is 0")
        if self.loss_mode not in ENGINE_TEACHER_LOSSES:
            raise ValueError(
                f"mopd.teacher={self.source} computes the teacher inside the actor update, which supports "
                f"distillation.distillation_loss.loss_mode in {ENGINE_TEACHER_LOSSES}, got {self.loss_mode!r}"
            )
        if not 0.0 <= self.jsd_alpha <= 1.0:
            raise ValueError(f"mopd.jsd_alpha must lie in [0, 1], got {self.jsd_alpha}")
        if self.jsd_topk is not None and self.jsd_topk < 1:
            raise ValueError(f"mopd.jsd_topk must be >= 1 or null (full vocabulary), got {self.jsd_topk}")
        if self.is_clip is not None and self.is_clip <= 0:
            raise ValueError(f"mopd.is_clip must be > 0 or null, got {self.is_clip}")

    @property
    def updates(self) -> bool:
        return self.rate > 0.0

    @classmethod
    def from_config(cls, config) -> EngineTeacherSettings:
        """From the full trainer config."""
        mopd = config.mopd
        return cls(
            source=mopd.teacher,
            rate=float(mopd.ema_rate) if mopd.teacher == "ema" else 0.0,
            model_path=str(config.distillation.teacher_models.teacher_model.model_path),
            loss_mode=config.distillation.distillation_loss.loss_mode,
            jsd_alpha=float(mopd.jsd_alpha),
            jsd_topk=None if mopd.jsd_topk is None else int(mopd.jsd_topk),
            is_clip=None if mopd.is_clip is None else float(mopd.is_clip),
            share_prefixes=bool(mopd.get("teacher_prefix_sharing", True)),
        )

    def attach_to(self, config) -> None:
        """Store these settings where the actor workers can read them (their config is actor_rollout_ref)."""
        with open_dict(config.actor_rollout_ref):
            config.actor_rollout_ref[WORKER_CONFIG_KEY] = asdict(self)

    @classmethod
    def from_worker_config(cls, worker_config) -> EngineTeacherSettings:
        section = worker_config.get(WORKER_CONFIG_KEY)
        if section is None:
            raise ValueError(
                f"actor_rollout_ref.{WORKER_CONFIG_KEY} is missing: use trainer.v1.trainer_mode=mopd_sync"
            )
        return cls(**OmegaConf.to_container(section, resolve=True))


def same_checkpoint(a: str, b: str) -> bool:
    return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b)) or a == b


def check_same_tokenizer(student, teacher, student_path: str, teacher_path: str) -> None:
    """The teacher is scored at the student's token ids, so both must map text to ids identically."""
    student_vocab, teacher_vocab = student.get_vocab(), teacher.get_vocab()
    problems = []
    if student_vocab != teacher_vocab:
        differing = sorted(
            token
            for token in set(student_vocab) | set(teacher_vocab)
            if student_vocab.get(token) != teacher_vocab.get(token)
        )
        problems.append(
            f"{len(differing)} token(s) differ in id (e.g. {differing[:5]}; vocabulary sizes "
            f"{len(student_vocab)} vs {len(teacher_vocab)})"
        )
    for name in ("eos_token_id", "pad_token_id", "bos_token_id"):
        if getattr(student, name, None) != getattr(teacher, name, None):
            problems.append(f"{name} {getattr(student, name, None)} vs {getattr(teacher, name, None)}")
    if problems:
        raise ValueError(
            f"the teacher checkpoint {teacher_path!r} does not share the student's tokenizer ({student_path!r}): "
            + "; ".join(problems)
            + ". MOPD evaluates the teacher at the student's token ids; use a teacher of the same tokenizer family"
        )


def token_budget_chunks(lengths: list[int], budget: int | None) -> list[list[int]]:
    """Consecutive groups of sequences whose total length stays within `budget` (None: one group).

    A sequence longer than the budget forms a group of its own. Consecutive groups keep the response rows
    of a group contiguous in the micro-batch's response order.
    """
    if budget is None or not lengths:
        return [list(range(len(lengths)))]
    chunks, current, used = [], [], 0
    for index, length in enumerate(lengths):
        if current and used + length > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(index)
        used += length
    chunks.append(current)
    return chunks


def _local(param: torch.Tensor) -> torch.Tensor:
    """The rank's own shard: DTensor parameters (FSDP2) hold it as their local tensor."""
    return param.to_local() if hasattr(param, "to_local") else param.data


def paired_shards(
    teacher: torch.nn.Module, student: torch.nn.Module
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(teacher shard, student shard) per parameter; both modules must be sharded identically."""
    pairs = []
    for (name, t), (student_name, s) in zip(
        teacher.named_parameters(), student.named_parameters(), strict=True
    ):
        t_local, s_local = _local(t), _local(s)
        if name != student_name or t_local.shape != s_local.shape:
            raise RuntimeError(
                f"EMA teacher and student shards differ: {name} {tuple(t_local.shape)} vs "
                f"{student_name} {tuple(s_local.shape)}"
            )
        pairs.append((t_local, s_local))
    return pairs


@torch.no_grad()
def ema_update_(teacher: torch.nn.Module, student: torch.nn.Module, rate: float) -> None:
    """θ_T ← (1 − rate) θ_T + rate θ_S, shard by shard."""
    for t_local, s_local in paired_shards(teacher, student):
        t_local.lerp_(s_local.to(device=t_local.device, dtype=t_local.dtype), rate)


def shard_file(directory: str, rank: int, world_size: int) -> str:
    return os.path.join(directory, f"teacher_world_size_{world_size}_rank_{rank}.pt")


def save_shards(module: torch.nn.Module, directory: str, rank: int, world_size: int) -> None:
    os.makedirs(directory, exist_ok=True)
    state = {name: _local(p).detach().to("cpu", copy=True) for name, p in module.named_parameters()}
    torch.save(state, shard_file(directory, rank, world_size))


@torch.no_grad()
def load_shards(module: torch.nn.Module, directory: str, rank: int, world_size: int) -> None:
    path = shard_file(directory, rank, world_size)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no EMA teacher shard at {path}: the checkpoint was saved without mopd.teacher=ema or with another "
            "world size; an EMA run cannot resume without its teacher"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    names = [name for name, _ in module.named_parameters()]
    if sorted(state) != sorted(names):
        raise RuntimeError(f"EMA teacher checkpoint {path} holds other parameters than the teacher model")
    for name, param in module.named_parameters():
        local = _local(param)
        if state[name].shape != local.shape:
            raise RuntimeError(
                f"EMA teacher shard {name}: saved {tuple(state[name].shape)}, expected {tuple(local.shape)}"
            )
        local.copy_(state[name])


def _lengths(nested: torch.Tensor) -> torch.Tensor:
    return nested.offsets().diff()


def _response_values(tensor: torch.Tensor, response_lens: torch.Tensor) -> torch.Tensor:
    """[sum R_i] response-level values in sample order from a nested [B, R_i] or padded [B, R] tensor."""
    if tensor.is_nested:
        return tensor.values()
    return torch.cat([row[:length] for row, length in zip(tensor, response_lens.tolist(), strict=True)])


class EngineTeacher:
    """The teacher engine of one actor worker and the teacher terms of the actor's loss."""

    def __init__(self, engine, student_engine, settings: EngineTeacherSettings):
        self.engine = engine
        self.student_engine = student_engine
        self.settings = settings
        self.engine.module.eval()
        self.share_prefixes = settings.share_prefixes and supports_prefix_sharing(self.engine.module.config)

    @classmethod
    def build(cls, worker_config, student, settings: EngineTeacherSettings) -> EngineTeacher:
        """A forward-only copy of the student's engine loaded from the teacher checkpoint.

        `student` is the actor's TrainingWorker: its engine config (sharding, mixed precision, dynamic
        batching) is reused so that teacher and student shards line up for the EMA update.
        """
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import MtpConfig
        from verl.workers.engine import EngineRegistry

        student_model = student.model_config
        if student_model.lora_rank > 0 or student_model.lora_adapter_path is not None:
            raise ValueError("mopd.teacher=ema|ref needs full-parameter training: the student uses LoRA")
        if student.engine_config.ulysses_sequence_parallel_size > 1:
            raise ValueError("mopd.teacher=ema|ref does not support Ulysses sequence parallelism")
        if same_checkpoint(settings.model_path, student_model.path):
            model_config = deepcopy(student_model)
        else:
            if settings.updates:
                raise ValueError(
                    "mopd.teacher=ema averages the student's weights into the teacher, so the teacher checkpoint "
                    f"must be the student's ({student_model.path}), got {settings.model_path}; a different model "
                    "can only be a frozen teacher (mopd.teacher=ref)"
                )
            model_omega = deepcopy(worker_config.model)
            with open_dict(model_omega):
                model_omega.path = settings.model_path
                model_omega.tokenizer_path = None
                model_omega.hf_config_path = None
            model_config = omega_conf_to_dataclass(model_omega)
            check_same_tokenizer(
                student_model.tokenizer, model_config.tokenizer, student_model.path, settings.model_path
            )
        teacher_vocab, student_vocab = model_config.hf_config.vocab_size, student_model.hf_config.vocab_size
        if teacher_vocab != student_vocab and (settings.jsd_topk is None or teacher_vocab < student_vocab):
            raise ValueError(
                f"teacher vocabulary size {teacher_vocab} vs student {student_vocab}: the full-vocabulary JSD needs "
                "equal sizes and the top-k JSD a teacher vocabulary at least the student's"
            )
        model_config.mtp = MtpConfig(enable=False)
        model_config.model_type = "language_model"
        engine_config = deepcopy(student.engine_config)
        engine_config.forward_only = True
        engine = EngineRegistry.new(
            model_type="language_model",
            backend=engine_config.strategy,
            model_config=model_config,
            engine_config=engine_config,
            optimizer_config=None,
            checkpoint_config=student.checkpoint_config,
        )
        engine.initialize()
        teacher = cls(engine, student.engine, settings)
        if settings.updates:
            # Fails now, not after the first optimizer step, if the shards do not line up.
            with torch.no_grad():
                paired_shards(teacher.engine.module, student.engine.module)
        logger.info(
            f"MOPD {settings.source} teacher from {settings.model_path} (rate {settings.rate}, loss {settings.loss_mode})"
        )
        return teacher

    # ---- weights --------------------------------------------------------------------------------------

    def after_optimizer_step(self) -> None:
        if self.settings.updates:
            ema_update_(self.engine.module, self.student_engine.module, self.settings.rate)

    def save(self, actor_checkpoint_dir: str) -> None:
        if self.settings.updates:
            save_shards(self.engine.module, self._dir(actor_checkpoint_dir), *self._rank())

    def load(self, actor_checkpoint_dir: str) -> None:
        if self.settings.updates:
            load_shards(self.engine.module, self._dir(actor_checkpoint_dir), *self._rank())

    @staticmethod
    def _dir(actor_checkpoint_dir: str) -> str:
        # Inside the actor's directory, so verl's checkpoint rotation removes it with the actor's shards.
        return os.path.join(actor_checkpoint_dir, CHECKPOINT_DIR)

    @staticmethod
    def _rank() -> tuple[int, int]:
        return torch.distributed.get_rank(), torch.distributed.get_world_size()

    # ---- forward --------------------------------------------------------------------------------------

    def _chunks(
        self, teacher_prompts: list[torch.Tensor], response_lens: list[int], data: TensorDict
    ) -> list[tuple[list[int], bool]]:
        """(sample indices, whether they share a teacher prompt) per teacher forward chunk.

        With prefix sharing, samples of the same teacher prompt are brought together first (verl's
        micro-batches are length-balanced, not ordered by group), so chunks may interleave in sample order.
        """
        from verl.utils import tensordict_utils as tu
        from verl.utils.device import get_device_name

        budget = (
            data["max_token_len_per_gpu"] if tu.get_non_tensor_data(data, "use_dynamic_bsz", False) else None
        )
        prompt_lens = [len(p) for p in teacher_prompts]
        if self.share_prefixes:
            # A shared prompt costs its tokens once, so more sequences fit the budget.
            keys = [prompt_key(p) for p in teacher_prompts]
            _, prompt_index = distinct_prompt_plan(keys)
            order = sorted(range(len(keys)), key=lambda i: prompt_index[i])
            chunks = shared_budget_chunks(
                [keys[i] for i in order],
                [prompt_lens[i] for i in order],
                [response_lens[i] for i in order],
                budget,
            )
            plans = [([order[j] for j in c], len({keys[order[j]] for j in c}) < len(c)) for c in chunks]
        else:
            lengths = [p + r for p, r in zip(prompt_lens, response_lens)]
            plans = [(chunk, False) for chunk in token_budget_chunks(lengths, budget)]
        group = self.engine.get_data_parallel_group()
        if torch.distributed.get_world_size(group) > 1:
            # Every teacher forward all-gathers shards: all DP ranks must run as many (a shared chunk runs
            # two: its distinct prompts, then its responses).
            count = torch.tensor([sum(2 if shared else 1 for _, shared in plans)], device=get_device_name())
            local = int(count.item())
            torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MAX, group=group)
            plans += [([], False) for _ in range(int(count.item()) - local)]
        return plans

    def _autocast(self):
        from verl.utils.device import get_device_name

        autocast_dtype = getattr(self.engine, "_autocast_dtype", torch.float32)
        if autocast_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(device_type=get_device_name(), dtype=autocast_dtype)

    def _forward(
        self, sequences: list[torch.Tensor], prompt_lens: list[int], response_lens: list[int]
    ) -> torch.Tensor:
        """Unscaled teacher logits [sum R_i, V] of the rows predicting each sequence's response tokens."""
        from verl.utils import tensordict_utils as tu
        from verl.utils.dataset.dataset_utils import DatasetPadMode
        from verl.utils.device import get_device_id

        micro_batch = TensorDict(
            {
                "input_ids": torch.nested.as_nested_tensor(sequences, layout=torch.jagged),
                "position_ids": torch.nested.as_nested_tensor(
                    [torch.arange(len(s)) for s in sequences], layout=torch.jagged
                ),
            },
            batch_size=[len(sequences)],
        ).to(get_device_id())
        device = micro_batch["input_ids"].device
        use_remove_padding = bool(self.engine.engine_config.use_remove_padding)
        tu.assign_non_tensor(
            micro_batch,
            use_remove_padding=use_remove_padding,
            pad_mode=DatasetPadMode.NO_PADDING,
            use_fused_kernels=False,
            temperature=1.0,
        )
        model_inputs, _ = self.engine.prepare_model_inputs(micro_batch)
        rows = packed_response_rows(prompt_lens, response_lens).to(device)
        with torch.no_grad(), self._autocast():
            if use_remove_padding:
                return self.engine.module(**model_inputs, use_cache=False, logits_to_keep=rows).logits[0]
            logits = self.engine.module(**model_inputs, use_cache=False).logits
            lengths = torch.tensor([len(s) for s in sequences], device=device)
            sample = torch.repeat_interleave(
                torch.arange(len(sequences), device=device), torch.tensor(response_lens, device=device)
            )
            starts = torch.cumsum(lengths, 0) - lengths
            return logits[sample, rows - starts[sample]]

    def response_rows(self, data: TensorDict) -> Iterator[tuple[slice, torch.Tensor]]:
        """Teacher logits / temperature for the micro-batch's response rows, one chunk at a time.

        Yields ([rows] indices into the micro-batch's response rows in sample order, [rows, V] logits).
        """
        responses = data["responses"].unbind()
        response_lens = [len(r) for r in responses]
        teacher_prompts = data[TEACHER_PROMPT_FIELD].unbind()
        sequences = [torch.cat([p.to(r.dtype), r]) for p, r in zip(teacher_prompts, responses, strict=True)]
        temperature = data["temperature"]
        row_starts = [0]
        for length in response_lens:
            row_starts.append(row_starts[-1] + length)
        for chunk, shared in self._chunks(teacher_prompts, response_lens, data):
            if not chunk:
                pad = data["input_ids"].values()[:1]
                self._forward([pad], [1], [0])
                continue
            if shared:
                from verl.utils.device import get_device_id

                with torch.no_grad(), self._autocast():
                    logits = shared_prefix_logits(
                        self.engine.module,
                        [teacher_prompts[i].to(responses[i].dtype) for i in chunk],
                        [responses[i] for i in chunk],
                        get_device_id(),
                    )
            else:
                logits = self._forward(
                    [sequences[i] for i in chunk],
                    [len(teacher_prompts[i]) for i in chunk],
                    [response_lens[i] for i in chunk],
                )
            if isinstance(temperature, torch.Tensor):
                scale = torch.repeat_interleave(
                    temperature[chunk].to(logits.device, torch.float32),
                    torch.tensor([response_lens[i] for i in chunk], device=logits.device),
                ).unsqueeze(-1)
                logits = logits.float() / scale.clamp(min=1e-8)
            elif float(temperature) != 1.0:
                logits = logits.float() / float(temperature)
            block = torch.cat([torch.arange(row_starts[i], row_starts[i + 1]) for i in chunk])
            yield block, logits

    def _student_rows(self, data: TensorDict) -> tuple[torch.Tensor, torch.Tensor]:
        response_lens = _lengths(data["responses"])
        return packed_response_rows(_lengths(data["prompts"]), response_lens), response_lens

    def student_topk_terms(self, student_logits: torch.Tensor, data: TensorDict) -> dict[str, torch.Tensor]:
        """verl's logits processor for `mopd_jsd_student_topk`: [1, N] per-row terms over the packed
        micro-batch (zero outside response rows)."""
        rows, response_lens = self._student_rows(data)
        rows = rows.to(student_logits.device)
        sampled = data["responses"].values()
        old = None
        if self.settings.is_clip is not None:
            old = _response_values(data["old_log_probs"], response_lens)
        parts: dict[str, list[torch.Tensor]] = {}
        blocks = []
        for block, teacher_logits in self.response_rows(data):
            blocks.append(block)
            terms = student_topk_jsd_rows(
                student_logits[0, rows[block]],
                teacher_logits,
                sampled[block],
                None if old is None else old[block],
                alpha=self.settings.jsd_alpha,
                topk=self.settings.jsd_topk,
                is_clip=self.settings.is_clip,
            )
            for key, value in terms.items():
                parts.setdefault(key, []).append(value)
        total = student_logits.shape[1]
        targets = rows[torch.cat(blocks).to(rows.device)] if blocks else rows[:0]
        out = {}
        for key in ("distillation_losses", "student_mass", "teacher_mass", "logprob_gap"):
            values = torch.cat(parts[key]) if key in parts else student_logits.new_zeros(0)
            out[key] = (
                torch.zeros(total, dtype=values.dtype, device=values.device)
                .index_put((targets,), values)
                .unsqueeze(0)
            )
        return out

    def sampled_token_logprobs(self, data: TensorDict) -> torch.Tensor:
        """Teacher log-prob of each response token, nested [B, P_i + R_i, 1] in the student's layout
        (the `teacher_logprobs` field verl's estimator losses read)."""
        rows, _ = self._student_rows(data)
        sampled = data["responses"].values()
        values = torch.zeros(data["input_ids"].values().shape[0], dtype=torch.float32, device=sampled.device)
        for block, teacher_logits in self.response_rows(data):
            logprobs = torch.log_softmax(teacher_logits.float(), dim=-1)
            values[rows[block].to(values.device)] = logprobs.gather(
                -1, sampled[block].long().unsqueeze(-1)
            ).squeeze(-1)
        return torch.nested.nested_tensor_from_jagged(values.unsqueeze(-1), data["input_ids"].offsets())


class EngineTeacherLoss:
    """The actor's loss function with the teacher terms of the in-engine teacher.

    verl calls the loss twice per micro-batch: as logits processor (with `student_logits`, top-k losses
    only) and for the final loss. The teacher runs in the first call for `mopd_jsd_student_topk` and in the
    second, before verl's estimator loss reads `teacher_logprobs`, for `mopd_k1`.
    """

    def __init__(self, base_loss, teacher: EngineTeacher):
        self.base_loss = base_loss
        self.teacher = teacher

    def __call__(self, model_output=None, data=None, dp_group=None, student_logits=None, data_format="thd"):
        if student_logits is not None:
            return self.teacher.student_topk_terms(student_logits, data)
        if self.teacher.settings.loss_mode != STUDENT_TOPK_JSD_LOSS:
            data["teacher_logprobs"] = self.teacher.sampled_token_logprobs(data)
        return self.base_loss(model_output=model_output, data=data, dp_group=dp_group)


def kept_response_tokens(data: TensorDict) -> int:
    """Response tokens of the samples the distillation loss keeps (local; the worker sums over DP)."""
    mask = data["response_mask"]
    per_sample = mask.to_padded_tensor(0).sum(-1) if mask.is_nested else mask.sum(-1)
    return int((per_sample.float() * data[MASK_FIELD].float().reshape(-1)).sum().item())
