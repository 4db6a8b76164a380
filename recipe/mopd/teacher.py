"""Teacher scoring of one prompt group: build the n peer contexts, score [context ; response] for all n
concurrently, and move the teacher's rows into the student's layout.

Two teacher sources behind one call (`TeacherScorer.logprobs`):
- `live`: the current student weights on the student's own rollout servers, through prompt log-probs
  (`max_tokens=1, prompt_logprobs=k`), exactly as verl asks its teacher servers;
- `frozen`: verl's teacher pool (any model sharing the tokenizer), via verl's teacher client.
The in-engine teachers (`ema`, `ref`) are not scored here: their scorer is deferred, and each rollout
carries its teacher prompt ids to the actor update, where `engine_teacher` runs the teacher.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import torch

from recipe.mopd.alignment import response_logprobs_from_rows, teacher_rows_to_student_layout
from recipe.mopd.peers import GroupMember, build_group_contexts, is_valid_score
from recipe.mopd.prefix_sharing import new_prefix_tokens
from recipe.mopd.settings import ENGINE_TEACHERS, MOPDSettings
from recipe.mopd.trajectory import ToolTurnFormat, episode_turns, is_multi_turn


class TeacherScorer:
    # Deferred scorers only build the teacher prompts; the teacher runs in the training engine.
    deferred = False

    def __init__(self, topk: int):
        self.topk = topk

    @staticmethod
    def create(settings: MOPDSettings, config, llm_client, teacher_client) -> TeacherScorer:
        if settings.teacher == "live":
            return LiveTeacherScorer(settings.topk, llm_client)
        if settings.teacher in ENGINE_TEACHERS:
            return DeferredTeacherScorer(settings.topk)
        if not teacher_client:
            raise ValueError(
                "mopd.teacher=frozen needs verl's teacher pool: set distillation.enabled=true, "
                "distillation.teacher_models.teacher_model.model_path and distillation.n_gpus_per_node/nnodes"
            )
        return FrozenTeacherScorer(settings.topk, config, teacher_client)

    async def logprobs(self, sequence_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        """[S, K] teacher token ids and log-probs of `sequence_ids` in verl's left-shifted layout, and how
        many of its tokens the server's prefix cache served (None where the server does not say)."""
        raise NotImplementedError


class LiveTeacherScorer(TeacherScorer):
    def __init__(self, topk: int, llm_client):
        super().__init__(topk)
        self.llm_client = llm_client

    async def logprobs(self, sequence_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        output = await self.llm_client.generate(
            request_id=uuid4().hex,
            prompt_ids=sequence_ids,
            sampling_params={
                "max_tokens": 1,
                "temperature": 1.0,
                "prompt_logprobs": self.topk,
                "detokenize": False,
            },
        )
        ids = torch.tensor(output.extra_fields["prompt_ids"], dtype=torch.int32)
        values = torch.tensor(output.extra_fields["prompt_logprobs"], dtype=torch.float32)
        # vLLM reports its prefix-cache hits per request; the hf stand-in has no prefix cache.
        return ids, values, output.extra_fields.get("num_cached_tokens")


class FrozenTeacherScorer(TeacherScorer):
    def __init__(self, topk: int, config, teacher_client):
        super().__init__(topk)
        from verl.experimental.teacher_loop.teacher_manager import AsyncTeacherLLMServerManager

        self.manager = AsyncTeacherLLMServerManager(config=config, teacher_client=teacher_client)

    async def logprobs(self, sequence_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, int | None]:
        ids, values = await self.manager.compute_teacher_logprobs_single(sequence_ids=sequence_ids)
        return ids, values.float(), None


class DeferredTeacherScorer(TeacherScorer):
    deferred = True


@dataclass
class ScoredRollout:
    masked: bool
    diagnostics: dict[str, Any]
    # Scored rollouts: the teacher's rows in the student's layout.
    teacher_logprobs: torch.Tensor | None = None
    teacher_ids: torch.Tensor | None = None
    # Deferred rollouts: the teacher prompt, to be followed by the response ids in the training engine.
    teacher_prompt_ids: torch.Tensor | None = None


def _student_response_logprobs(output) -> torch.Tensor | None:
    if output.response_logprobs is None:
        return None
    return torch.tensor(output.response_logprobs, dtype=torch.float32)


def _policy_mask(output, response_len: int) -> torch.Tensor:
    """[R] bool: the policy's own tokens; a multi-turn response's tool results and template scaffolding
    (response_mask 0) carry no teacher signal."""
    if output.response_mask is None:
        return torch.ones(response_len, dtype=torch.bool)
    return torch.tensor(list(output.response_mask), dtype=torch.bool)


def _feedback(output) -> str:
    info = output.extra_fields.get("reward_extra_info") or {}
    feedback = info.get("feedback", "")
    return feedback if isinstance(feedback, str) else ""


async def score_group(
    *,
    settings: MOPDSettings,
    scorer: TeacherScorer,
    tokenizer,
    uid: str,
    prompt_messages: list[dict],
    outputs: list,
    chat_template_kwargs: dict,
) -> list[ScoredRollout]:
    multi_turn = [is_multi_turn(out.response_mask) for out in outputs]
    tool_format = ToolTurnFormat.from_tokenizer(tokenizer, chat_template_kwargs) if any(multi_turn) else None
    group = [
        GroupMember(
            response_text=tokenizer.decode(out.response_ids, skip_special_tokens=True),
            response_ids=list(out.response_ids),
            # A missing score is no verdict (NaN), not a failure: see peers.is_valid_score.
            score=math.nan if out.reward_score is None else float(out.reward_score),
            feedback=_feedback(out),
            turns=episode_turns(tokenizer, out.response_ids, out.response_mask, tool_format)
            if multi
            else None,
        )
        for out, multi in zip(outputs, multi_turn)
    ]
    contexts = build_group_contexts(
        tokenizer, prompt_messages, group, settings.peers, uid, chat_template_kwargs
    )
    if scorer.deferred:
        rows = [None] * len(outputs)
    else:
        rows = await asyncio.gather(
            *[scorer.logprobs(ctx.prompt_ids + list(out.response_ids)) for ctx, out in zip(contexts, outputs)]
        )
    response_tokens = [len(out.response_ids) for out in outputs]
    # What a perfect prefix cache computes for this group (groups share at most the chat template's
    # first tokens, so the step's sum over groups is the step's trie up to those).
    sequences = [ctx.prompt_ids + list(out.response_ids) for ctx, out in zip(contexts, outputs)]
    new_tokens = new_prefix_tokens(sequences)
    scored = []
    for i, (ctx, out, member, row) in enumerate(zip(contexts, outputs, group, rows)):
        prompt_len, response_len = len(out.prompt_ids), len(out.response_ids)
        diagnostics = {
            "uid": str(uid),
            "score": member.score,
            "invalid_score": not is_valid_score(member.score),
            "success_peers": ctx.num_success_peers,
            "failure_peers": ctx.num_failure_peers,
            "used_feedback": bool(ctx.used_feedback),
            "masked": bool(ctx.masked),
            "truncated": bool(ctx.truncated),
            "teacher_prompt_tokens": ctx.num_tokens,
            "student_prompt_tokens": prompt_len,
            # A context that pastes every other rollout of the group (no selection, no budget).
            "all_peers_prompt_tokens": prompt_len + sum(response_tokens) - response_tokens[i],
            "teacher_sequence_tokens": len(sequences[i]),
            "teacher_new_prefix_tokens": new_tokens[i],
            # Multi-turn structure: assistant turns (runs of policy tokens) and the policy's token share.
            "assistant_turns": sum(1 for t in member.turns if t.role == "assistant") if member.turns else 1,
            "policy_token_frac": float(sum(out.response_mask) / response_len)
            if out.response_mask is not None and response_len
            else 1.0,
        }
        if row is None:
            scored.append(
                ScoredRollout(
                    masked=ctx.masked,
                    diagnostics=diagnostics,
                    teacher_prompt_ids=torch.tensor(ctx.prompt_ids, dtype=torch.int64),
                )
            )
            continue
        ids, values, cached_tokens = row
        if cached_tokens is not None:
            diagnostics["teacher_cached_tokens"] = int(cached_tokens)
        aligned_values, aligned_ids = teacher_rows_to_student_layout(
            values, ids, ctx.num_tokens, prompt_len, response_len
        )
        student = _student_response_logprobs(out)
        # With top-k rows the first column is the teacher's best token, not the sampled one; the signal
        # diagnostic is then the teacher's top-1 log-prob (documented in the README).
        teacher_response = response_logprobs_from_rows(aligned_values, prompt_len, response_len)
        policy = _policy_mask(out, response_len)
        signal = teacher_response[policy].mean().item() if policy.any() else 0.0
        if student is not None and policy.any() and not settings.topk:
            signal = (teacher_response - student)[policy].mean().item()
        diagnostics["signal"] = float(signal)
        scored.append(
            ScoredRollout(
                masked=ctx.masked,
                diagnostics=diagnostics,
                teacher_logprobs=aligned_values,
                teacher_ids=aligned_ids,
            )
        )
    return scored
