"""Teacher scoring of multi-turn tool-use responses: the teacher reads [teacher prompt ; the rollout's
unchanged response ids], its rows land on the student's response positions one for one, and only the
policy's tokens (response_mask 1) carry signal or loss; tool-result tokens never do.

The trajectories are hand-built in verl's exact tool_agent layout (its Continuous Token builder); the
teacher is a real tiny Qwen2 forward. `DirectForwardScorer` stands in for the rollout server only (it
runs the same model in-process and records what it was asked to score)."""

import asyncio
import json
import math

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM
from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
from verl.trainer.ppo.core_algos import agg_loss, kl_penalty
from verl.utils.tokenizer.continuous_token import QwenContinuousTokenBuilder

from recipe.mopd.peers import PeerConfig
from recipe.mopd.settings import MOPDSettings
from recipe.mopd.teacher import TeacherScorer, score_group

PROMPT = [{"role": "user", "content": "What is 13 + 25? Use the tool."}]
TOOLS = [{"type": "function", "function": {"name": "add", "description": "Add two integers."}}]


@pytest.fixture(scope="module")
def model(chatml_tokenizer):
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(chatml_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
    )
    return Qwen2ForCausalLM(config).eval()


class DirectForwardScorer(TeacherScorer):
    """Server stub: the in-process model's log-probs in verl's K = 1 left-shifted layout (row t holds
    log p(token t+1 | tokens <= t); the last row is a dummy 0), as the rollout server returns them."""

    def __init__(self, model):
        super().__init__(topk=0)
        self.model = model
        self.requests: list[list[int]] = []

    async def logprobs(self, sequence_ids):
        self.requests.append(list(sequence_ids))
        ids = torch.tensor([sequence_ids])
        with torch.no_grad():
            logp = torch.log_softmax(self.model(ids).logits[0].double(), -1)
        nxt = ids[0, 1:]
        rows = torch.zeros(len(sequence_ids), 1, dtype=torch.float32)
        rows[:-1, 0] = logp[:-1].gather(-1, nxt.unsqueeze(-1)).squeeze(-1).float()
        next_ids = torch.zeros(len(sequence_ids), 1, dtype=torch.int32)
        next_ids[:-1, 0] = nxt.int()
        return next_ids, rows, None


def _ids(tok, text):
    return list(tok.encode(text, add_special_tokens=False))


def _episode(tok, a: int, b: int, answer: str, score: float) -> AgentLoopOutput:
    """[assistant tool call][tool result + next header][assistant answer], laid out by verl's builder."""
    builder = QwenContinuousTokenBuilder(tok)
    prompt = builder.build_initial_tokens(PROMPT, tools=TOOLS)
    call = "<tool_call>" + json.dumps({"name": "add", "arguments": {"a": a, "b": b}}) + "</tool_call>"
    runtime = list(prompt) + _ids(tok, call) + [tok.eos_token_id]
    mask = [1] * (len(runtime) - len(prompt))
    before = PROMPT + [{"role": "assistant", "content": call}]
    after = before + [{"role": "tool", "content": str(a + b)}]
    merged = builder.merge_context_tokens(before, after, runtime, tools=TOOLS).token_ids
    mask += [0] * (len(merged) - len(runtime))
    final = _ids(tok, f"\\boxed{{{answer}}}") + [tok.eos_token_id]
    response = merged[len(prompt) :] + final
    mask += [1] * len(final)
    # The rollout's own log-probs: model tokens only, 0.0 on context tokens (verl's align_response_metadata).
    logprobs = [-0.5 - 0.01 * n if m else 0.0 for n, m in enumerate(mask)]
    return AgentLoopOutput(
        prompt_ids=list(prompt),
        response_ids=response,
        response_mask=mask,
        response_logprobs=logprobs,
        reward_score=score,
        num_turns=4,
        metrics=AgentLoopMetrics(),
    )


def _group(tok):
    return [
        _episode(tok, 13, 25, "38", 1.0),
        _episode(tok, 13, 25, "38", 1.0),
        _episode(tok, 31, 25, "56", 0.0),
        _episode(tok, 13, 52, "65", 0.0),
    ]


def _score(tok, model, outputs):
    settings = MOPDSettings(peers=PeerConfig(num_success=1, num_failure=1, selection="first"))
    scorer = DirectForwardScorer(model)
    scored = asyncio.run(
        score_group(
            settings=settings,
            scorer=scorer,
            tokenizer=tok,
            uid="u0",
            prompt_messages=PROMPT,
            outputs=outputs,
            chat_template_kwargs={},
        )
    )
    return scorer, scored


def _reference_logprob(model, prefix: list[int], token: int) -> float:
    """log p(token | prefix) from a separate forward of the prefix alone."""
    with torch.no_grad():
        logits = model(torch.tensor([prefix])).logits[0, -1].double()
    return torch.log_softmax(logits, -1)[token].item()


def test_hand_built_trajectory_is_multi_turn(chatml_tokenizer):
    out = _episode(chatml_tokenizer, 13, 25, "38", 1.0)
    mask = out.response_mask
    # assistant, context, assistant: exactly two runs of policy tokens around one context run
    runs = [m for n, m in enumerate(mask) if n == 0 or mask[n - 1] != m]
    assert runs == [1, 0, 1]
    context = [t for t, m in zip(out.response_ids, mask) if not m]
    assert chatml_tokenizer.decode(context) == "\n<|im_start|>tool\n38<|im_end|>\n<|im_start|>assistant\n"


def test_teacher_reads_its_prompt_then_the_unchanged_response(chatml_tokenizer, model):
    outputs = _group(chatml_tokenizer)
    scorer, scored = _score(chatml_tokenizer, model, outputs)
    for out, request, result in zip(outputs, scorer.requests, scored):
        response_len = len(out.response_ids)
        assert request[-response_len:] == out.response_ids
        assert result.diagnostics["teacher_prompt_tokens"] == len(request) - response_len
    # the failed rollout 2 sees a success peer's whole episode, tool result included, by role
    teacher_prompt = chatml_tokenizer.decode(scorer.requests[2][: -len(outputs[2].response_ids)])
    assert (
        "[assistant]\n<tool_call>" in teacher_prompt
        and "[tool result]\n38\n[assistant]\n\\boxed{38}" in teacher_prompt
    )


def test_teacher_rows_match_a_direct_forward_position_by_position(chatml_tokenizer, model):
    outputs = _group(chatml_tokenizer)
    scorer, scored = _score(chatml_tokenizer, model, outputs)
    for out, request, result in zip(outputs, scorer.requests, scored):
        prompt_len, response = len(out.prompt_ids), out.response_ids
        teacher_prompt = request[: len(request) - len(response)]
        rows, ids = result.teacher_logprobs, result.teacher_ids
        assert rows.shape == ids.shape == (prompt_len + len(response), 1)
        for j, token in enumerate(response):
            expected = _reference_logprob(model, teacher_prompt + response[:j], token)
            assert rows[prompt_len - 1 + j, 0].item() == pytest.approx(expected, abs=1e-5), j
            assert ids[prompt_len - 1 + j, 0].item() == token
        # rows of the student's prompt and the final dummy row carry nothing
        assert torch.all(rows[: prompt_len - 1] == 0) and rows[-1, 0].item() == 0.0


def test_signal_and_loss_see_only_policy_tokens(chatml_tokenizer, model):
    outputs = _group(chatml_tokenizer)
    _, scored = _score(chatml_tokenizer, model, outputs)
    for out, result in zip(outputs, scored):
        prompt_len, response_len = len(out.prompt_ids), len(out.response_ids)
        teacher = result.teacher_logprobs[prompt_len - 1 : prompt_len - 1 + response_len, 0].double()
        student = torch.tensor(out.response_logprobs, dtype=torch.float64)
        mask = torch.tensor(out.response_mask, dtype=torch.bool)
        masked = (teacher - student)[mask].mean().item()
        assert result.diagnostics["signal"] == pytest.approx(masked, abs=1e-5)
        assert not math.isclose(result.diagnostics["signal"], (teacher - student).mean().item(), abs_tol=1e-3)

        # verl's k1 distillation loss aggregated under the response mask: tool-result positions carry
        # none, whatever the teacher says there.
        loss = kl_penalty(logprob=student[None], ref_logprob=teacher[None], kl_penalty="k1")
        scrambled = teacher.clone()
        scrambled[~mask] = -50.0
        loss_scrambled = kl_penalty(logprob=student[None], ref_logprob=scrambled[None], kl_penalty="k1")
        for mode in ("token-mean", "seq-mean-token-mean"):
            kept = agg_loss(loss, mask[None].float(), mode)
            assert agg_loss(loss_scrambled, mask[None].float(), mode).item() == pytest.approx(kept.item())
        assert agg_loss(loss, mask[None].float(), "token-mean").item() == pytest.approx((-masked), abs=1e-5)
