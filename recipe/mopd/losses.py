"""MOPD losses registered with verl's distillation-loss registry.

`mopd_k1`: the sampled-token reverse-KL estimator (student − teacher log-prob) that verl's OPD path turns
into the per-token advantage `log p_teacher(y_t) − log p_student(y_t)` when
`distillation.distillation_loss.use_policy_gradient=true` (PPO-clipped against the rollout policy).
It differs from verl's built-in `k1` only by the per-sample MOPD mask: samples without any usable peer
or feedback contribute nothing, and the surviving tokens are re-weighted so that, within the
micro-batch, the masked tokens are not averaged in.
"""

from __future__ import annotations

from typing import Any

import torch

from verl.trainer.distillation.losses import DistillationLossSettings, register_distillation_loss
from verl.trainer.ppo.core_algos import kl_penalty
from verl.utils.metric import AggregationType, Metric
from verl.workers.utils.padding import no_padding_2_padding

MASK_FIELD = "mopd_distill_mask"


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
