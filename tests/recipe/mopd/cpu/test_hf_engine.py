"""The hf rollout backend against a direct transformers forward pass of the same model.

Acceptance: the rollout server's prompt log-prob output matches a direct forward pass to 1e-5, including
for batched concurrent requests of different lengths. MOPD's teacher signal *is* these prompt
log-probs, so a padding or position-id slip here would silently corrupt every advantage.
"""

from __future__ import annotations

import asyncio
import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from recipe.mopd.cpu.hf_engine import HFEngine, Request, SamplingSpec

ATOL = 1e-5
SAMPLED_ATOL = 1e-4
MAX_MODEL_LEN = 96


@pytest.fixture(scope="module")
def tokenizer(tiny_assets):
    return AutoTokenizer.from_pretrained(tiny_assets["model"])


@pytest.fixture(scope="module")
def model(tiny_assets):
    model = AutoModelForCausalLM.from_pretrained(
        tiny_assets["model"], dtype=torch.float32, attn_implementation="sdpa"
    )
    return model.eval()


@pytest.fixture
def engine(model, tokenizer):
    # Function-scoped: every test starts from the same sampling generator state.
    return HFEngine(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, seed=0)


def chat_ids(tokenizer, messages) -> list[int]:
    ids = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    return [int(t) for t in ids]


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[list[int]]:
    """Task prompts plus longer multi-turn and short raw ones: lengths all differ, so padding matters."""
    questions = [(1, 2), (13, 27), (5, 29), (28, 9)]
    out = [
        chat_ids(tokenizer, [{"role": "user", "content": f"Add {a}+{b}. Answer in \\boxed{{}}."}])
        for a, b in questions
    ]
    out.append(
        chat_ids(
            tokenizer,
            [
                {"role": "user", "content": "Add 3+4. Answer in \\boxed{}."},
                {"role": "assistant", "content": "\\boxed{7}"},
                {"role": "user", "content": "Add 17+25. Answer in \\boxed{}."},
            ],
        )
    )
    out.append(out[0][:5])
    out.append(out[1][:9])
    return out


@pytest.fixture(scope="module")
def chat_prompts(prompts) -> list[list[int]]:
    return prompts[:5]


@pytest.fixture(scope="module")
def raw_prompts(tokenizer) -> list[list[int]]:
    """Token soup the task model never saw: it rarely emits EOS, so length limits are what stop it."""
    generator = torch.Generator().manual_seed(123)
    low = len(tokenizer.all_special_ids) + 1
    return [torch.randint(low, len(tokenizer), (n,), generator=generator).tolist() for n in (4, 11, 17)]


@torch.no_grad()
def direct_logprobs(model, ids: list[int], temperature: float = 1.0) -> torch.Tensor:
    """log_softmax of an unpadded, unbatched forward: the reference every engine output must match."""
    logits = model(torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits / temperature, dim=-1)


def expected_prompt_logprobs(model, ids: list[int]) -> torch.Tensor:
    """verl's left-shifted layout: row r is log p(token r+1 | tokens <= r)."""
    logprobs = direct_logprobs(model, ids)
    return logprobs[:-1].gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)


def score_requests(prompts, k: int = 0, max_tokens: int = 0) -> list[Request]:
    return [Request(list(p), SamplingSpec(max_tokens=max_tokens, prompt_logprobs=k)) for p in prompts]


def greedy(engine, prompts, max_tokens: int = 16) -> list[list[int]]:
    requests = [Request(list(p), SamplingSpec(max_tokens=max_tokens, temperature=0.0)) for p in prompts]
    return [r.token_ids for r in engine.run(requests)]


# --------------------------------------------------------------------------------------------- scoring


def test_prompt_logprobs_match_direct_forward_in_one_batch(engine, model, prompts):
    assert len({len(p) for p in prompts}) >= 5, "the batch must mix lengths for padding to be exercised"
    results = engine.run(score_requests(prompts))
    assert len(results) == len(prompts)
    for ids, result in zip(prompts, results):
        assert len(result.prompt_ids) == len(result.prompt_logprobs) == len(ids)
        assert result.prompt_ids[:-1] == [[t] for t in ids[1:]]
        # vLLM's contract pads the last position with a dummy row; verl drops it positionally.
        assert result.prompt_ids[-1] == [0] and result.prompt_logprobs[-1] == [0.0]
        got = torch.tensor(result.prompt_logprobs[:-1]).squeeze(-1)
        torch.testing.assert_close(got, expected_prompt_logprobs(model, ids), atol=ATOL, rtol=0)
        assert result.token_ids == []


def test_batched_scoring_equals_one_request_at_a_time(engine, prompts):
    batched = engine.run(score_requests(prompts))
    for ids, together in zip(prompts, batched):
        (alone,) = engine.run(score_requests([ids]))
        assert alone.prompt_ids == together.prompt_ids
        torch.testing.assert_close(
            torch.tensor(together.prompt_logprobs), torch.tensor(alone.prompt_logprobs), atol=ATOL, rtol=0
        )


@pytest.mark.parametrize("k", [1, 3, 8])
def test_topk_prompt_logprobs_are_ranked_like_vllm(engine, model, prompts, k):
    results = engine.run(score_requests(prompts, k=k))
    for ids, result in zip(prompts, results):
        assert len(result.prompt_ids) == len(ids)
        assert all(len(row) == k for row in result.prompt_ids + result.prompt_logprobs)
        assert result.prompt_ids[-1] == [0] * k and result.prompt_logprobs[-1] == [0.0] * k
        values = torch.tensor(result.prompt_logprobs[:-1])
        # Rank 1 first, as verl's extract_prompt_logprobs orders vLLM's entries.
        assert torch.all(values[:, :-1] >= values[:, 1:])
        reference_values, reference_ids = torch.topk(direct_logprobs(model, ids)[:-1], k, dim=-1)
        torch.testing.assert_close(values, reference_values, atol=ATOL, rtol=0)
        assert torch.equal(torch.tensor(result.prompt_ids[:-1]), reference_ids)


def test_mixed_k_in_one_batch_keeps_each_requests_width(engine, model, prompts):
    ks = [0, 2, 5, 0, 1, 3, 0]
    requests = [Request(list(p), SamplingSpec(max_tokens=0, prompt_logprobs=k)) for p, k in zip(prompts, ks)]
    for ids, k, result in zip(prompts, ks, engine.run(requests)):
        assert {len(row) for row in result.prompt_logprobs} == {max(k, 1)}
        actual_next = expected_prompt_logprobs(model, ids)
        top1 = torch.tensor([row[0] for row in result.prompt_logprobs[:-1]])
        if k == 0:
            torch.testing.assert_close(top1, actual_next, atol=ATOL, rtol=0)
        else:
            assert torch.all(top1 >= actual_next - ATOL), (
                "rank 1 can never be less likely than the actual token"
            )


def test_scoring_with_max_tokens_one_returns_the_greedy_next_token(engine, model, prompts):
    # verl's teacher path asks for max_tokens=1 next to prompt_logprobs, as vLLM requires.
    results = engine.run(score_requests(prompts, max_tokens=1))
    for ids, result in zip(prompts, results):
        assert result.token_ids == [int(direct_logprobs(model, ids)[-1].argmax())]
        assert result.prompt_logprobs is not None


# ------------------------------------------------------------------------------------------ generation


def assert_eos_only_at_end(tokens: list[int], eos: int) -> None:
    assert eos not in tokens[:-1], f"generation continued past EOS: {tokens}"


@pytest.mark.parametrize("temperature", [0.7, 1.0, 1.5])
def test_sampled_logprobs_match_direct_forward(engine, model, tokenizer, prompts, temperature):
    """log_probs are log_softmax(logits / T) of the sampled tokens: what verl's actor recomputes."""
    spec = SamplingSpec(max_tokens=12, temperature=temperature, return_logprobs=True)
    results = engine.run([Request(list(p), spec) for p in prompts])
    for ids, result in zip(prompts, results):
        assert 1 <= len(result.token_ids) <= 12
        assert len(result.log_probs) == len(result.token_ids)
        assert_eos_only_at_end(result.token_ids, tokenizer.eos_token_id)
        full = ids + result.token_ids
        reference = direct_logprobs(model, full, temperature)[len(ids) - 1 : -1]
        reference = reference.gather(-1, torch.tensor(result.token_ids).unsqueeze(-1)).squeeze(-1)
        # Incremental decoding (KV cache, left padding) rounds differently from one full forward; at T=1.5
        # the sampled tokens reach log-probs near -1 to -8, where the head-size-32 model's fp32 gap reached
        # 3.9e-5. A wrong row or temperature would be off by far more.
        torch.testing.assert_close(torch.tensor(result.log_probs), reference, atol=SAMPLED_ATOL, rtol=0)


def test_generation_stops_at_eos(engine, tokenizer, chat_prompts):
    eos = tokenizer.eos_token_id
    # Single-turn task prompts only: the warm-up taught the model to answer exactly those.
    for tokens in greedy(engine, chat_prompts[:4], max_tokens=16):
        # The pre-trained task model answers "\boxed{N}<|im_end|>" well inside 16 tokens.
        assert tokens[-1] == eos and len(tokens) < 16, tokens
        assert_eos_only_at_end(tokens, eos)
        assert "\\boxed{" in tokenizer.decode(tokens)


def test_max_tokens_is_respected_per_request(engine, tokenizer, raw_prompts):
    limits = [1, 3, 7]
    requests = [Request(p, SamplingSpec(max_tokens=m, temperature=1.0)) for p, m in zip(raw_prompts, limits)]
    for limit, result in zip(limits, engine.run(requests)):
        assert 1 <= len(result.token_ids) <= limit
        if len(result.token_ids) < limit:
            assert result.token_ids[-1] == tokenizer.eos_token_id
    long_run = greedy(engine, raw_prompts, max_tokens=12)
    short_run = greedy(engine, raw_prompts, max_tokens=3)
    for long, short in zip(long_run, short_run):
        assert short == long[:3]


def test_greedy_is_deterministic_argmax_and_independent_of_the_batch(engine, model, prompts):
    batched = greedy(engine, prompts)
    assert batched == greedy(engine, prompts)
    for ids, tokens in zip(prompts, batched):
        assert greedy(engine, [ids]) == [tokens], "left padding changed a greedy continuation"
        full = ids + tokens
        argmax = direct_logprobs(model, full)[len(ids) - 1 : -1].argmax(-1)
        assert argmax.tolist() == tokens


def test_greedy_logprobs_are_unscaled_log_softmax(engine, model, prompts):
    spec = SamplingSpec(max_tokens=8, temperature=0.0, return_logprobs=True)
    for ids, result in zip(prompts, engine.run([Request(p, spec) for p in prompts])):
        reference = direct_logprobs(model, ids + result.token_ids)[len(ids) - 1 : -1]
        reference = reference.gather(-1, torch.tensor(result.token_ids).unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(torch.tensor(result.log_probs), reference, atol=ATOL, rtol=0)


@pytest.mark.parametrize("filters", [{"top_k": 1}, {"top_p": 1e-6}], ids=["top_k=1", "top_p~0"])
def test_degenerate_filters_equal_greedy(engine, prompts, filters):
    spec = SamplingSpec(max_tokens=10, temperature=1.0, **filters)
    sampled = [r.token_ids for r in engine.run([Request(p, spec) for p in prompts])]
    assert sampled == greedy(engine, prompts, max_tokens=10)


def test_same_seed_reproduces_samples_and_logprobs_are_opt_in(model, tokenizer, prompts):
    def sample(seed, return_logprobs):
        engine = HFEngine(model, [tokenizer.eos_token_id], tokenizer.pad_token_id, seed=seed)
        spec = SamplingSpec(max_tokens=10, temperature=1.5, return_logprobs=return_logprobs)
        return engine.run([Request(p, spec) for p in prompts])

    first, second = sample(7, True), sample(7, False)
    assert [r.token_ids for r in first] == [r.token_ids for r in second]
    assert all(r.log_probs is not None for r in first)
    assert all(r.log_probs is None for r in second)


def test_mixed_sampling_params_are_grouped_by_sampling_key(engine, model, tokenizer, prompts, monkeypatch):
    p = prompts
    requests = [
        Request(p[0], SamplingSpec(max_tokens=6, temperature=0.0)),
        Request(p[1], SamplingSpec(max_tokens=8, temperature=0.7, return_logprobs=True)),
        Request(p[2], SamplingSpec(max_tokens=1, prompt_logprobs=0)),
        Request(p[3], SamplingSpec(max_tokens=10, temperature=0.0)),
        Request(p[4], SamplingSpec(max_tokens=8, temperature=1.3, return_logprobs=True)),
        Request(p[5], SamplingSpec(max_tokens=6, temperature=1.0, top_k=1)),
        Request(p[6], SamplingSpec(max_tokens=8, temperature=0.7, return_logprobs=True)),
    ]
    calls: list[list[Request]] = []
    real_generate = engine.generate

    def spy(batch):
        calls.append(list(batch))
        return real_generate(batch)

    monkeypatch.setattr(engine, "generate", spy)
    results = engine.run(requests)

    originals = {id(r) for r in requests}
    grouped = [call for call in calls if all(id(r) in originals for r in call)]
    for call in grouped:
        assert len({r.spec.sampling_key() for r in call}) == 1, "one generate() call mixed sampling params"
    keys = [call[0].spec.sampling_key() for call in grouped]
    assert len(keys) == len(set(keys)), "requests sharing sampling params were not batched together"
    served = sorted(id(r) for call in grouped for r in call)
    assert served == sorted(id(r) for r in requests if r.spec.prompt_logprobs is None)

    monkeypatch.undo()
    assert results[0].token_ids == greedy(engine, [p[0]], max_tokens=6)[0]
    assert results[3].token_ids == greedy(engine, [p[3]], max_tokens=10)[0]
    assert results[5].token_ids == greedy(engine, [p[5]], max_tokens=6)[0]
    for index, temperature in ((1, 0.7), (4, 1.3), (6, 0.7)):
        ids, result = p[index], results[index]
        reference = direct_logprobs(model, ids + result.token_ids, temperature)[len(ids) - 1 : -1]
        reference = reference.gather(-1, torch.tensor(result.token_ids).unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(torch.tensor(result.log_probs), reference, atol=ATOL, rtol=0)
    torch.testing.assert_close(
        torch.tensor(results[2].prompt_logprobs[:-1]).squeeze(-1),
        expected_prompt_logprobs(model, p[2]),
        atol=ATOL,
        rtol=0,
    )


# --------------------------------------------------------------------------------------- weight sync


@pytest.fixture
def private_engine(model, tokenizer):
    """An engine over a copy of the model: weight-sync tests must not leak into the shared fixture."""
    return HFEngine(copy.deepcopy(model), [tokenizer.eos_token_id], tokenizer.pad_token_id, seed=0)


def test_load_weights_rejects_unknown_names_without_partial_updates(private_engine):
    before = private_engine.model.model.norm.weight.detach().clone()
    update = {"model.norm.weight": before * 2.0, "model.not_a_layer.weight": torch.zeros(3)}
    with pytest.raises(KeyError, match="not_a_layer"):
        private_engine.load_weights(update)
    assert torch.equal(private_engine.model.model.norm.weight, before)


def test_load_weights_changes_outputs_to_the_new_models(private_engine, model, prompts):
    """After a sync the engine must score exactly as the trainer's model does, whatever it was before."""
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(1)
    trained = Qwen2ForCausalLM(copy.deepcopy(model.config)).eval()
    before = private_engine.run(score_requests(prompts))
    private_engine.load_weights({name: t.detach().clone() for name, t in trained.state_dict().items()})
    after = private_engine.run(score_requests(prompts))
    for ids, old, new in zip(prompts, before, after):
        new_values = torch.tensor(new.prompt_logprobs[:-1]).squeeze(-1)
        assert (new_values - torch.tensor(old.prompt_logprobs[:-1]).squeeze(-1)).abs().max() > 1e-2
        torch.testing.assert_close(new_values, expected_prompt_logprobs(trained, ids), atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------ the real Ray actor


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    started_here = not ray.is_initialized()
    if started_here:
        # Logical CPUs: the server asks for none, but Ray's own bookkeeping likes headroom.
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    if started_here:
        ray.shutdown()


@pytest.fixture(scope="module")
def hf_server(ray_cluster, tiny_assets):
    from omegaconf import OmegaConf
    from verl.workers.config import RolloutConfig

    from recipe.mopd.cpu.hf_rollout import HFRolloutServer

    config = RolloutConfig(
        name="hf", prompt_length=64, response_length=16, max_model_len=MAX_MODEL_LEN, seed=0
    )
    # The same shape verl hands a replica: the actor_rollout_ref.model DictConfig, not a dataclass.
    model_config = OmegaConf.create(
        {"path": tiny_assets["model"], "override_config": {"attn_implementation": "sdpa"}}
    )
    server = (
        ray_cluster.remote(HFRolloutServer)
        .options(num_cpus=0, max_concurrency=64)
        .remote(config=config, model_config=model_config, replica_rank=0)
    )
    ray_cluster.get(server.stats.remote())
    yield server
    ray_cluster.kill(server)


def test_server_scores_concurrent_requests_of_different_lengths_in_shared_batches(
    hf_server, ray_cluster, model, prompts, raw_prompts
):
    requests = [p + r for p in prompts[:4] for r in raw_prompts[:2]]
    assert len(requests) == 8 and len({len(r) for r in requests}) >= 6
    # Exactly what verl's teacher manager sends to a vLLM server for prompt scoring.
    sampling_params = {"max_tokens": 1, "temperature": 1.0, "prompt_logprobs": 0}
    before = ray_cluster.get(hf_server.stats.remote())

    async def send_all():
        return await asyncio.gather(
            *[
                hf_server.generate.remote(ids, sampling_params, request_id=f"req-{i}")
                for i, ids in enumerate(requests)
            ]
        )

    outputs = asyncio.run(send_all())
    after = ray_cluster.get(hf_server.stats.remote())

    for ids, output in zip(requests, outputs):
        prompt_ids, prompt_logprobs = (
            output.extra_fields["prompt_ids"],
            output.extra_fields["prompt_logprobs"],
        )
        assert len(prompt_logprobs) == len(ids)
        assert prompt_ids[:-1] == [[t] for t in ids[1:]]
        got = torch.tensor(prompt_logprobs[:-1]).squeeze(-1)
        torch.testing.assert_close(got, expected_prompt_logprobs(model, ids), atol=ATOL, rtol=0)
        assert len(output.token_ids) == 1
    served_requests = after["num_requests"] - before["num_requests"]
    served_batches = after["num_batches"] - before["num_batches"]
    assert served_requests == len(requests)
    assert 1 <= served_batches < served_requests, (
        f"no batching: {served_batches} batches for {served_requests}"
    )


def test_server_sampling_honours_temperature_and_logprobs(
    hf_server, ray_cluster, model, tokenizer, chat_prompts
):
    # The agent loop's sampling params; repetition_penalty is accepted and ignored like a no-op.
    params = {
        "temperature": 0.8,
        "top_p": 1.0,
        "top_k": -1,
        "repetition_penalty": 1.0,
        "logprobs": True,
        "max_tokens": 10,
    }
    refs = [
        hf_server.generate.remote(ids, params, request_id=f"gen-{i}") for i, ids in enumerate(chat_prompts)
    ]
    for ids, output in zip(chat_prompts, ray_cluster.get(refs)):
        assert 1 <= len(output.token_ids) <= 10
        assert_eos_only_at_end(output.token_ids, tokenizer.eos_token_id)
        reference = direct_logprobs(model, ids + output.token_ids, 0.8)[len(ids) - 1 : -1]
        reference = reference.gather(-1, torch.tensor(output.token_ids).unsqueeze(-1)).squeeze(-1)
        torch.testing.assert_close(torch.tensor(output.log_probs), reference, atol=ATOL, rtol=0)
        assert "prompt_logprobs" not in output.extra_fields


def test_server_rejects_prompts_beyond_max_model_len_and_keeps_serving(hf_server, ray_cluster, raw_prompts):
    too_long = (raw_prompts[2] * 10)[:MAX_MODEL_LEN]
    with pytest.raises(ValueError, match=r"max_model_len"):
        ray_cluster.get(hf_server.generate.remote(too_long, {"max_tokens": 4}, request_id="too-long"))
    # Two positions left: the response is clamped to fit rather than overrunning the context.
    near_limit = too_long[: MAX_MODEL_LEN - 2]
    output = ray_cluster.get(
        hf_server.generate.remote(near_limit, {"max_tokens": 10}, request_id="near-limit")
    )
    assert 1 <= len(output.token_ids) <= 2
