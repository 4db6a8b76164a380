"""Group barrier in verl's V1 agent loop: where MOPD happens.

verl's `AgentLoopWorkerTQ` runs the n rollouts of one prompt in the same worker and stores each into
TransferQueue as soon as it finishes. `MOPDAgentLoopWorker` holds every training rollout after its
rule-based reward is known until all n siblings have arrived, then (once per group):
  1. builds the n teacher prompts from peers (`peers.build_group_contexts`; rollout i never sees itself),
  2. scores [teacher prompt ; unchanged response ids] for all n concurrently (`teacher.TeacherScorer`),
  3. moves the teacher rows into the student's layout (`alignment`) and attaches `teacher_logprobs`,
     `teacher_ids`, the per-sample distillation mask and per-sample diagnostics,
and only then lets each rollout continue into TransferQueue. With an in-engine teacher (`ema`, `ref`)
step 2-3 attach the teacher prompt ids instead (`mopd_teacher_prompt_ids`); the actor update scores them.
Validation rollouts pass straight through.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import ray
import torch
from omegaconf import DictConfig, open_dict
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopManagerTQ, AgentLoopWorkerTQ

from recipe.mopd.engine_teacher import TEACHER_PROMPT_FIELD
from recipe.mopd.settings import MOPDSettings
from recipe.mopd.teacher import TeacherScorer, score_group

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))


@dataclass
class _Group:
    size: int
    arrived: dict[int, tuple[Any, dict]] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None


def _without_verl_distillation(config: DictConfig) -> DictConfig:
    """verl's worker builds a teacher-pool client whenever distillation is enabled; MOPD scores teachers
    itself (per group, possibly on the rollout servers), so the base class must not."""
    base_config = copy.deepcopy(config)
    with open_dict(base_config):
        base_config.distillation.enabled = False
    return base_config


class _MOPDAgentLoopWorker(AgentLoopWorkerTQ.__ray_actor_class__):
    def __init__(self, config: DictConfig, llm_client, teacher_client=None, reward_loop_worker_handles=None):
        super().__init__(_without_verl_distillation(config), llm_client, None, reward_loop_worker_handles)
        self.full_config = config
        self.settings = MOPDSettings.from_config(config)
        self.scorer = TeacherScorer.create(self.settings, config, llm_client, teacher_client)
        self.chat_template_kwargs = dict(config.data.get("apply_chat_template_kwargs", {}) or {})
        self._groups: dict[str, _Group] = {}

    async def _run_prompt(
        self, prompt: dict, sampling_params: dict, trajectory: dict, trace: bool = False
    ) -> None:
        if not trajectory["validate"]:
            size = prompt.get("__rollout_n__", self.config.actor_rollout_ref.rollout.n)
            self._groups[prompt["uid"]] = _Group(size=int(size))
        try:
            await super()._run_prompt(prompt, sampling_params, trajectory, trace)
        finally:
            self._groups.pop(prompt["uid"], None)

    async def _run_agent_loop(self, sampling_params, trajectory, *, agent_name, trace=True, **kwargs):
        try:
            return await super()._run_agent_loop(
                sampling_params, trajectory, agent_name=agent_name, trace=trace, **kwargs
            )
        except BaseException as error:
            group = self._groups.get(kwargs.get("uid"))
            if group is not None and not group.done.is_set():
                group.error = error
                group.done.set()
            raise

    async def _agent_loop_postprocess(self, output, validate, **kwargs) -> None:
        group = self._groups.get(kwargs["uid"])
        if validate or group is None:
            return await super()._agent_loop_postprocess(output, validate, **kwargs)
        outputs = output if isinstance(output, list) else [output]
        await self._compute_score(outputs, kwargs=kwargs)
        final = outputs[-1]
        group.arrived[kwargs["session_id"]] = (final, kwargs)
        if len(group.arrived) == group.size and not group.done.is_set():
            try:
                await self._score_teacher(kwargs["uid"], group)
            except BaseException as error:
                group.error = error
                raise
            finally:
                group.done.set()
        else:
            await group.done.wait()
        if group.error is not None:
            raise RuntimeError(f"MOPD group {kwargs['uid']} failed before teacher scoring") from group.error
        mopd_fields = {"mopd_distill_mask": final.extra_fields.pop("mopd_distill_mask")}
        if TEACHER_PROMPT_FIELD in final.extra_fields:
            mopd_fields[TEACHER_PROMPT_FIELD] = final.extra_fields.pop(TEACHER_PROMPT_FIELD)
        return await super()._agent_loop_postprocess(output, validate, **kwargs, **mopd_fields)

    async def _score_teacher(self, uid: str, group: _Group) -> None:
        members = [group.arrived[session] for session in sorted(group.arrived)]
        outputs = [member[0] for member in members]
        prompt_messages = [dict(m) for m in members[0][1]["raw_prompt"]]
        scored = await score_group(
            settings=self.settings,
            scorer=self.scorer,
            tokenizer=self.tokenizer,
            uid=uid,
            prompt_messages=prompt_messages,
            outputs=outputs,
            chat_template_kwargs=self.chat_template_kwargs,
        )
        invalid = [i for i, result in enumerate(scored) if result.diagnostics["invalid_score"]]
        if invalid:
            sessions = sorted(group.arrived)
            logger.warning(
                f"MOPD group uid={uid}: session(s) {[sessions[i] for i in invalid]} of {len(outputs)} have a missing "
                f"or non-finite verifier score ({[outputs[i].reward_score for i in invalid]}); they are neither "
                "success nor failure peers and their own samples are masked out of the distillation loss"
            )
        for out, result in zip(outputs, scored):
            if result.teacher_prompt_ids is not None:
                out.extra_fields[TEACHER_PROMPT_FIELD] = result.teacher_prompt_ids
            else:
                out.extra_fields["teacher_logprobs"] = result.teacher_logprobs
                out.extra_fields["teacher_ids"] = result.teacher_ids
            out.extra_fields["mopd_distill_mask"] = torch.tensor(0.0 if result.masked else 1.0)
            out.extra_fields["mopd"] = result.diagnostics


MOPDAgentLoopWorker = ray.remote(_MOPDAgentLoopWorker)


class MOPDAgentLoopManager(AgentLoopManagerTQ):
    """Plugged in with `actor_rollout_ref.rollout.agent.agent_loop_manager_class`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The TQ manager assigns its own worker class in __init__; replace it before workers are created.
        self.agent_loop_workers_class = MOPDAgentLoopWorker
