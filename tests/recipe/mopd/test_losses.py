"""Unit tests of the MOPD losses' own logic: the per-sample mask weighting, the top-k + tail JSD computed
from student logits, and the routing of verl's top-k kernel."""

import math

import pytest
import torch
import verl.trainer.distillation.fsdp.losses as fsdp_losses

from recipe.mopd import losses
from recipe.mopd.jsd import generalized_jsd


def test_sample_weights_exclude_masked_samples_from_the_token_mean():
    response_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    sample_mask = torch.tensor([1.0, 0.0, 1.0])
    per_token = torch.tensor([[1.0, 2.0, 3.0, 9.0], [100.0, 100.0, 9.0, 9.0], [4.0, 5.0, 6.0, 7.0]])
    weights = losses.sample_weights(sample_mask, response_mask)
    weighted_mean = (per_token * weights.unsqueeze(-1) * response_mask).sum() / response_mask.sum()
    kept = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    assert weighted_mean.item() == pytest.approx(kept.mean().item())
    assert weights[1] == 0


def test_sample_weights_all_masked_gives_zero_not_nan():
    weights = losses.sample_weights(torch.zeros(2), torch.ones(2, 3))
    assert torch.equal(weights, torch.zeros(2))


def _independent_topk_tail_jsd(student_logits, teacher_full_logprobs, k, alpha):
    """Straight from the definition with float64 and explicit (k+1)-way distributions."""
    student = torch.log_softmax(student_logits.double(), -1)
    teacher = teacher_full_logprobs.double()
    ids = torch.topk(teacher, k, dim=-1).indices
    p = student.gather(-1, ids).exp()
    q = teacher.gather(-1, ids).exp()
    p = torch.cat([p, 1 - p.sum(-1, keepdim=True)], -1)
    q = torch.cat([q, 1 - q.sum(-1, keepdim=True)], -1)
    m = (1 - alpha) * p + alpha * q
    kl = lambda a, b: (a * (a.log() - b.log())).sum(-1)
    return alpha * kl(q, m) + (1 - alpha) * kl(p, m), ids


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.75])
def test_topk_tail_jsd_from_logits_matches_the_definition(alpha):
    torch.manual_seed(0)
    student_logits = torch.randn(1, 7, 50)
    teacher = torch.log_softmax(torch.randn(1, 7, 50) * 2, -1)
    expected, ids = _independent_topk_tail_jsd(student_logits, teacher, 8, alpha)
    out = losses.topk_tail_jsd_from_logits(student_logits, teacher.gather(-1, ids), ids, alpha)
    torch.testing.assert_close(out["distillation_losses"].double(), expected, atol=1e-5, rtol=1e-4)
    assert out["distillation_losses"].shape == (1, 7)
    torch.testing.assert_close(out["teacher_mass"], teacher.gather(-1, ids).exp().sum(-1))


def test_topk_tail_jsd_is_zero_for_identical_distributions_and_bounded():
    logits = torch.randn(1, 5, 40)
    teacher = torch.log_softmax(logits, -1)
    ids = torch.topk(teacher, 6, -1).indices
    same = losses.topk_tail_jsd_from_logits(logits, teacher.gather(-1, ids), ids, 0.5)["distillation_losses"]
    assert same.abs().max() < 1e-6
    far = losses.topk_tail_jsd_from_logits(-logits * 10, teacher.gather(-1, ids), ids, 0.5)[
        "distillation_losses"
    ]
    assert (far > 0).all() and (far <= math.log(2) + 1e-6).all()


def test_topk_tail_jsd_gradient_flows_to_student_logits():
    logits = torch.randn(1, 3, 20, requires_grad=True)
    teacher = torch.log_softmax(torch.randn(1, 3, 20), -1)
    ids = torch.topk(teacher, 4, -1).indices
    losses.topk_tail_jsd_from_logits(logits, teacher.gather(-1, ids), ids, 0.5)[
        "distillation_losses"
    ].sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


class _LossConfig:
    def __init__(self, loss_mode):
        self.distillation_loss = type("L", (), {"loss_mode": loss_mode})()


def test_verl_topk_kernel_routes_mopd_jsd_and_leaves_other_modes_to_verl(monkeypatch):
    assert getattr(fsdp_losses.compute_forward_kl_topk, "__mopd_dispatch__", False)
    torch.manual_seed(1)
    student_logits = torch.randn(1, 6, 30)
    teacher = torch.log_softmax(torch.randn(6, 30), -1)
    ids = torch.topk(teacher, 5, -1).indices
    rows = teacher.gather(-1, ids)
    nested_values = torch.nested.nested_tensor([rows[:4], rows[4:]], layout=torch.jagged)
    nested_ids = torch.nested.nested_tensor([ids[:4], ids[4:]], layout=torch.jagged)
    monkeypatch.setenv(losses.JSD_ALPHA_ENV, "0.5")
    routed = fsdp_losses.compute_forward_kl_topk(
        student_logits, nested_values, nested_ids, _LossConfig("mopd_jsd"), "thd"
    )
    direct = losses.topk_tail_jsd_from_logits(student_logits, teacher.gather(-1, ids)[None], ids[None], 0.5)
    torch.testing.assert_close(routed["distillation_losses"], direct["distillation_losses"])
    student = torch.log_softmax(student_logits, -1).gather(-1, ids[None])
    expected = generalized_jsd(
        torch.cat([student, torch.log1p(-student.exp().sum(-1, keepdim=True))], -1),
        torch.cat(
            [
                teacher.gather(-1, ids)[None],
                torch.log1p(-teacher.gather(-1, ids).exp().sum(-1, keepdim=True))[None],
            ],
            -1,
        ),
        0.5,
    )
    torch.testing.assert_close(routed["distillation_losses"], expected, atol=1e-5, rtol=1e-4)

    verl_kernel = fsdp_losses.compute_forward_kl_topk.__wrapped__
    config = _LossConfig("forward_kl_topk")
    config.distillation_loss.log_prob_min_clamp = None
    by_dispatch = fsdp_losses.compute_forward_kl_topk(
        student_logits, nested_values, nested_ids, config, "thd"
    )
    by_verl = verl_kernel(student_logits, nested_values, nested_ids, config, "thd")
    torch.testing.assert_close(by_dispatch["distillation_losses"], by_verl["distillation_losses"])
    assert not torch.allclose(by_dispatch["distillation_losses"], routed["distillation_losses"])


def test_jsd_alpha_outside_unit_interval_is_rejected(monkeypatch):
    monkeypatch.setenv(losses.JSD_ALPHA_ENV, "1.5")
    with pytest.raises(ValueError, match="jsd_alpha"):
        losses.jsd_alpha()
