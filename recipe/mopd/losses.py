"""MOPD losses registered with verl's distillation-loss registry.

`mopd_jsd`: the paper's generalized JSD(alpha) on the teacher's top-k token ids plus a tail bucket
(`jsd.topk_tail_jsd`; alpha 0 = forward KL, 1 = reverse KL), backpropagated directly
(`use_policy_gradient=false`). verl computes top-k losses inside the model's logits processor with a
hard-wired forward-KL kernel; `install_topk_dispatch` routes `mopd_jsd` to ours there. alpha comes from
`mopd.jsd_alpha`, which `main_mopd` exports to every worker as MOPD_JSD_ALPHA (verl's loss config has no
free field to carry it).

`mopd_k1`: the sampled-token reverse-KL estimator (student − teacher log-prob) that verl's OPD path turns
into the per-token advantage `log p_teacher(y_t) − log p_student(y_t)` when
`distillation.distillation_loss.use_policy_gradient=true` (PPO-clipped against the rollout policy).
It differs from verl's built-in `k1` only by the per-sample MOPD mask: samples without any usable peer
or feedback contribute nothing, and the surviving tokens are re-weighted so that, within the
micro-batch, the masked tokens are not averaged in.

`mopd_jsd_student_topk`: the paper's loss for an in-engine teacher (`mopd.teacher=ema|ref`): JSD(alpha)
over the *student's* top-k ids at each position plus a tail bucket (`mopd.jsd_topk`; null = the full
vocabulary), weighted by the clipped importance ratio min(p/p_old, `mopd.is_clip`). Its per-token terms
need the teacher's distribution at the student's top-k ids, so they are computed in the actor's logits
processor by `recipe.mopd.engine_teacher` (teacher forward per micro-batch) with
`student_topk_jsd_rows`; the function registered here only masks and reports them.

Common to all three:
- Rollout-mismatch correction. When verl's `algorithm.rollout_correction.rollout_is` is set, the trainer
  puts its detached weights (token level: min(π_old(y_t)/π_rollout(y_t), rollout_is_threshold)) into the
  batch as `rollout_is_weights`, and every MOPD per-token loss is multiplied by them, as the released code
  does. verl applies them itself only inside its policy-gradient path (`use_policy_gradient=true`), and
  there it reads them without unpadding; the losses then hand them over padded instead of applying them
  twice. The non-policy-gradient path of verl 0.9.1 ignores them, so there the losses apply them.
- Aggregation. Masked samples (no usable peer, invalid reward) contribute nothing. Under verl's
  `token-mean` the kept tokens are re-weighted so the loss is the exact mean over unmasked tokens (the
  default). Under any other `actor.loss_agg_mode` the masked samples are only zeroed and verl normalizes:
  `seq-mean-token-mean` is then the released objective exactly, (1/N) Σ_i m_i · mean_t ℓ_{i,t} over all
  N samples of the mini-batch, masked ones counted in N (the release runs micro-batches of one sequence).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from verl.trainer.distillation.losses import DistillationLossSettings, register_distillation_loss
from verl.trainer.ppo.core_algos import kl_penalty
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

from recipe.mopd.jsd import gather_with_exact_tail, generalized_jsd, topk_tail_jsd

MASK_FIELD = "mopd_distill_mask"
JSD_LOSS = "mopd_jsd"
STUDENT_TOPK_JSD_LOSS = "mopd_jsd_student_topk"
JSD_ALPHA_ENV = "MOPD_JSD_ALPHA"
# Unmasked response tokens of the whole mini-batch over all DP ranks; set by the engine-teacher worker.
KEPT_TOKENS_KEY = "mopd_kept_tokens"
# verl's rollout-correction weights in the batch (trainer_base._compute_advantage).
ROLLOUT_IS_FIELD = "rollout_is_weights"
# Under this aggregation every sample counts once whatever its length, masked samples included.
RELEASE_LOSS_AGG_MODE = "seq-mean-token-mean"


def sample_weights(sample_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Per-sample weight that zeroes masked samples and rescales the rest so the token-mean over the
    micro-batch equals the token-mean over unmasked samples only."""
    tokens = response_mask.sum(dim=-1).float()
    kept = (tokens * sample_mask).sum()
    if kept <= 0:
        return torch.zeros_like(sample_mask)
    return sample_mask * (tokens.sum() / kept)


def token_mean_weights(sample_mask: torch.Tensor, response_mask: torch.Tensor, data) -> torch.Tensor:
    """Per-sample weights under which verl's token-mean is the mean over unmasked samples' tokens.

    verl divides every micro-batch's token sum by `batch_num_tokens`, all response tokens of the mini-batch
    over the DP ranks. When the worker supplies the matching count of unmasked tokens
    (KEPT_TOKENS_KEY), weighting by batch_num_tokens / kept makes the result exact for any micro-batching;
    otherwise `sample_weights` rescales within the micro-batch.
    """
    if KEPT_TOKENS_KEY not in data:
        return sample_weights(sample_mask, response_mask)
    kept = float(data[KEPT_TOKENS_KEY])
    if kept <= 0:
        return torch.zeros_like(sample_mask)
    return sample_mask * (float(data["batch_num_tokens"]) / kept)


def loss_agg_mode(config) -> str:
    """The actor's `loss_agg_mode` (verl's default, token-mean, for a unit test's config=None)."""
    return getattr(config, "loss_agg_mode", None) or "token-mean"


def sample_loss_weights(sample_mask: torch.Tensor, response_mask: torch.Tensor, data, agg_mode: str):
    """[B] per-sample loss weights: `token_mean_weights` under token-mean, else the mask itself (verl's
    aggregation then normalizes; see the module docstring)."""
    if agg_mode == "token-mean":
        return token_mean_weights(sample_mask, response_mask, data)
    return sample_mask


def rollout_mismatch_weights(data) -> torch.Tensor | None:
    """verl's rollout-correction weights as a detached [B, T] tensor padded like the response mask, or
    None when `algorithm.rollout_correction.rollout_is` is off (or the rollout gave no log-probs)."""
    if ROLLOUT_IS_FIELD not in data:
        return None
    weights = data[ROLLOUT_IS_FIELD]
    weights = weights.to_padded_tensor(0.0) if weights.is_nested else weights
    return weights.detach().float()


def _applies_rollout_weights(distillation_config) -> bool:
    """False where verl's policy-gradient path multiplies the weights in itself."""
    if distillation_config is None:
        return True
    return not distillation_config.distillation_loss.use_policy_gradient


def _weighted(losses: torch.Tensor, config, distillation_config, data, metrics: dict):
    """Per-token losses with the sample weights and the rollout-mismatch weights applied (see the module
    docstring); adds `mopd/loss_sample_fraction` and `mopd/rollout_is_weight` to `metrics`."""
    response_mask = _padded_response_mask(data)
    sample_mask = data[MASK_FIELD].to(losses.dtype).reshape(-1)
    valid = response_mask & (sample_mask.unsqueeze(-1) > 0)
    weights = sample_loss_weights(sample_mask, response_mask, data, loss_agg_mode(config))
    losses = losses * weights.unsqueeze(-1)
    metrics["mopd/loss_sample_fraction"] = Metric(AggregationType.MEAN, sample_mask.mean())
    rollout_weights = rollout_mismatch_weights(data)
    if rollout_weights is not None:
        kept = rollout_weights[valid]
        metrics["mopd/rollout_is_weight"] = Metric(
            AggregationType.MEAN, kept.mean() if kept.numel() else torch.tensor(1.0)
        )
        if _applies_rollout_weights(distillation_config):
            losses = losses * rollout_weights.to(losses.dtype)
        else:
            data[ROLLOUT_IS_FIELD] = rollout_weights
    return losses, valid


def _valid_mean(model_output: dict, key: str, data, valid: torch.Tensor) -> torch.Tensor:
    values = no_padding_2_padding(model_output[key], data)[valid]
    return values.mean() if values.numel() else torch.tensor(0.0)


def _padded_response_mask(data) -> torch.Tensor:
    mask = data["response_mask"]
    return (mask.to_padded_tensor(0) if mask.is_nested else mask).bool()


@register_distillation_loss(DistillationLossSettings(names="mopd_k1", use_estimator=True))
def compute_mopd_k1(config, distillation_config, model_output, data) -> tuple[torch.Tensor, dict[str, Any]]:
    student = no_padding_2_padding(model_output["log_probs"], data)
    teacher = no_padding_2_padding(data["teacher_logprobs"], data).squeeze(-1)
    per_token = kl_penalty(logprob=student, ref_logprob=teacher, kl_penalty="k1")
    metrics: dict[str, Any] = {}
    losses, valid = _weighted(per_token, config, distillation_config, data, metrics)
    gap = (teacher - student)[valid]
    metrics["mopd/teacher_minus_student_logprob"] = Metric(
        AggregationType.MEAN, gap.mean() if gap.numel() else torch.tensor(0.0)
    )
    return losses, metrics


def jsd_alpha() -> float:
    alpha = float(os.environ.get(JSD_ALPHA_ENV, "0.5"))
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"mopd.jsd_alpha must lie in [0, 1], got {alpha}")
    return alpha


def topk_tail_jsd_from_logits(
    student_logits: torch.Tensor,
    teacher_topk_log_probs: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    alpha: float,
) -> dict[str, torch.Tensor]:
    """Per-token JSD between the student (full logits) and the teacher on the teacher's top-k + tail.

    The student's tail is exact (its full distribution is at hand); the teacher's is 1 - sum of its
    top-k probabilities, all a server returns (float32-limited for teacher tails below ~1e-5).
    """
    student_log_probs = F.log_softmax(student_logits.float(), dim=-1)
    ids = teacher_topk_ids.long()
    student_topk = torch.gather(student_log_probs, dim=-1, index=ids)
    teacher_topk = teacher_topk_log_probs.float()
    return {
        "distillation_losses": topk_tail_jsd(
            student_full_logprobs=student_log_probs,
            support_ids=ids,
            teacher_support_logprobs=teacher_topk,
            alpha=alpha,
        ),
        "student_mass": student_topk.exp().sum(dim=-1),
        "teacher_mass": teacher_topk.exp().sum(dim=-1),
    }


def _mopd_topk_kernel(forward_kl_kernel):
    """Wraps verl's FSDP top-k kernel: `mopd_jsd` gets the JSD, every other loss mode verl's own."""

    def kernel(student_logits, teacher_topk_log_probs, teacher_topk_ids, config, data_format):
        if config.distillation_loss.loss_mode != JSD_LOSS:
            return forward_kl_kernel(
                student_logits, teacher_topk_log_probs, teacher_topk_ids, config, data_format
            )
        from verl.utils.ulysses import get_ulysses_sequence_parallel_world_size, slice_input_tensor

        # Same input handling as verl's kernel: packed (nested) teacher rows aligned with the logits.
        teacher_topk_log_probs = teacher_topk_log_probs.values().unsqueeze(0)
        teacher_topk_ids = teacher_topk_ids.values().unsqueeze(0)
        if get_ulysses_sequence_parallel_world_size() > 1:
            teacher_topk_log_probs = slice_input_tensor(teacher_topk_log_probs, dim=1)
            teacher_topk_ids = slice_input_tensor(teacher_topk_ids, dim=1)
        return topk_tail_jsd_from_logits(
            student_logits, teacher_topk_log_probs, teacher_topk_ids, jsd_alpha()
        )

    kernel.__mopd_dispatch__ = True
    kernel.__wrapped__ = forward_kl_kernel
    return kernel


def install_topk_dispatch() -> None:
    import verl.trainer.distillation.fsdp.losses as fsdp_losses

    if not getattr(fsdp_losses.compute_forward_kl_topk, "__mopd_dispatch__", False):
        fsdp_losses.compute_forward_kl_topk = _mopd_topk_kernel(fsdp_losses.compute_forward_kl_topk)


@register_distillation_loss(DistillationLossSettings(names=JSD_LOSS, use_topk=True))
def compute_mopd_jsd(config, distillation_config, model_output, data) -> tuple[torch.Tensor, dict[str, Any]]:
    losses = no_padding_2_padding(model_output["distillation_losses"], data)
    metrics: dict[str, Any] = {}
    weighted, valid = _weighted(losses, config, distillation_config, data, metrics)

    def valid_mean(key: str) -> torch.Tensor:
        return _valid_mean(model_output, key, data, valid)

    metrics["mopd/jsd"] = Metric(AggregationType.MEAN, valid_mean("distillation_losses"))
    metrics["mopd/teacher_topk_mass"] = Metric(AggregationType.MEAN, valid_mean("teacher_mass"))
    metrics["mopd/student_mass_on_teacher_topk"] = Metric(AggregationType.MEAN, valid_mean("student_mass"))
    return weighted, metrics


def student_topk_jsd_rows(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    sampled_ids: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    *,
    alpha: float,
    topk: int | None,
    is_clip: float | None,
) -> dict[str, torch.Tensor]:
    """Per-row `mopd_jsd_student_topk` terms for aligned response rows [n, V] of both models.

    Both logits are already divided by the sampling temperature; gradients reach `student_logits` only.
    The support is the student's top-`topk` ids of each row plus a tail bucket whose log-mass is exact,
    logsumexp of the non-top-k logits minus logsumexp of all (the full vocabulary for topk=None or
    topk >= V); the JSD is multiplied by the detached ratio p(y)/p_old(y) of the sampled token, clipped
    at `is_clip` (None: no weight). Returns [n] tensors: `distillation_losses`, `student_mass` /
    `teacher_mass` (each model's mass on the support) and `logprob_gap` (teacher - student log-prob of
    the sampled token, a diagnostic).
    """
    student = F.log_softmax(student_logits.float(), dim=-1)
    teacher = F.log_softmax(teacher_logits.detach().float(), dim=-1)
    if topk is None or topk >= student.shape[-1]:
        per_token = generalized_jsd(student, teacher, alpha)
        student_mass = torch.ones_like(per_token).detach()
        teacher_mass = torch.ones_like(per_token)
    else:
        ids = torch.topk(student.detach(), k=topk, dim=-1).indices
        # Both full distributions are here: each tail is exact (`gather_with_exact_tail`).
        student_support = gather_with_exact_tail(student, ids)
        teacher_support = gather_with_exact_tail(teacher, ids)
        per_token = generalized_jsd(student_support, teacher_support, alpha)
        student_mass = student_support[..., :-1].detach().exp().sum(-1)
        teacher_mass = teacher_support[..., :-1].exp().sum(-1)
    sampled = sampled_ids.long().unsqueeze(-1)
    student_token = student.gather(-1, sampled).squeeze(-1).detach()
    if is_clip is not None:
        if old_logprobs is None:
            raise ValueError("the importance weight needs the rollout policy's old_log_probs")
        per_token = per_token * torch.exp(student_token - old_logprobs.float()).clamp(max=is_clip)
    return {
        "distillation_losses": per_token,
        "student_mass": student_mass,
        "teacher_mass": teacher_mass,
        "logprob_gap": teacher.gather(-1, sampled).squeeze(-1) - student_token,
    }


@register_distillation_loss(DistillationLossSettings(names=STUDENT_TOPK_JSD_LOSS, use_topk=True))
def compute_mopd_jsd_student_topk(
    config, distillation_config, model_output, data
) -> tuple[torch.Tensor, dict[str, Any]]:
    losses = no_padding_2_padding(model_output["distillation_losses"], data)
    metrics: dict[str, Any] = {}
    weighted, valid = _weighted(losses, config, distillation_config, data, metrics)

    def valid_mean(key: str) -> torch.Tensor:
        return _valid_mean(model_output, key, data, valid)

    metrics["mopd/jsd"] = Metric(AggregationType.MEAN, valid_mean("distillation_losses"))
    metrics["mopd/student_topk_mass"] = Metric(AggregationType.MEAN, valid_mean("student_mass"))
    metrics["mopd/teacher_mass_on_student_topk"] = Metric(AggregationType.MEAN, valid_mean("teacher_mass"))
    metrics["mopd/teacher_minus_student_logprob"] = Metric(AggregationType.MEAN, valid_mean("logprob_gap"))
    return weighted, metrics


install_topk_dispatch()
