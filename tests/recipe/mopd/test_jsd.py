import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe.mopd.jsd import (
    add_tail_bucket,
    gather_with_exact_tail,
    generalized_jsd,
    renormalize,
    topk_tail_jsd,
)

ALPHAS = [0.0, 0.1, 0.5, 0.9, 1.0]


def random_logprobs(*shape, seed, scale=3.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(scale * torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1).to(dtype)


def np_kl(a, b):
    mask = a > 0
    return float(np.sum(a[mask] * (np.log(a[mask]) - np.log(b[mask]))))


def np_jsd(p, q, alpha):
    """The definition on explicit probability vectors, float64."""
    if alpha == 0.0:
        return np_kl(q, p)
    if alpha == 1.0:
        return np_kl(p, q)
    m = (1 - alpha) * p + alpha * q
    return alpha * np_kl(q, m) + (1 - alpha) * np_kl(p, m)


# ----------------------------------------------------------------------------------------------------------
# Tail bucket


def test_tail_bucket_holds_the_remaining_mass():
    topk = torch.log(torch.tensor([[0.5, 0.2], [0.05, 0.05]], dtype=torch.float64))
    out = add_tail_bucket(topk)
    assert out.shape == (2, 3)
    torch.testing.assert_close(
        out.exp(), torch.tensor([[0.5, 0.2, 0.3], [0.05, 0.05, 0.9]], dtype=torch.float64)
    )


def test_tail_bucket_is_accurate_for_tiny_tails():
    # 1 - (1 - 1e-6) loses most digits in float32 when done naively; expm1 does not.
    topk = torch.tensor([math.log1p(-1e-6)], dtype=torch.float32)
    assert add_tail_bucket(topk)[-1].item() == pytest.approx(math.log(1e-6), rel=1e-3)


@pytest.mark.parametrize("mass", [1.0, 1.0 + 1e-6])
def test_tail_bucket_is_finite_when_the_topk_holds_all_mass(mass):
    topk = torch.log(torch.tensor([0.6, 0.4 * mass], dtype=torch.float32))
    tail = add_tail_bucket(topk)[-1]
    assert torch.isfinite(tail) and tail.item() < math.log(1e-6)


def _peaked_logits(rows: int, vocab: int, k: int, top: float, seed: int) -> torch.Tensor:
    """Logits whose k largest entries sit `top` nats above the rest: tail mass ~ (V - k) e^-top."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, vocab, generator=g, dtype=torch.float64)
    logits[:, :k] += top + torch.linspace(0.0, 3.0, k, dtype=torch.float64)
    return logits


@pytest.mark.parametrize("top", [5.0, 20.0, 30.0])
def test_exact_tail_matches_the_float64_sum_outside_the_support(top):
    vocab, k = 64, 8
    logits = _peaked_logits(3, vocab, k, top, seed=4)
    ids = logits.topk(k, dim=-1).indices
    reference = torch.softmax(logits, -1).scatter(-1, ids, 0.0).sum(-1).log()
    got = gather_with_exact_tail(torch.log_softmax(logits.float(), -1), ids)
    assert got.shape == (3, k + 1)
    torch.testing.assert_close(got[:, -1].double(), reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(got[:, :k], torch.log_softmax(logits.float(), -1).gather(-1, ids))
    if top == 30.0:
        # The tail is ~1e-12: 1 - sum(top-k p) in float32 cannot see it.
        assert reference.max() < math.log(1e-11)
        naive = add_tail_bucket(torch.log_softmax(logits.float(), -1).gather(-1, ids))[:, -1]
        assert (naive.double() - reference).abs().min() > 2.0


def test_exact_tail_gradient_matches_autograd_of_the_masked_logsumexp():
    logits = torch.randn(4, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    ids = logits.topk(3, dim=-1).indices
    x = torch.log_softmax(logits, -1).requires_grad_()
    torch.autograd.gradcheck(lambda t: gather_with_exact_tail(t, ids), (x,))
    (ours,) = torch.autograd.grad(gather_with_exact_tail(x, ids)[:, -1].sum(), x)
    (plain,) = torch.autograd.grad(torch.logsumexp(x.scatter(-1, ids, -math.inf), -1).sum(), x)
    torch.testing.assert_close(ours, plain)


def test_exact_tail_is_floored_when_everything_outside_has_zero_probability():
    logits = torch.full((2, 6), -math.inf)
    logits[:, :2] = torch.tensor([1.0, 0.0])
    logits.requires_grad_()
    out = gather_with_exact_tail(torch.log_softmax(logits, -1), torch.tensor([[0, 1], [1, 0]]))
    assert torch.isfinite(out).all() and out[:, -1].max() <= -1.0e4 + 1
    (grad,) = torch.autograd.grad(out.sum(), logits)
    assert torch.isfinite(grad).all()
    with pytest.raises(ValueError, match="tail of the vocabulary"):
        gather_with_exact_tail(torch.zeros(1, 3), torch.tensor([[0, 1, 2]]))


def test_tail_bucket_keeps_leading_dims():
    assert add_tail_bucket(random_logprobs(2, 3, 50, seed=0)[..., :7]).shape == (2, 3, 8)


def test_renormalize_sums_to_one():
    out = renormalize(random_logprobs(4, 50, seed=1)[:, :5])
    torch.testing.assert_close(out.exp().sum(-1), torch.ones(4, dtype=torch.float64))


# ----------------------------------------------------------------------------------------------------------
# Generalized JSD on full distributions


@pytest.mark.parametrize("alpha", ALPHAS)
def test_generalized_jsd_matches_the_numpy_definition(alpha):
    p, q = random_logprobs(6, 40, seed=2), random_logprobs(6, 40, seed=3)
    got = generalized_jsd(p, q, alpha)
    assert got.shape == (6,)
    expected = [np_jsd(p[i].exp().numpy(), q[i].exp().numpy(), alpha) for i in range(6)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_endpoints_are_forward_and_reverse_kl_exactly():
    p, q = random_logprobs(5, 30, seed=4), random_logprobs(5, 30, seed=5)
    reverse = (p.exp() * (p - q)).sum(-1)
    forward = (q.exp() * (q - p)).sum(-1)
    assert torch.equal(generalized_jsd(p, q, 1.0), reverse)
    assert torch.equal(generalized_jsd(p, q, 0.0), forward)
    # The form TRL and SDPO use: F.kl_div(input, target) = KL(target || input).
    kl_div = torch.nn.functional.kl_div
    torch.testing.assert_close(
        generalized_jsd(p, q, 0.0), kl_div(p, q, reduction="none", log_target=True).sum(-1)
    )
    torch.testing.assert_close(
        generalized_jsd(p, q, 1.0), kl_div(q, p, reduction="none", log_target=True).sum(-1)
    )


def test_endpoints_are_the_normalized_limits_of_the_mixture_formula():
    """JSD_a / a -> KL(q||p) as a -> 0 and JSD_a / (1 - a) -> KL(p||q) as a -> 1 (the note's claim)."""
    p, q = random_logprobs(4, 20, seed=6, scale=1.0), random_logprobs(4, 20, seed=7, scale=1.0)
    eps = 1e-6
    torch.testing.assert_close(
        generalized_jsd(p, q, eps) / eps, generalized_jsd(p, q, 0.0), rtol=1e-4, atol=0
    )
    torch.testing.assert_close(
        generalized_jsd(p, q, 1 - eps) / eps, generalized_jsd(p, q, 1.0), rtol=1e-4, atol=0
    )


def test_generalized_jsd_gradient_matches_finite_differences():
    p = random_logprobs(3, 8, seed=8).requires_grad_()
    q = random_logprobs(3, 8, seed=9)
    for alpha in (0.0, 0.3, 1.0):
        assert torch.autograd.gradcheck(lambda x, a=alpha: generalized_jsd(x, q, a), (p,))


_LOGITS = st.integers(0, 2**31 - 1).map(lambda seed: random_logprobs(3, 12, seed=seed, scale=4.0))


@settings(max_examples=60, deadline=None)
# The endpoints are special-cased, so alpha within float rounding of 0 or 1 would break the mirror symmetry.
@given(p=_LOGITS, q=_LOGITS, alpha=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(1e-3, 1 - 1e-3)))
def test_generalized_jsd_properties(p, q, alpha):
    loss = generalized_jsd(p, q, alpha)
    assert torch.all(loss >= -1e-12)
    assert torch.allclose(generalized_jsd(p, p, alpha), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    # Swapping the roles of student and teacher mirrors alpha.
    torch.testing.assert_close(generalized_jsd(q, p, 1 - alpha), loss)
    half = generalized_jsd(p, q, 0.5)
    assert torch.all(half <= math.log(2) + 1e-12), "alpha = 0.5 is the classic JSD, bounded by log 2"


@pytest.mark.parametrize("alpha", [-0.1, 1.5, math.nan, True, "0.5"])
def test_alpha_is_validated(alpha):
    p = random_logprobs(2, 5, seed=10)
    with pytest.raises(ValueError, match="alpha"):
        generalized_jsd(p, p, alpha)


def test_shapes_must_match():
    with pytest.raises(ValueError, match="same shape"):
        generalized_jsd(random_logprobs(2, 5, seed=11), random_logprobs(2, 6, seed=12), 0.5)


def test_mixed_precision_inputs_are_promoted():
    p = random_logprobs(2, 16, seed=13, dtype=torch.float32)
    q = random_logprobs(2, 16, seed=14, dtype=torch.bfloat16)
    out = generalized_jsd(p, q, 0.5)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, generalized_jsd(p, q.float(), 0.5))


# ----------------------------------------------------------------------------------------------------------
# Top-k + tail


@pytest.mark.parametrize("alpha", ALPHAS)
def test_topk_with_k_equal_vocab_is_the_full_vocab_jsd(alpha):
    vocab = 64
    p = random_logprobs(2, 5, vocab, seed=15, dtype=torch.float32)
    q = random_logprobs(2, 5, vocab, seed=16, dtype=torch.float32)
    # Any order of the whole vocabulary, as a top-k with k = V would give.
    support = torch.argsort(torch.rand(2, 5, vocab, generator=torch.Generator().manual_seed(0)), dim=-1)
    got = topk_tail_jsd(p, q, support_ids=support, alpha=alpha)
    torch.testing.assert_close(got, generalized_jsd(p, q, alpha), atol=1e-5, rtol=0)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("support_from", ["student", "teacher", "random"])
@pytest.mark.parametrize("add_tail", [True, False])
def test_topk_matches_an_explicit_k_plus_one_way_distribution(alpha, support_from, add_tail):
    vocab, k = 50, 6
    p = random_logprobs(4, vocab, seed=17)
    q = random_logprobs(4, vocab, seed=18)
    if support_from == "random":
        support = torch.stack(
            [torch.randperm(vocab, generator=torch.Generator().manual_seed(i))[:k] for i in range(4)]
        )
    else:
        support = (p if support_from == "student" else q).topk(k, dim=-1).indices
    got = topk_tail_jsd(
        support_ids=support,
        student_support_logprobs=p.gather(-1, support),
        teacher_support_logprobs=q.gather(-1, support),
        alpha=alpha,
        add_tail=add_tail,
    )
    expected = []
    for i in range(4):
        ids = support[i].numpy()
        pk, qk = p[i].exp().numpy()[ids], q[i].exp().numpy()[ids]
        if add_tail:
            pk, qk = np.append(pk, 1 - pk.sum()), np.append(qk, 1 - qk.sum())
        else:
            pk, qk = pk / pk.sum(), qk / qk.sum()
        expected.append(np_jsd(pk, qk, alpha))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_full_and_pregathered_inputs_agree():
    p, q = random_logprobs(3, 40, seed=19), random_logprobs(3, 40, seed=20)
    support = p.topk(5, dim=-1).indices
    from_full = topk_tail_jsd(p, q, support_ids=support, alpha=0.5)
    mixed = topk_tail_jsd(p, support_ids=support, teacher_support_logprobs=q.gather(-1, support), alpha=0.5)
    gathered = topk_tail_jsd(
        student_support_logprobs=p.gather(-1, support),
        teacher_support_logprobs=q.gather(-1, support),
        alpha=0.5,
    )
    # A side given in full gets the exact tail, a pre-gathered one 1 - sum(p): equal up to float64 rounding.
    torch.testing.assert_close(from_full, mixed, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(from_full, gathered, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_alpha_one_is_reverse_kl_of_the_tailed_distributions(alpha):
    p, q = random_logprobs(3, 30, seed=21), random_logprobs(3, 30, seed=22)
    support = p.topk(4, dim=-1).indices
    pt, qt = add_tail_bucket(p.gather(-1, support)), add_tail_bucket(q.gather(-1, support))
    direct = {0.0: (qt.exp() * (qt - pt)).sum(-1), 1.0: (pt.exp() * (pt - qt)).sum(-1)}
    got = topk_tail_jsd(p, q, support_ids=support, alpha=alpha)
    if alpha in direct:
        torch.testing.assert_close(got, direct[alpha])
    else:
        assert torch.all(got < torch.maximum(direct[0.0], direct[1.0]))


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("k", [8, 16])
def test_gradients_stay_finite_when_the_topk_holds_all_mass(alpha, k):
    vocab = 16
    logits = torch.full((3, vocab), -200.0)
    logits[:, :8] = torch.linspace(0, 3, 8)
    logits.requires_grad_()
    student = torch.log_softmax(logits, dim=-1)
    teacher = torch.log_softmax(torch.randn(3, vocab, generator=torch.Generator().manual_seed(1)), dim=-1)
    support = student.topk(k, dim=-1).indices
    loss = topk_tail_jsd(student, teacher, support_ids=support, alpha=alpha)
    loss.sum().backward()
    assert torch.isfinite(loss).all()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("mass", [1.0, 1.0 + 1e-6])
def test_gradients_stay_finite_when_support_logprobs_sum_to_one_or_more(alpha, mass):
    # Rounding can make gathered top-k log-probs sum to exactly 1 or a hair above it.
    student = torch.log(torch.tensor([[0.5, 0.5 * mass], [0.25, 0.75 * mass]])).requires_grad_()
    teacher = torch.log(torch.tensor([[0.3, 0.3], [0.5, 0.5]]))
    loss = topk_tail_jsd(student_support_logprobs=student, teacher_support_logprobs=teacher, alpha=alpha)
    (grad,) = torch.autograd.grad(loss.sum(), student)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize("alpha", ALPHAS)
def test_zero_probability_entries_give_finite_losses_and_gradients(alpha):
    # A masked vocabulary entry (-inf logit) on either side, and a teacher giving a support token zero mass.
    logits = torch.randn(2, 10, generator=torch.Generator().manual_seed(2))
    logits[:, -1] = -math.inf
    logits.requires_grad_()
    teacher_logits = torch.randn(2, 10, generator=torch.Generator().manual_seed(3))
    teacher_logits[:, 0] = -math.inf
    teacher = torch.log_softmax(teacher_logits, dim=-1)
    support = torch.tensor([[0, 9, 3], [0, 1, 9]])
    for add_tail in (True, False):
        student = torch.log_softmax(logits, dim=-1)
        loss = topk_tail_jsd(student, teacher, support_ids=support, alpha=alpha, add_tail=add_tail)
        (grad,) = torch.autograd.grad(loss.sum(), logits)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    full = generalized_jsd(torch.log_softmax(logits, dim=-1), teacher, alpha)
    (grad,) = torch.autograd.grad(full.sum(), logits)
    assert torch.isfinite(full).all() and torch.isfinite(grad).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"teacher_support_logprobs": torch.zeros(2, 3)}, "exactly one of student"),
        ({"student_support_logprobs": torch.zeros(2, 3)}, "exactly one of teacher"),
        (
            {"student_full_logprobs": torch.zeros(2, 9), "student_support_logprobs": torch.zeros(2, 3)},
            "exactly one",
        ),
        (
            {"student_full_logprobs": torch.zeros(2, 9), "teacher_support_logprobs": torch.zeros(2, 3)},
            "support_ids",
        ),
        (
            {
                "student_full_logprobs": torch.zeros(2, 9),
                "teacher_full_logprobs": torch.zeros(2, 9),
                "support_ids": torch.zeros(3, 3, dtype=torch.long),
            },
            "leading dims",
        ),
        (
            {"student_support_logprobs": torch.zeros(2, 3), "teacher_support_logprobs": torch.zeros(2, 4)},
            "differ in shape",
        ),
    ],
)
def test_topk_argument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        topk_tail_jsd(alpha=0.5, **kwargs)
