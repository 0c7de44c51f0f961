"""Losses as pure functions on tensors. Each has unit tests against hand-computed values."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def prm_loss(logits: torch.Tensor, labels: torch.Tensor, positive_id: int, negative_id: int) -> torch.Tensor:
    """Cross-entropy of the step labels, read exactly where the scorer reads them.

    logits: [batch, seq, vocab]; labels: [batch, seq] holding positive_id or negative_id at
    each step's SEP position and IGNORE_INDEX elsewhere. No shift: the label at position t
    is predicted by logits[t], the logits *at* the SEP token, which is what the scorers read
    (P(correct) = softmax over {Positive, Negative} at SEP). The softmax is over those two
    tokens only, so training optimizes exactly the score the search uses.
    """
    mask = labels != IGNORE_INDEX
    if not mask.any():
        return logits.sum() * 0.0  # no labelled step in the batch: zero loss, graph intact
    pair = logits[mask][:, [positive_id, negative_id]].float()  # [n_steps, 2]
    target = (labels[mask] == negative_id).long()  # 0: Positive, 1: Negative
    bad = (labels[mask] != positive_id) & (labels[mask] != negative_id)
    if bad.any():
        raise ValueError(f"PRM labels must be the Positive ({positive_id}) or Negative ({negative_id}) id, got {labels[mask][bad][:5].tolist()}")
    return F.cross_entropy(pair, target)
