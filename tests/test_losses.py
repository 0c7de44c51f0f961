"""The losses against hand-computed values and the KTO paper's formulas."""

import math

import pytest
import torch

from trainers.losses import IGNORE_INDEX, kto_loss, sequence_logps


def sig(x):
    return 1 / (1 + math.exp(-x))


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def test_kto_by_hand_both_groups():
    # r_chosen = -1 - (-2) = 1; r_rejected = -3 - (-1) = -2; z = mean(-1 - -1.5, -2 - -2.5) = 0.5
    losses, cr, rr, kl = kto_loss(t(-1.0), t(-3.0), t(-1.0, -2.0), t(-2.0), t(-1.0), t(-1.5, -2.5), beta=0.5,
                                  desirable_weight=1.0, undesirable_weight=2.0)
    assert kl.item() == pytest.approx(0.5)
    assert losses[0].item() == pytest.approx(1 - sig(0.5 * (1 - 0.5)))
    assert losses[1].item() == pytest.approx(2 * (1 - sig(0.5 * (0.5 - (-2)))))
    assert cr.item() == pytest.approx(0.5) and rr.item() == pytest.approx(-1.0)


def test_kto_undesirable_sign():
    """Lowering log pi of an undesirable completion must lower its loss (the notebook's sign error fails this)."""
    ref = t(-2.0)
    z_p, z_r = t(-1.0), t(-1.0)
    high = kto_loss(t(), t(-1.0), z_p, t(), ref, z_r)[0]
    low = kto_loss(t(), t(-5.0), z_p, t(), ref, z_r)[0]
    assert low.item() < high.item()
    # and the gradient pushes an undesirable log-prob down, a desirable one up
    bad, good = torch.tensor([-1.0], requires_grad=True), torch.tensor([-1.0], requires_grad=True)
    kto_loss(good, bad, t(-1.0).float(), t(-2.0).float(), t(-2.0).float(), t(-1.0).float())[0].sum().backward()
    assert bad.grad.item() > 0 and good.grad.item() < 0  # gradient descent lowers bad, raises good


def test_kto_clamp_and_empty_groups():
    # mismatched pairs where the policy is *less* likely than the reference: KL estimate < 0, clamped to 0
    losses, cr, rr, kl = kto_loss(t(0.0), t(), t(-5.0), t(0.0), t(), t(-1.0), beta=1.0)
    assert kl.item() == 0.0 and losses.shape == (1,) and rr.numel() == 0
    assert losses[0].item() == pytest.approx(0.5)  # 1 - sigmoid(0)
    losses, *_ = kto_loss(t(), t(-1.0), t(), t(), t(-1.0), t())  # no chosen, no KL pairs: z = 0
    assert losses.shape == (1,) and losses[0].item() == pytest.approx(0.5)


def test_kto_reference_point_is_detached():
    kl_policy = torch.tensor([0.0, 2.0], requires_grad=True)
    chosen = torch.tensor([-1.0], requires_grad=True)
    losses, _, _, kl = kto_loss(chosen, t(-1.0).float(), kl_policy, t(-1.0).float(), t(-1.0).float(), t(0.0, 0.0).float())
    assert kl.item() == pytest.approx(1.0) and not kl.requires_grad
    losses.sum().backward()
    assert chosen.grad is not None and kl_policy.grad is None  # no gradient flows through z_ref


def test_sequence_logps_by_hand():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3]]]))
    labels = torch.tensor([[IGNORE_INDEX, 1, 2, IGNORE_INDEX]])  # response = tokens at positions 1 and 2
    # token 1 predicted from logits[0] (p=0.25), token 2 from logits[1] (p=0.3)
    assert sequence_logps(logits, labels).item() == pytest.approx(math.log(0.25) + math.log(0.3), rel=1e-5)
    assert sequence_logps(logits, labels, length_normalized=True).item() == pytest.approx((math.log(0.25) + math.log(0.3)) / 2, rel=1e-5)
