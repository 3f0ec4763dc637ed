"""The ordinal loss (train.loss: ce+ordinal): cross-entropy plus the expected score's squared error."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from model.labels import SCORES_10
from model.losses import OrdinalCrossEntropy, make_loss


def test_ordinal_term_is_the_squared_error_of_the_expected_score():
    logits = torch.tensor([[0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0]])
    target = torch.tensor([9])
    p = F.softmax(logits, -1)[0]
    expected = float((p * torch.arange(1, 11)).sum()) / 10
    loss = OrdinalCrossEntropy(SCORES_10, weight=2.0)(logits, target)
    torch.testing.assert_close(loss, F.cross_entropy(logits, target) + 2.0 * torch.tensor((expected - 1.0) ** 2))


def test_a_near_miss_costs_less_than_a_far_miss_under_the_ordinal_loss_only():
    near, far = torch.full((1, 10), -5.0), torch.full((1, 10), -5.0)
    near[0, 8], far[0, 1] = 5.0, 5.0  # predicts 9 / predicts 2, truth 10
    target = torch.tensor([9])
    ce = make_loss("ce", SCORES_10, 1.0, None, 0.0)
    ordinal = make_loss("ce+ordinal", SCORES_10, 1.0, None, 0.0)
    torch.testing.assert_close(ce(near, target), ce(far, target))
    assert ordinal(near, target) < ordinal(far, target)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="loss must be one of ce, ce\\+ordinal"):
        make_loss("mse", SCORES_10, 1.0, None, 0.0)
