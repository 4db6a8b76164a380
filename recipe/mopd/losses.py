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

from recipe.mopd.jsd import topk_tail_jsd

MASK_FIELD = "mopd_distill_mask"
JSD_LOSS = "mopd_jsd"
JSD_ALPHA_ENV = "MOPD_JSD_ALPHA"


def sample_weights(sample_mask: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Per-sample weight that zeroes masked samples and rescales the rest so the token-mean over the
    micro-batch equals the token-mean over unmasked samples only."""
    tokens = response_mask.sum(dim=-1).float()
    kept = (tokens * sample_mask).sum()
    if kept <= 0:
        return torch.zeros_like(sample_mask)
    return sample_mask * (tokens.sum() / kept)


def _padded_response_mask(data) -> torch.Tensor:
    mask = data["response_mask"]
    return (mask.to_padded_tensor(0) if mask.is_nested else mask).bool()


@register_distillation_loss(DistillationLossSettings(names="mopd_k1", use_estimator=True))
def compute_mopd_k1(config, distillation_config, model_output, data) -> tuple[torch.Tensor, dict[str, Any]]:
    student = no_padding_2_padding(model_output["log_probs"], data)
    teacher = no_padding_2_padding(data["teacher_logprobs"], data).squeeze(-1)
    response_mask = _padded_response_mask(data)
    per_token = kl_penalty(logprob=student, ref_logprob=teacher, kl_penalty="k1")
    sample_mask = data[MASK_FIELD].to(per_token.dtype).reshape(-1)
    weights = sample_weights(sample_mask, response_mask)
    losses = per_token * weights.unsqueeze(-1)
    valid = response_mask & (sample_mask.unsqueeze(-1) > 0)
    gap = (teacher - student)[valid]
    metrics = {
        "mopd/teacher_minus_student_logprob": Metric(
            AggregationType.MEAN, gap.mean() if gap.numel() else torch.tensor(0.0)
        ),
        "mopd/loss_sample_fraction": Metric(AggregationType.MEAN, sample_mask.mean()),
    }
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
    """Per-token JSD between the student (full logits) and the teacher on the teacher's top-k + tail."""
    student_log_probs = F.log_softmax(student_logits.float(), dim=-1)
    student_topk = torch.gather(student_log_probs, dim=-1, index=teacher_topk_ids.long())
    teacher_topk = teacher_topk_log_probs.float()
    return {
        "distillation_losses": topk_tail_jsd(
            student_support_logprobs=student_topk, teacher_support_logprobs=teacher_topk, alpha=alpha
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
    response_mask = _padded_response_mask(data)
    sample_mask = data[MASK_FIELD].to(losses.dtype).reshape(-1)
    weights = sample_weights(sample_mask, response_mask)
    valid = response_mask & (sample_mask.unsqueeze(-1) > 0)
    teacher_mass = no_padding_2_padding(model_output["teacher_mass"], data)[valid]
    student_mass = no_padding_2_padding(model_output["student_mass"], data)[valid]
    zero = torch.tensor(0.0)
    metrics = {
        "mopd/jsd": Metric(AggregationType.MEAN, losses[valid].mean() if valid.any() else zero),
        "mopd/teacher_topk_mass": Metric(AggregationType.MEAN, teacher_mass.mean() if valid.any() else zero),
        "mopd/student_mass_on_teacher_topk": Metric(
            AggregationType.MEAN, student_mass.mean() if valid.any() else zero
        ),
        "mopd/loss_sample_fraction": Metric(AggregationType.MEAN, sample_mask.mean()),
    }
    return losses * weights.unsqueeze(-1), metrics


install_topk_dispatch()
