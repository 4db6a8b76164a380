"""The per-token distillation loss: generalized Jensen-Shannon divergence on a top-k support + tail bucket.

Given student (p) and teacher (q) log-probs gathered on the same k token ids per response position, each
side gets a (k+1)-th "tail" bucket holding the remaining mass, and the loss per position is
    JSD_a(p, q) = a KL(q || m) + (1 - a) KL(p || m),  m = (1 - a) p + a q       (TRL GKD convention)
with a = 0 and a = 1 replaced by forward KL(q || p) and reverse KL(p || q), as TRL and SDPO do.
"""

from __future__ import annotations

import math

import torch

# Log-probs below this are zero probability in any float type; flooring -inf here keeps every
# intermediate finite (no inf - inf, no 0 * inf), so gradients never turn NaN.
LOG_PROB_FLOOR = -1.0e4
# Largest log-mass the top-k may claim, so the tail log(1 - mass) stays finite (as in SDPO).
MAX_TOPK_LOG_MASS = -1.0e-7


def add_tail_bucket(topk_logprobs: torch.Tensor) -> torch.Tensor:
    """[..., k] log-probs of k tokens -> [..., k + 1] with log(1 - sum exp) appended.

    For when only the top-k values exist. The tail is log(-expm1(logsumexp)), exact given the top-k
    mass, but that mass carries float32 rounding, so a true tail below ~1e-5 comes out off by up to a
    few nats (the released code shares this); the top-k mass is clamped just below 1 so the tail is at
    least ~1e-7 and finite even when the top-k covers (numerically) everything. With the full
    distribution at hand use `gather_with_exact_tail`. Entries below LOG_PROB_FLOOR come back floored.
    """
    topk_logprobs = topk_logprobs.clamp(min=LOG_PROB_FLOOR)
    log_mass = torch.logsumexp(topk_logprobs, dim=-1, keepdim=True).clamp(max=MAX_TOPK_LOG_MASS)
    return torch.cat([topk_logprobs, torch.log(-torch.expm1(log_mass))], dim=-1)


class _OutsideLogSumExp(torch.autograd.Function):
    """log sum_{v not in ids} exp(x_v) over the last dim, floored at LOG_PROB_FLOOR.

    Autograd would keep the [..., V] masked copy for the backward pass; this keeps only the input (which
    log_softmax has already saved) and rebuilds the gradient softmax(x outside ids) from it.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        tail = torch.logsumexp(x.scatter(-1, ids, float("-inf")), dim=-1, keepdim=True)
        # An all -inf outside (e.g. masked vocabulary) gives -inf; the floor keeps the backward finite.
        tail = tail.clamp(min=LOG_PROB_FLOOR)
        ctx.save_for_backward(x, ids, tail)
        return tail

    @staticmethod
    def backward(ctx, grad_tail: torch.Tensor):
        x, ids, tail = ctx.saved_tensors
        weights = (x - tail).exp().scatter(-1, ids, 0.0)
        return weights * grad_tail, None


def gather_with_exact_tail(full_logprobs: torch.Tensor, support_ids: torch.Tensor) -> torch.Tensor:
    """[..., V] normalized log-probs and [..., k] distinct ids (k < V) -> [..., k + 1] with the exact log tail.

    The tail is logsumexp over the V - k entries outside the support; the log-probs are normalized, so this
    is logsumexp(non-top-k logits) - logsumexp(all logits). Unlike `add_tail_bucket`, which must form
    1 - sum(top-k p) and so loses the digits of a tail below float32's resolution, it is accurate for tails
    down to the smallest normal float. Use it wherever the full distribution is at hand; `add_tail_bucket`
    only where the top-k values alone exist (e.g. a server's top-k log-probs). Differentiable in
    `full_logprobs`; entries below LOG_PROB_FLOOR come back floored.
    """
    if support_ids.shape[-1] >= full_logprobs.shape[-1]:
        raise ValueError(
            f"the support ({support_ids.shape[-1]} ids) must leave a tail of the vocabulary "
            f"({full_logprobs.shape[-1]}); use the full-vocabulary JSD instead"
        )
    support = full_logprobs.gather(-1, support_ids).clamp(min=LOG_PROB_FLOOR)
    return torch.cat([support, _OutsideLogSumExp.apply(full_logprobs, support_ids)], dim=-1)


def renormalize(topk_logprobs: torch.Tensor) -> torch.Tensor:
    """[..., k] log-probs -> the same support renormalized to sum to one (entries floored first)."""
    topk_logprobs = topk_logprobs.clamp(min=LOG_PROB_FLOOR)
    return topk_logprobs - torch.logsumexp(topk_logprobs, dim=-1, keepdim=True)


def _kl(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """KL(a || b) over the last dim for floored log-probs."""
    return (log_a.exp() * (log_a - log_b)).sum(dim=-1)


def generalized_jsd(
    student_logprobs: torch.Tensor, teacher_logprobs: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Per-position generalized JSD between student p and teacher q, both [..., V] normalized log-probs.

    alpha = 0.5 is the symmetric JSD. The formula itself goes to 0 at both ends (m becomes p or q),
    its slope does not: JSD_a / a -> KL(q || p) as a -> 0 and JSD_a / (1 - a) -> KL(p || q) as a -> 1.
    So the endpoints return those KLs exactly: alpha = 0 is forward KL(q || p) (mode covering),
    alpha = 1 is reverse KL(p || q) (mode seeking). Returns [...].
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if student_logprobs.shape != teacher_logprobs.shape:
        raise ValueError(
            f"student {tuple(student_logprobs.shape)} and teacher {tuple(teacher_logprobs.shape)} log-probs "
            "must have the same shape"
        )
    dtype = torch.promote_types(student_logprobs.dtype, teacher_logprobs.dtype)
    p = student_logprobs.to(dtype).clamp(min=LOG_PROB_FLOOR)
    q = teacher_logprobs.to(dtype).clamp(min=LOG_PROB_FLOOR)
    if alpha == 0.0:
        return _kl(q, p)
    if alpha == 1.0:
        return _kl(p, q)
    log_m = torch.logsumexp(torch.stack([p + math.log1p(-alpha), q + math.log(alpha)]), dim=0)
    return alpha * _kl(q, log_m) + (1.0 - alpha) * _kl(p, log_m)


def _closed_support(
    full: torch.Tensor | None,
    support: torch.Tensor | None,
    support_ids: torch.Tensor | None,
    side: str,
    add_tail: bool,
) -> torch.Tensor:
    """One side's [..., k + 1] (tail) or [..., k] (renormalized) distribution on the support."""
    if (full is None) == (support is None):
        raise ValueError(f"give exactly one of {side}_full_logprobs and {side}_support_logprobs")
    if support is None:
        if support_ids is None:
            raise ValueError(f"support_ids is required to gather {side}_full_logprobs")
        if full.shape[:-1] != support_ids.shape[:-1]:
            raise ValueError(
                f"{side}_full_logprobs {tuple(full.shape)} and support_ids {tuple(support_ids.shape)} differ in "
                "their leading dims"
            )
        if add_tail and support_ids.shape[-1] < full.shape[-1]:
            return gather_with_exact_tail(full, support_ids)
        support = full.gather(-1, support_ids)
    return add_tail_bucket(support) if add_tail else renormalize(support)


def topk_tail_jsd(
    student_full_logprobs: torch.Tensor | None = None,
    teacher_full_logprobs: torch.Tensor | None = None,
    *,
    support_ids: torch.Tensor | None = None,
    student_support_logprobs: torch.Tensor | None = None,
    teacher_support_logprobs: torch.Tensor | None = None,
    alpha: float,
    add_tail: bool = True,
) -> torch.Tensor:
    """Per-position generalized JSD restricted to a shared support of k token ids.

    Each side is given either as full-vocabulary log-probs [..., V] (gathered here at `support_ids`
    [..., k], distinct ids) or already gathered [..., k] (e.g. a teacher server's top-k). With add_tail
    the remaining mass becomes a (k+1)-th bucket: exact (`gather_with_exact_tail`) for a side given in
    full, 1 - sum(p) (`add_tail_bucket`, float32-limited for tails below ~1e-5) for a side given only
    on the support or when k = V; without add_tail the k entries are renormalized. Returns [...].
    """
    student = _closed_support(
        student_full_logprobs, student_support_logprobs, support_ids, "student", add_tail
    )
    teacher = _closed_support(
        teacher_full_logprobs, teacher_support_logprobs, support_ids, "teacher", add_tail
    )
    if student.shape != teacher.shape:
        raise ValueError(
            f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} support log-probs "
            "differ in shape"
        )
    return generalized_jsd(student, teacher, alpha)
