"""Rollout-mismatch correction and the release-compatible aggregation in the three MOPD losses.

Each loss runs through verl's own `distillation_ppo_loss` (what the actor calls per micro-batch) with the actor
and distillation configs verl builds from mopd_trainer.yaml, on a batch whose rollout log-probs differ from
the old log-probs by known amounts; the rollout-correction weights come from verl's own function with the
config's `algorithm.rollout_correction` settings. Loss and gradient are compared with the weighted objective
written out independently in float64.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tensordict import TensorDict
from verl.trainer.distillation.losses import distillation_ppo_loss
from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_weights
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass

import recipe.mopd.main_mopd  # noqa: F401  (the config's resolvers and the loss registrations)
from recipe.mopd import losses
from recipe.mopd.alignment import packed_response_rows

CONFIG_DIR = str(Path(__file__).resolve().parents[3] / "recipe/mopd/config")
PROMPT_LENS, RESPONSE_LENS = [2, 3, 1], [3, 2, 4]
VOCAB, TOPK, ALPHA = 24, 4, 0.5
# log(pi_old / pi_rollout) per response token: weights from e^-1.2 up to e^1.2, clipped at 2.
LOG_RATIO = torch.linspace(-1.2, 1.2, sum(RESPONSE_LENS))
LOSS_MODES = ("mopd_jsd_student_topk", "mopd_jsd", "mopd_k1")


@functools.cache
def _configs(loss_mode: str, agg_mode: str):
    overrides = [
        f"distillation.distillation_loss.loss_mode={loss_mode}",
        f"distillation.distillation_loss.use_policy_gradient={loss_mode == 'mopd_k1'}",
        f"distillation.distillation_loss.topk={TOPK}",
        f"actor_rollout_ref.actor.loss_agg_mode={agg_mode}",
        "actor_rollout_ref.model.path=/unused",
        "actor_rollout_ref.rollout.name=vllm",
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=3",
    ]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        config = compose(config_name="mopd_trainer", overrides=overrides)
    OmegaConf.resolve(config)
    return (
        omega_conf_to_dataclass(config.actor_rollout_ref.actor),
        omega_conf_to_dataclass(config.distillation),
        config.algorithm.rollout_correction,
    )


def _nested(rows: list[torch.Tensor]) -> torch.Tensor:
    return torch.nested.as_nested_tensor(rows, layout=torch.jagged)


def _per_sample(values: torch.Tensor, lens: list[int]) -> list[torch.Tensor]:
    return list(torch.split(values, lens))


class Case:
    """Random student/teacher logits over packed [P_i ; R_i] sequences, as one micro-batch."""

    def __init__(self, sample_mask: list[float]):
        g = torch.Generator().manual_seed(0)
        self.total = sum(PROMPT_LENS) + sum(RESPONSE_LENS)
        self.rows = packed_response_rows(PROMPT_LENS, RESPONSE_LENS)
        self.student_logits = (torch.randn(1, self.total, VOCAB, generator=g) * 2).requires_grad_()
        self.teacher_logits = torch.randn(self.total, VOCAB, generator=g) * 2
        self.sampled = torch.randint(0, VOCAB, (sum(RESPONSE_LENS),), generator=g)
        student = torch.log_softmax(self.student_logits.detach()[0, self.rows], -1)
        # On-policy: the old policy is the current one, so the clipped ratio p / p_old is 1.
        self.old = student.gather(-1, self.sampled[:, None]).squeeze(-1)
        self.rollout = self.old - LOG_RATIO
        self.sample_mask = torch.tensor(sample_mask)

    def data(self, rollout_correction, with_weights: bool) -> TensorDict:
        response_mask = torch.ones(len(RESPONSE_LENS), max(RESPONSE_LENS))
        for i, length in enumerate(RESPONSE_LENS):
            response_mask[i, length:] = 0
        fields = {
            "prompts": _nested([torch.ones(p, dtype=torch.long) for p in PROMPT_LENS]),
            "responses": _nested(_per_sample(self.sampled, RESPONSE_LENS)),
            "response_mask": _nested([torch.ones(r, dtype=torch.long) for r in RESPONSE_LENS]),
            "old_log_probs": _nested(_per_sample(self.old, RESPONSE_LENS)),
            "advantages": _nested([torch.zeros(r) for r in RESPONSE_LENS]),
            "teacher_logprobs": torch.nested.nested_tensor_from_jagged(
                self._packed(self._teacher_token_logprobs()).unsqueeze(-1), self._offsets()
            ),
            losses.MASK_FIELD: self.sample_mask.clone(),
        }
        if with_weights:
            padded_log_ratio = torch.zeros_like(response_mask)
            for i, chunk in enumerate(_per_sample(LOG_RATIO, RESPONSE_LENS)):
                padded_log_ratio[i, : len(chunk)] = chunk
            weights, _ = compute_rollout_correction_weights(
                log_ratio=padded_log_ratio,
                response_mask=response_mask,
                rollout_is=rollout_correction.rollout_is,
                rollout_is_threshold=rollout_correction.rollout_is_threshold,
            )
            # The trainer stores them per sample, unpadded, like every response-level field.
            fields[losses.ROLLOUT_IS_FIELD] = _nested([w[:r] for w, r in zip(weights, RESPONSE_LENS)])
        data = TensorDict(fields, batch_size=[len(PROMPT_LENS)])
        tu.assign_non_tensor(
            data, dp_size=1, batch_num_tokens=sum(RESPONSE_LENS), global_batch_size=len(PROMPT_LENS)
        )
        return data

    def _offsets(self) -> torch.Tensor:
        lengths = torch.tensor(PROMPT_LENS) + torch.tensor(RESPONSE_LENS)
        return torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])

    def _packed(self, response_values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(self.total, dtype=response_values.dtype).index_put((self.rows,), response_values)

    def _teacher_token_logprobs(self) -> torch.Tensor:
        teacher = torch.log_softmax(self.teacher_logits[self.rows], -1)
        return teacher.gather(-1, self.sampled[:, None]).squeeze(-1)

    def model_output(self, loss_mode: str) -> dict:
        """What verl's forward (and, for top-k losses, the logits processor) hands the final loss."""
        as_nested = functools.partial(torch.nested.nested_tensor_from_jagged, offsets=self._offsets())
        student_rows = self.student_logits[0, self.rows]
        if loss_mode == "mopd_k1":
            log_probs = torch.log_softmax(student_rows, -1).gather(-1, self.sampled[:, None]).squeeze(-1)
            return {"log_probs": as_nested(self._packed(log_probs))}
        if loss_mode == "mopd_jsd_student_topk":
            terms = losses.student_topk_jsd_rows(
                student_rows,
                self.teacher_logits[self.rows],
                self.sampled,
                self.old,
                alpha=ALPHA,
                topk=TOPK,
                is_clip=2.0,
            )
        else:
            teacher = torch.log_softmax(self.teacher_logits, -1)
            ids = teacher.topk(TOPK, dim=-1).indices
            terms = {
                key: value[0]
                for key, value in losses.topk_tail_jsd_from_logits(
                    self.student_logits, teacher.gather(-1, ids)[None], ids[None], ALPHA
                ).items()
            }
            return {key: as_nested(value) for key, value in terms.items()}
        return {key: as_nested(self._packed(value)) for key, value in terms.items()}


def _independent_per_token(case: Case, loss_mode: str, student_logits: torch.Tensor) -> torch.Tensor:
    """[sum R] per-token loss (before weights) from the definitions, float64."""
    rows = case.rows
    p_full = torch.softmax(student_logits[0, rows], -1)
    q_full = torch.softmax(case.teacher_logits[rows].double(), -1)
    if loss_mode == "mopd_k1":
        sampled = case.sampled[:, None]
        # The policy-gradient surrogate: -A * ratio with A = log q(y) - log p(y) detached, ratio = p / p_old.
        advantage = (q_full.gather(-1, sampled).log() - p_full.gather(-1, sampled).log()).squeeze(-1).detach()
        ratio = torch.exp(p_full.gather(-1, sampled).squeeze(-1).log() - case.old.double())
        return -advantage * ratio
    if loss_mode == "mopd_jsd_student_topk":
        ids = p_full.detach().topk(TOPK, -1).indices
        q_tail = q_full.scatter(-1, ids, 0.0).sum(-1, keepdim=True)
    else:
        ids = torch.log_softmax(case.teacher_logits[rows], -1).topk(TOPK, -1).indices
        # Only the teacher's top-k values exist on this path: its tail is 1 - their sum.
        q_tail = 1 - torch.log_softmax(case.teacher_logits[rows], -1).gather(-1, ids).double().exp().sum(
            -1, True
        )
    p = torch.cat([p_full.gather(-1, ids), p_full.scatter(-1, ids, 0.0).sum(-1, keepdim=True)], -1)
    q = torch.cat([q_full.gather(-1, ids), q_tail], -1)
    m = (1 - ALPHA) * p + ALPHA * q

    def kl(a, b):
        return (a * (a.log() - b.log())).sum(-1)

    return ALPHA * kl(q, m) + (1 - ALPHA) * kl(p, m)


def _independent_objective(case: Case, loss_mode: str, agg_mode: str, weights: torch.Tensor):
    student_logits = case.student_logits.detach().double().requires_grad_()
    per_token = _independent_per_token(case, loss_mode, student_logits) * weights.double()
    keep = torch.repeat_interleave(case.sample_mask.double(), torch.tensor(RESPONSE_LENS))
    if agg_mode == "token-mean":
        loss = (per_token * keep).sum() / (keep * 1.0).sum()
    else:
        # The release: every sample's own token-mean, averaged over all N samples, masked ones in N.
        sequence_means = torch.stack([chunk.mean() for chunk in _per_sample(per_token * keep, RESPONSE_LENS)])
        loss = sequence_means.sum() / len(RESPONSE_LENS)
    (grad,) = torch.autograd.grad(loss, student_logits)
    return loss.detach(), grad


def test_the_mopd_config_turns_on_verls_token_level_rollout_correction_at_threshold_two():
    _, _, rollout_correction = _configs("mopd_k1", "token-mean")
    assert rollout_correction.rollout_is == "token"
    assert float(rollout_correction.rollout_is_threshold) == 2.0
    assert rollout_correction.bypass_mode is False


@pytest.mark.parametrize("loss_mode", LOSS_MODES)
@pytest.mark.parametrize("with_weights", [True, False], ids=["rollout_is", "no_rollout_is"])
@pytest.mark.parametrize("sample_mask", [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]], ids=["masked", "all_kept"])
def test_loss_and_gradient_carry_the_rollout_mismatch_weight(loss_mode, with_weights, sample_mask):
    actor, distillation, rollout_correction = _configs(loss_mode, "token-mean")
    case = Case(sample_mask)
    data = case.data(rollout_correction, with_weights)
    loss, metrics = distillation_ppo_loss(
        actor, distillation, model_output=case.model_output(loss_mode), data=data
    )
    loss.backward()

    expected_weights = LOG_RATIO.exp().clamp(max=2.0) if with_weights else torch.ones_like(LOG_RATIO)
    expected_loss, expected_grad = _independent_objective(case, loss_mode, "token-mean", expected_weights)
    torch.testing.assert_close(loss.double(), expected_loss, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(case.student_logits.grad.double(), expected_grad, atol=1e-6, rtol=1e-5)
    if with_weights:
        keep = torch.repeat_interleave(torch.tensor(sample_mask), torch.tensor(RESPONSE_LENS)) > 0
        logged = metrics["mopd/rollout_is_weight"].values[0]
        assert float(logged) == pytest.approx(expected_weights[keep].mean().item(), rel=1e-6)
    else:
        assert "mopd/rollout_is_weight" not in metrics


def test_the_weight_really_changes_the_objective():
    actor, distillation, rollout_correction = _configs("mopd_jsd_student_topk", "token-mean")
    values = []
    for with_weights in (True, False):
        case = Case([1.0, 1.0, 1.0])
        data = case.data(rollout_correction, with_weights)
        output = case.model_output("mopd_jsd_student_topk")
        values.append(distillation_ppo_loss(actor, distillation, model_output=output, data=data)[0])
    assert not math.isclose(values[0].item(), values[1].item(), rel_tol=1e-3)


@pytest.mark.parametrize("loss_mode", LOSS_MODES)
def test_seq_mean_token_mean_reproduces_the_released_per_sequence_objective(loss_mode):
    actor, distillation, rollout_correction = _configs(loss_mode, losses.RELEASE_LOSS_AGG_MODE)
    case = Case([1.0, 0.0, 1.0])
    data = case.data(rollout_correction, with_weights=True)
    loss, _ = distillation_ppo_loss(actor, distillation, model_output=case.model_output(loss_mode), data=data)
    loss.backward()
    weights = LOG_RATIO.exp().clamp(max=2.0)
    expected_loss, expected_grad = _independent_objective(
        case, loss_mode, losses.RELEASE_LOSS_AGG_MODE, weights
    )
    torch.testing.assert_close(loss.double(), expected_loss, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(case.student_logits.grad.double(), expected_grad, atol=1e-6, rtol=1e-5)
    token_mean, _ = _independent_objective(case, loss_mode, "token-mean", weights)
    assert not math.isclose(expected_loss.item(), token_mean.item(), rel_tol=1e-3)
