"""The symmetric multi-positive contrastive loss."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from training.loss import contrastive_loss, positive_mask


def test_single_positive_equals_clip_cross_entropy():
    torch.manual_seed(0)
    a, t = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(10.0)
    keys = torch.arange(5)
    logits = scale * a @ t.T
    expected = (F.cross_entropy(logits, keys) + F.cross_entropy(logits.T, keys)) / 2
    assert contrastive_loss(a, t, scale, keys, keys + 100).item() == pytest.approx(expected.item(), rel=1e-6)


def test_hand_computed_two_pairs_of_the_same_audio():
    # two pairs share audio 7 (different captions): each row has both columns as positives, targets 1/2 each
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scale = torch.tensor(1.0)
    loss = contrastive_loss(a, t, scale, torch.tensor([7, 7]), torch.tensor([1, 2]))
    # a2t row logits [1, 0] for both rows: -(0.5 log p1 + 0.5 log p2), p = softmax([1, 0])
    lse = math.log(math.e + 1)
    a2t = -(0.5 * (1 - lse) + 0.5 * (0 - lse))
    # t2a: caption 0 column logits [1, 1] -> log 1/2; caption 1 column [0, 0] -> log 1/2
    t2a = -math.log(0.5)
    assert loss.item() == pytest.approx((a2t + t2a) / 2, rel=1e-6)


def test_duplicates_are_not_punished():
    # pairs 0 and 1 hold the same audio (two captions). Configuration "apart": each crop matches only its own
    # caption; "together": both crops and both captions share one direction. Single-positive targets prefer
    # "apart" (they treat the other correct caption as a negative); multi-positive targets prefer "together",
    # which sits at the loss's floor (the entropy of the 50/50 targets of rows 0 and 1).
    e = torch.eye(3)
    apart = (e, e)
    together = (torch.stack([e[0], e[0], e[2]]), torch.stack([e[0], e[0], e[2]]))
    scale = torch.tensor(50.0)

    def loss(features, audio_keys, caption_keys=(0, 1, 2)):
        return contrastive_loss(*features, scale, torch.tensor(audio_keys), torch.tensor(caption_keys)).item()

    assert loss(apart, [0, 1, 2]) < loss(together, [0, 1, 2])  # single-positive: punished for matching
    assert loss(together, [7, 7, 8]) < loss(apart, [7, 7, 8])  # multi-positive: rewarded
    assert loss(together, [7, 7, 8]) == pytest.approx(math.log(2) * 2 / 3, abs=1e-6)
    # the same caption text under two different audios counts as a positive as well
    assert loss(together, [0, 1, 2], [5, 5, 6]) == pytest.approx(math.log(2) * 2 / 3, abs=1e-6)


def test_positive_mask_is_symmetric_and_by_id():
    m = positive_mask(torch.tensor([0, 0, 1, 2]), torch.tensor([9, 8, 8, 7]))
    assert torch.equal(m, m.T)
    assert m.tolist() == [[True, True, False, False], [True, True, True, False],
                          [False, True, True, False], [False, False, False, True]]


def test_gradients_flow_to_both_towers_and_scale():
    a = torch.randn(4, 6, requires_grad=True)
    t = torch.randn(4, 6, requires_grad=True)
    s = torch.tensor(5.0, requires_grad=True)
    contrastive_loss(F.normalize(a, dim=-1), F.normalize(t, dim=-1), s, torch.arange(4), torch.arange(4)).backward()
    assert a.grad.abs().sum() > 0 and t.grad.abs().sum() > 0 and s.grad.abs() > 0


def test_shape_errors():
    with pytest.raises(ValueError, match="must both be"):
        contrastive_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.tensor(1.0), torch.arange(2), torch.arange(2))
    with pytest.raises(ValueError, match="one audio key"):
        contrastive_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor(1.0), torch.arange(3), torch.arange(2))
