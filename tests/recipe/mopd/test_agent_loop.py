"""The group barrier of `MOPDAgentLoopWorker` with rewards that are missing or not finite.

Four rollouts of one prompt go through the worker's real `_agent_loop_postprocess` concurrently, with the
real peer selection and teacher-prompt building (in-engine teacher, so no teacher server is needed). Two
pieces of verl are replaced by stubs to isolate the barrier: the reward loop (`_compute_score`, which here
hands out fixed scores) and the TransferQueue write of the base class (which here records what it would
store).
"""

from __future__ import annotations

import asyncio
import logging
import math

import pytest
import torch
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ

from recipe.mopd import agent_loop
from recipe.mopd.diagnostics import mopd_step_metrics
from recipe.mopd.engine_teacher import TEACHER_PROMPT_FIELD
from recipe.mopd.settings import MOPDSettings
from recipe.mopd.teacher import TeacherScorer

PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]
RESPONSES = ["five is 5", "broken verifier run", "it is 7", "no verdict at all"]
# Session 1's verifier returned NaN, session 3's returned no score.
SCORES = [1.0, math.nan, 0.0, None]
UID = "uid-7"


def _worker(tokenizer) -> agent_loop._MOPDAgentLoopWorker:
    config = OmegaConf.create(
        {
            "mopd": {
                "teacher": "ema",
                "mode": "contrastive",
                "num_success": 2,
                "num_failure": 1,
                "failure_condition": "always",
                "success_threshold": 1.0,
                "selection": "first",
                "seed": 0,
                "strip_thinking": False,
                "use_feedback": True,
                "max_peer_tokens": None,
                "max_prompt_tokens": 1024,
                "templates": {},
            },
            "distillation": {"distillation_loss": {"loss_mode": "mopd_jsd_student_topk", "topk": 8}},
        }
    )
    # Built without __init__, which would start verl's servers and reward workers; the attributes below
    # are the ones the barrier reads.
    worker = object.__new__(agent_loop._MOPDAgentLoopWorker)
    worker.settings = MOPDSettings.from_config(config)
    worker.scorer = TeacherScorer.create(worker.settings, config, None, None)
    worker.tokenizer = tokenizer
    worker.chat_template_kwargs = {}
    worker._groups = {}
    return worker


def _output(tokenizer, text: str) -> AgentLoopOutput:
    prompt_ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True)["input_ids"]
    response_ids = tokenizer.encode(text, add_special_tokens=False)
    return AgentLoopOutput(
        prompt_ids=list(prompt_ids),
        response_ids=response_ids,
        response_mask=[1] * len(response_ids),
        metrics=AgentLoopMetrics(),
    )


def test_invalid_rewards_are_no_peers_mask_their_sample_and_warn_once(chatml_tokenizer, monkeypatch, caplog):
    worker = _worker(chatml_tokenizer)

    async def reward_loop_stub(outputs, kwargs):
        outputs[-1].reward_score = SCORES[kwargs["session_id"]]
        outputs[-1].extra_fields["reward_extra_info"] = {}

    stored = {}

    async def transfer_queue_stub(self, output, validate, **kwargs):
        stored[kwargs["session_id"]] = (output, kwargs)

    worker._compute_score = reward_loop_stub
    monkeypatch.setattr(AgentLoopWorkerTQ.__ray_actor_class__, "_agent_loop_postprocess", transfer_queue_stub)

    async def run_group():
        worker._groups[UID] = agent_loop._Group(size=len(RESPONSES))
        await asyncio.gather(
            *[
                worker._agent_loop_postprocess(
                    _output(chatml_tokenizer, text), False, uid=UID, session_id=i, raw_prompt=PROMPT
                )
                for i, text in enumerate(RESPONSES)
            ]
        )

    with caplog.at_level(logging.WARNING, logger=agent_loop.logger.name):
        asyncio.run(run_group())

    masks = {i: stored[i][1]["mopd_distill_mask"].item() for i in range(4)}
    assert masks == {0: 1.0, 1: 0.0, 2: 1.0, 3: 0.0}
    for i in range(4):
        teacher_text = chatml_tokenizer.decode(stored[i][1][TEACHER_PROMPT_FIELD].tolist())
        assert RESPONSES[1] not in teacher_text and RESPONSES[3] not in teacher_text
    # The success sees only the valid failure, the failure only the valid success.
    assert RESPONSES[2] in chatml_tokenizer.decode(stored[0][1][TEACHER_PROMPT_FIELD].tolist())
    assert RESPONSES[0] in chatml_tokenizer.decode(stored[2][1][TEACHER_PROMPT_FIELD].tolist())
    diagnostics = [stored[i][0].extra_fields["mopd"] for i in range(4)]
    assert [d["invalid_score"] for d in diagnostics] == [False, True, False, True]
    assert [(d["success_peers"], d["failure_peers"]) for d in diagnostics] == [(0, 1), (0, 0), (1, 0), (0, 0)]

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and UID in r.getMessage()]
    assert len(warnings) == 1
    assert "session(s) [1, 3]" in warnings[0].getMessage()

    metrics = mopd_step_metrics(diagnostics, success_threshold=1.0)
    assert metrics["mopd/invalid_score_frac"] == pytest.approx(0.5)
    assert metrics["mopd/masked_frac"] == pytest.approx(0.5)
    assert isinstance(stored[0][1]["mopd_distill_mask"], torch.Tensor)
