"""Teacher logits with each distinct teacher prompt computed once: equal to today's per-sample forward, on a
plain Hugging Face model and inside verl's FSDP2 engine on CPU (a probe subprocess, as in
test_engine_teacher.py)."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config

from recipe.mopd.engine_prefix_cache import has_shared_prompt, shared_prefix_logits, supports_prefix_sharing

REPO_ROOT = Path(__file__).resolve().parents[3]


def per_sample_rows(model, prompts, responses):
    """Today's forward, one sequence at a time: rows P-1 .. P+R-2 of [prompt ; response]."""
    rows = []
    for p, r in zip(prompts, responses):
        logits = model(torch.cat([p, r])[None]).logits[0]
        rows.append(logits[len(p) - 1 : len(p) - 1 + len(r)])
    return torch.cat(rows)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prefix_logits_equal_the_per_sample_forward(tiny_assets, attn):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        tiny_assets["model"], dtype=torch.float32, attn_implementation=attn
    )
    model.eval()
    g = torch.Generator().manual_seed(0)

    def ids(n):
        return torch.randint(6, 300, (n,), generator=g)

    a, b = ids(9), ids(14)
    # three samples share prompt a (one with an empty response), b once, a short prompt once
    prompts = [a, a, b, a, ids(3)]
    responses = [ids(4), ids(7), ids(2), ids(0), ids(5)]
    calls = []
    hook = model.register_forward_pre_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        got = shared_prefix_logits(model, prompts, responses, "cpu")
        hook.remove()
        want = per_sample_rows(model, prompts, responses)
    assert len(calls) == 2  # distinct prompts, then responses: the count never depends on the data
    assert got.shape == want.shape == (18, model.config.vocab_size)
    assert (got - want).abs().max().item() < 1e-5
    assert has_shared_prompt(prompts) and not has_shared_prompt([a, b])
    with torch.no_grad():
        assert shared_prefix_logits(model, [a, a], [ids(0), ids(0)], "cpu").shape == (
            0,
            model.config.vocab_size,
        )
    with pytest.raises(ValueError, match="at least one token"):
        shared_prefix_logits(model, [a[:0]], [ids(2)], "cpu")


def test_only_full_attention_models_share_prefixes():
    assert supports_prefix_sharing(Qwen2Config())
    assert not supports_prefix_sharing(Qwen2Config(use_sliding_window=True, sliding_window=64))
    assert not supports_prefix_sharing(
        Qwen2Config(num_hidden_layers=2, layer_types=["full_attention", "sliding_attention"])
    )


PROBE = textwrap.dedent(
    """
    import dataclasses, json, sys
    import torch
    from omegaconf import OmegaConf
    from tensordict import TensorDict
    from transformers import AutoModelForCausalLM
    from verl.utils import tensordict_utils as tu
    from verl.workers.config import FSDPEngineConfig, HFModelConfig, TrainingWorkerConfig
    from verl.workers.engine_workers import TrainingWorker
    from recipe.mopd.engine_teacher import TEACHER_PROMPT_FIELD, EngineTeacher, EngineTeacherSettings

    student_dir = sys.argv[1]
    model = {"path": student_dir, "override_config": {"attn_implementation": "sdpa"}, "use_remove_padding": True}
    student = TrainingWorker(TrainingWorkerConfig(
        model_type="language_model", model_config=HFModelConfig(**model), optimizer_config=None,
        engine_config=FSDPEngineConfig(strategy="fsdp2", forward_only=True, use_torch_compile=False,
                                       mixed_precision={"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"})))
    student.reset()
    worker_config = OmegaConf.create({"model": {"_target_": "verl.workers.config.HFModelConfig", **model}})
    settings = EngineTeacherSettings(source="ref", rate=0.0, model_path=student_dir, loss_mode="mopd_k1",
                                     jsd_alpha=0.5, jsd_topk=8, is_clip=None)
    shared = EngineTeacher.build(worker_config, student, settings)
    per_sample = EngineTeacher(shared.engine, student.engine, dataclasses.replace(settings, share_prefixes=False))
    calls = []
    shared.engine.module.register_forward_pre_hook(lambda *_: calls.append(1))

    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(6, 400, (n,), generator=g)
    # a group-like micro-batch: one teacher prompt for four rollouts, another for two
    a, b = ids(30), ids(26)
    teacher_prompts = [a, a, b, a, b, a]
    prompts, responses = [ids(5) for _ in range(6)], [ids(n) for n in (4, 6, 2, 7, 3, 5)]
    nested = lambda xs: torch.nested.as_nested_tensor(xs, layout=torch.jagged)
    data = TensorDict({"input_ids": nested([torch.cat([p, r]) for p, r in zip(prompts, responses)]), "prompts": nested(prompts),
                       "responses": nested(responses), TEACHER_PROMPT_FIELD: nested(teacher_prompts)}, batch_size=[6])
    plain = AutoModelForCausalLM.from_pretrained(student_dir, dtype=torch.float32, attn_implementation="sdpa")
    temperature = 0.7
    with torch.no_grad():
        expected = [torch.log_softmax(plain(torch.cat([tp, r])[None]).logits[0][len(tp) - 1 : len(tp) - 1 + len(r)] / temperature, -1)
                    .gather(-1, r[:, None]).squeeze(-1) for tp, r in zip(teacher_prompts, responses)]
    rows = torch.cat([sum(len(p) + len(r) for p, r in zip(prompts[:i], responses[:i])) + len(prompts[i]) - 1 + torch.arange(len(responses[i]))
                      for i in range(6)])
    report = {}
    # budget 60: the per-sample forward fits one [prompt ; response] (~35 tokens) per chunk, the shared one a
    # prompt and four or five responses
    for name, teacher, budget in (("shared_chunked", shared, 60), ("shared_whole", shared, None), ("per_sample", per_sample, 60)):
        batch = data.clone()
        tu.assign_non_tensor(batch, temperature=temperature, use_dynamic_bsz=budget is not None,
                             max_token_len_per_gpu=budget or 0)
        calls.clear()
        values = teacher.sampled_token_logprobs(batch).values()[rows, 0]
        report[name] = {"error": float((values - torch.cat(expected)).abs().max()), "forwards": len(calls)}
    print("REPORT " + json.dumps(report))
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_engine_teacher_shares_prompts_inside_verl_fsdp2_engine(tiny_assets):
    """[teacher prompt ; response] with four rollouts on one teacher prompt and two on another, temperature 0.7:
    the teacher log-probs through the shared path equal an independent per-sample computation, with and without
    the token budget, and the shared path needs fewer forwards than the per-sample one."""
    env = {k: v for k, v in os.environ.items() if k != "VERL_USE_EXTERNAL_MODULES"}
    env.update(
        VERL_PLATFORM="cpu",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        RANK="0",
        LOCAL_RANK="0",
        WORLD_SIZE="1",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "2"),
    )
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, tiny_assets["model"]],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = [line for line in completed.stdout.splitlines() if line.startswith("REPORT ")]
    assert completed.returncode == 0 and reports, completed.stderr[-4000:]
    report = json.loads(reports[-1][len("REPORT ") :])
    for name in ("shared_chunked", "shared_whole", "per_sample"):
        assert report[name]["error"] < 1e-5, report
    assert report["shared_whole"]["forwards"] == 2
    assert report["per_sample"]["forwards"] == 6
    assert report["shared_chunked"]["forwards"] < report["per_sample"]["forwards"]
