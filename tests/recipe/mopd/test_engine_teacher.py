"""The in-engine teacher (`mopd.teacher=ema|ref`): its pure pieces, then the real thing inside verl's FSDP2
engine on CPU (a probe subprocess, as in cpu/test_platform.py): the EMA rule on real shards, checkpoint
shards, and the teacher terms of a micro-batch against an independent per-sample computation."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from recipe.mopd.alignment import packed_response_rows
from recipe.mopd.engine_teacher import (
    EngineTeacherSettings,
    check_same_tokenizer,
    ema_update_,
    load_shards,
    save_shards,
    token_budget_chunks,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_packed_response_rows_pair_student_and_teacher_rows():
    # student [P=3;R=2][P=2;R=3], teacher [P'=5;R=2][P'=1;R=3]: row k of one predicts what row k of the other does
    student = packed_response_rows([3, 2], [2, 3])
    teacher = packed_response_rows([5, 1], [2, 3])
    assert student.tolist() == [2, 3, 6, 7, 8]
    assert teacher.tolist() == [4, 5, 7, 8, 9]
    assert packed_response_rows([4], [0]).numel() == 0
    with pytest.raises(ValueError):
        packed_response_rows([0], [2])


def test_token_budget_chunks_are_consecutive_and_within_budget():
    assert token_budget_chunks([5, 5, 5], None) == [[0, 1, 2]]
    assert token_budget_chunks([5, 5, 5], 10) == [[0, 1], [2]]
    # a sequence longer than the budget goes alone, never dropped
    assert token_budget_chunks([3, 30, 3, 3], 10) == [[0], [1], [2, 3]]
    assert token_budget_chunks([], 10) == [[]]


def _pair(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))


def test_ema_update_is_the_lerp_rule_and_checks_the_layout():
    teacher, student = _pair(0), _pair(1)
    before = [p.detach().clone() for p in teacher.parameters()]
    ema_update_(teacher, student, 0.05)
    for old, new, s in zip(before, teacher.parameters(), student.parameters()):
        torch.testing.assert_close(new, (1 - 0.05) * old + 0.05 * s, rtol=0, atol=1e-7)
    with pytest.raises(RuntimeError, match="differ"):
        ema_update_(teacher, torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 3)), 0.05)


def test_teacher_shards_round_trip_and_a_missing_shard_is_an_error(tmp_path):
    teacher = _pair(0)
    save_shards(teacher, str(tmp_path), rank=0, world_size=1)
    saved = [p.detach().clone() for p in teacher.parameters()]
    ema_update_(teacher, _pair(1), 0.5)
    load_shards(teacher, str(tmp_path), rank=0, world_size=1)
    for a, b in zip(saved, teacher.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        load_shards(teacher, str(tmp_path), rank=0, world_size=2)


def test_tokenizer_check(tiny_assets, chatml_tokenizer):
    from transformers import AutoTokenizer

    tiny = AutoTokenizer.from_pretrained(tiny_assets["model"])
    check_same_tokenizer(tiny, AutoTokenizer.from_pretrained(tiny_assets["model"]), "a", "b")
    with pytest.raises(ValueError, match="does not share the student's tokenizer"):
        check_same_tokenizer(tiny, chatml_tokenizer, "student", "teacher")


def _settings(**overrides):
    base = {
        "source": "ema",
        "rate": 0.05,
        "model_path": "/m",
        "loss_mode": "mopd_jsd_student_topk",
        "jsd_alpha": 0.5,
        "jsd_topk": 100,
        "is_clip": 2.0,
    }
    return EngineTeacherSettings(**{**base, **overrides})


def test_settings_validation():
    assert _settings().updates and not _settings(source="ref", rate=0.0).updates
    for bad in (
        {"source": "ref"},  # ref is rate 0
        {"rate": 1.5},
        {"loss_mode": "mopd_jsd"},  # the teacher's top-k comes from a scorer, not the engine
        {"jsd_alpha": -0.1},
        {"jsd_topk": 0},
        {"is_clip": 0.0},
    ):
        with pytest.raises(ValueError):
            _settings(**bad)
    assert _settings(jsd_topk=None, is_clip=None).jsd_topk is None


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

    student_dir, teacher_dir, ckpt_dir = sys.argv[1:4]
    model = {"path": student_dir, "override_config": {"attn_implementation": "sdpa"}, "use_remove_padding": True}
    student = TrainingWorker(TrainingWorkerConfig(
        model_type="language_model", model_config=HFModelConfig(**model), optimizer_config=None,
        engine_config=FSDPEngineConfig(strategy="fsdp2", forward_only=True, use_torch_compile=False,
                                       mixed_precision={"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"})))
    student.reset()
    worker_config = OmegaConf.create({"model": {"_target_": "verl.workers.config.HFModelConfig", **model}})
    settings = dict(loss_mode="mopd_jsd_student_topk", jsd_alpha=0.5, jsd_topk=8, is_clip=2.0)
    report = {}

    # EMA on the real FSDP2 shards, then the checkpoint shards.
    ema = EngineTeacher.build(worker_config, student, EngineTeacherSettings(source="ema", rate=0.05, model_path=student_dir, **settings))
    local = lambda module: {n: p.to_local().detach().clone() for n, p in module.named_parameters()}
    t0 = local(ema.engine.module)
    with torch.no_grad():
        for p in student.engine.module.parameters():
            p.to_local().add_(0.01 * torch.randn_like(p.to_local()))
    s1 = local(student.engine.module)
    ema.after_optimizer_step()
    t1 = local(ema.engine.module)
    report["ema_error"] = max(float((t1[n] - torch.lerp(t0[n], s1[n], 0.05)).abs().max()) for n in t0)
    report["ema_moved"] = max(float((t1[n] - t0[n]).abs().max()) for n in t0)
    ema.save(ckpt_dir)
    ema.after_optimizer_step()
    ema.load(ckpt_dir)
    report["restore_error"] = max(float((local(ema.engine.module)[n] - t1[n]).abs().max()) for n in t1)

    # A larger frozen teacher with the student's tokenizer: the terms of one micro-batch.
    ref = EngineTeacher.build(worker_config, student, EngineTeacherSettings(source="ref", rate=0.0, model_path=teacher_dir, **settings))
    g = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(6, 400, (n,), generator=g)
    prompts, responses, teacher_prompts = [ids(5), ids(3), ids(7)], [ids(4), ids(6), ids(2)], [ids(9), ids(12), ids(4)]
    plain_student = AutoModelForCausalLM.from_pretrained(student_dir, dtype=torch.float32, attn_implementation="sdpa")
    with torch.no_grad():
        for p, t in zip(plain_student.parameters(), student.engine.module.parameters()):
            p.copy_(t.full_tensor())
    plain_teacher = AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32, attn_implementation="sdpa")
    temperature = 0.7
    with torch.no_grad():
        student_logits = torch.cat([plain_student(torch.cat([p, r])[None]).logits[0] for p, r in zip(prompts, responses)]) / temperature
        teacher_rows = [plain_teacher(torch.cat([tp, r])[None]).logits[0][len(tp) - 1 : len(tp) - 1 + len(r)] / temperature
                        for tp, r in zip(teacher_prompts, responses)]
    rows = [sum(len(p) + len(r) for p, r in zip(prompts[:i], responses[:i])) + len(prompts[i]) - 1 + torch.arange(len(responses[i]))
            for i in range(3)]
    token_lp = torch.log_softmax(student_logits, -1)
    old = [token_lp[row].gather(-1, r[:, None]).squeeze(-1) - shift for row, r, shift in zip(rows, responses, (0.0, 1.0, -0.3))]
    nested = lambda xs: torch.nested.as_nested_tensor(xs, layout=torch.jagged)
    data = TensorDict({"input_ids": nested([torch.cat([p, r]) for p, r in zip(prompts, responses)]), "prompts": nested(prompts),
                       "responses": nested(responses), TEACHER_PROMPT_FIELD: nested(teacher_prompts), "old_log_probs": nested(old)},
                      batch_size=[3])
    full_vocabulary = EngineTeacher(ref.engine, student.engine, dataclasses.replace(ref.settings, jsd_topk=None))
    results = {}
    for name, teacher, dynamic in (("chunked", ref, True), ("whole", ref, False), ("full_vocabulary", full_vocabulary, True)):
        batch = data.clone()
        tu.assign_non_tensor(batch, temperature=temperature, use_dynamic_bsz=dynamic, max_token_len_per_gpu=20)
        logits = student_logits.clone().unsqueeze(0).requires_grad_(True)
        terms = teacher.student_topk_terms(logits, batch)
        terms["distillation_losses"].sum().backward()
        results[name] = (teacher.settings.jsd_topk, terms, logits.grad[0], teacher.sampled_token_logprobs(batch))

    def expected(topk):
        # per sample, float64, explicit (k+1)-way (or full) distributions, JSD(0.5) times the clipped ratio
        loss, teacher_lp = torch.zeros(student_logits.shape[0], dtype=torch.float64), []
        for i in range(3):
            s = torch.log_softmax(student_logits[rows[i]].double(), -1)
            t = torch.log_softmax(teacher_rows[i].double(), -1)
            p, q = s.exp(), t.exp()
            if topk is not None:
                top = torch.topk(s, topk, -1).indices
                p, q = p.gather(-1, top), q.gather(-1, top)
                p, q = torch.cat([p, 1 - p.sum(-1, keepdim=True)], -1), torch.cat([q, 1 - q.sum(-1, keepdim=True)], -1)
            m = 0.5 * p + 0.5 * q
            kl = lambda a, b: (a * (a.log() - b.log())).sum(-1)
            y = responses[i][:, None]
            weight = torch.exp(s.gather(-1, y).squeeze(-1) - old[i].double()).clamp(max=2.0)
            loss[rows[i]] = (0.5 * kl(q, m) + 0.5 * kl(p, m)) * weight
            teacher_lp.append(t.gather(-1, y).squeeze(-1))
        return loss, torch.cat(teacher_lp)

    response_rows = torch.cat(rows)
    other_rows = [r for r in range(student_logits.shape[0]) if r not in set(response_rows.tolist())]
    for name, (topk, terms, grad, teacher_lp) in results.items():
        expected_loss, expected_teacher_lp = expected(topk)
        loss = terms["distillation_losses"][0].double()
        report[name] = {
            "loss_error": float((loss - expected_loss).abs().max()),
            "loss_max": float(loss.max()),
            "prompt_rows_zero": bool((loss[other_rows] == 0).all()),
            "grad_outside_rows": float(grad[other_rows].abs().max()),
            "grad_on_rows": float(grad[response_rows].abs().max()),
            "teacher_lp_error": float((teacher_lp.values()[response_rows, 0].double() - expected_teacher_lp).abs().max()),
        }
    print("REPORT " + json.dumps(report))
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def engine_report(tiny_assets, larger_teacher_model, tmp_path_factory) -> dict:
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
    ckpt = tmp_path_factory.mktemp("teacher_ckpt")
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, tiny_assets["model"], larger_teacher_model, str(ckpt)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = [line for line in completed.stdout.splitlines() if line.startswith("REPORT ")]
    assert completed.returncode == 0 and reports, completed.stderr[-4000:]
    return json.loads(reports[-1][len("REPORT ") :])


def test_ema_moves_real_fsdp2_shards_by_exactly_the_rule(engine_report):
    assert engine_report["ema_moved"] > 1e-5
    assert engine_report["ema_error"] == 0.0
    assert engine_report["restore_error"] == 0.0


@pytest.mark.parametrize("variant", ["chunked", "whole", "full_vocabulary"])
def test_teacher_terms_match_a_per_sample_full_softmax_computation(engine_report, variant):
    """[teacher prompt ; response] for a larger teacher, temperature 0.7, aligned to the student's rows,
    teacher forwards split by the token budget or not, student top-8 + tail or the full vocabulary: the
    same numbers as an independent per-sample computation."""
    report = engine_report[variant]
    assert report["loss_max"] > 1e-3  # a random larger teacher disagrees with the student
    assert report["loss_error"] < 1e-5
    assert report["teacher_lp_error"] < 1e-5
    assert report["prompt_rows_zero"]
    assert report["grad_outside_rows"] == 0.0 and report["grad_on_rows"] > 0.0


def _compose(tiny_assets, *overrides):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from recipe.mopd import main_mopd

    config_dir = Path(main_mopd.__file__).resolve().parent / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        config = compose(
            config_name="mopd_trainer",
            overrides=[
                "platform=cpu",
                f"actor_rollout_ref.model.path={tiny_assets['model']}",
                f"data.train_files={tiny_assets['train']}",
                f"data.val_files={tiny_assets['val']}",
                *overrides,
            ],
        )
    OmegaConf.resolve(config)
    return config


PAPER = (
    "mopd.teacher=ema",
    "distillation.distillation_loss.loss_mode=mopd_jsd_student_topk",
    "distillation.distillation_loss.use_policy_gradient=false",
)


@pytest.mark.parametrize("extra", [(), ("mopd.jsd_topk=null",), ("mopd.teacher=ref",)])
def test_paper_configuration_passes_preflight_and_verl_validation(tiny_assets, extra):
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from recipe.mopd.main_mopd import preflight

    config = _compose(tiny_assets, *PAPER, *extra)
    preflight(config)
    validate_config(
        config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )
    settings = EngineTeacherSettings.from_config(config)
    assert (settings.jsd_alpha, settings.is_clip, settings.model_path) == (0.5, 2.0, tiny_assets["model"])
    if extra == ("mopd.jsd_topk=null",):
        assert settings.jsd_topk is None  # the full vocabulary; verl's own topk keeps its value
    else:
        assert settings.jsd_topk == 16
    assert settings.rate == (0.0 if extra == ("mopd.teacher=ref",) else 0.05)


def test_preflight_rejects_unsupported_teacher_and_loss_pairs(tiny_assets):
    from recipe.mopd.main_mopd import ConfigError, preflight

    cases = {
        "only an in-engine teacher": (*PAPER[1:], "mopd.teacher=live"),
        "use_policy_gradient=false": (*PAPER[:2], "distillation.distillation_loss.use_policy_gradient=true"),
        "supports distillation.distillation_loss.loss_mode": (
            "mopd.teacher=ema",
            "distillation.distillation_loss.loss_mode=mopd_jsd",
        ),
        "mopd.ema_rate": (*PAPER, "mopd.ema_rate=2.0"),
    }
    for message, overrides in cases.items():
        with pytest.raises(ConfigError, match=message):
            preflight(_compose(tiny_assets, *overrides))


def test_preflight_checks_the_teacher_checkpoint(
    tiny_assets, larger_teacher_model, chatml_tokenizer, tmp_path
):
    from recipe.mopd.main_mopd import ConfigError, preflight

    key = "distillation.teacher_models.teacher_model.model_path"
    with pytest.raises(ConfigError, match="must be the student's checkpoint"):
        preflight(_compose(tiny_assets, *PAPER, f"{key}={larger_teacher_model}"))
    preflight(_compose(tiny_assets, *PAPER, "mopd.teacher=ref", f"{key}={larger_teacher_model}"))
    chatml_tokenizer.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="does not share the student's tokenizer"):
        preflight(_compose(tiny_assets, *PAPER, "mopd.teacher=ref", f"{key}={tmp_path}"))
