"""Losses as pure functions on tensors. Each has unit tests against hand-computed values."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def prm_loss(logits: torch.Tensor, labels: torch.Tensor, positive_id: int, negative_id: int, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the step labels, read exactly where the scorer reads them.

    logits: [batch, seq, vocab]; labels: [batch, seq] holding positive_id or negative_id at
    each step's SEP position and IGNORE_INDEX elsewhere. No shift: the label at position t
    is predicted by logits[t], the logits *at* the SEP token, which is what the scorers read
    (P(correct) = softmax over {Positive, Negative} at SEP). The softmax is over those two
    tokens only, so training optimizes exactly the score the search uses. reduction: "mean"
    over the labelled steps, or "sum" (the trainer divides by the steps of the whole
    accumulated batch).
    """
    mask = labels != IGNORE_INDEX
    if not mask.any():
        return logits.sum() * 0.0  # no labelled step in the batch: zero loss, graph intact
    pair = logits[mask][:, [positive_id, negative_id]].float()  # [n_steps, 2]
    target = (labels[mask] == negative_id).long()  # 0: Positive, 1: Negative
    bad = (labels[mask] != positive_id) & (labels[mask] != negative_id)
    if bad.any():
        raise ValueError(f"PRM labels must be the Positive ({positive_id}) or Negative ({negative_id}) id, got {labels[mask][bad][:5].tolist()}")
    return F.cross_entropy(pair, target, reduction=reduction)


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, length_normalized: bool = False) -> torch.Tensor:
    """log p(response | prompt) per sequence: the sum of the response tokens' log-probabilities.

    logits: [batch, seq, vocab]; labels: [batch, seq], aligned with the inputs, IGNORE_INDEX
    on the prompt and padding. The shift happens here, once: logits[t] predicts labels[t + 1].
    length_normalized divides by the number of response tokens (the per-token variant).
    """
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE_INDEX
    token_logps = torch.gather(logits.log_softmax(-1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = (token_logps * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if length_normalized else total


def kto_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    policy_kl_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    reference_kl_logps: torch.Tensor,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    reference_point: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """KTO (Ethayarajh et al., 2024, eq. 8), on per-sequence log-probabilities of shape [batch].

    r(x, y) = log pi(y|x) - log pi_ref(y|x) is the implied reward. The reference point z_ref
    estimates KL(pi || pi_ref) from *mismatched* pairs (a completion under another
    prompt of the batch: the *_kl_logps), averaged, clamped at 0 and detached: no gradient
    flows through it. Then
        desirable y:   loss = lambda_D * (1 - sigmoid(beta * (r - z_ref)))
        undesirable y: loss = lambda_U * (1 - sigmoid(beta * (z_ref - r)))
    so lowering r of an undesirable completion lowers its loss. (A widely copied course
    notebook writes the undesirable term as 1 - sigmoid(beta * (r - z_ref)), which rewards
    *raising* bad completions; that is the sign error this function does not make.)
    reference_point, if given, is z_ref already computed (e.g. over every rank's pairs, as the
    trainer does under DDP; see kto_reference_point). Either group may be empty. Returns (losses [n_chosen + n_rejected], chosen_rewards,
    rejected_rewards, kl), with rewards = beta * r, detached.
    """
    if reference_point is None:
        reference_point = kto_reference_point(policy_kl_logps, reference_kl_logps)
    kl = reference_point.detach()
    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    chosen_losses = desirable_weight * (1 - torch.sigmoid(beta * (chosen_logratios - kl)))
    rejected_losses = undesirable_weight * (1 - torch.sigmoid(beta * (kl - rejected_logratios)))
    losses = torch.cat([chosen_losses, rejected_losses], 0)
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach(), kl


def kto_reference_point(policy_kl_logps: torch.Tensor, reference_kl_logps: torch.Tensor, world: "torch.distributed.ProcessGroup | None" = None) -> torch.Tensor:
    """KTO's z_ref: the mean log-ratio of the mismatched pairs, clamped at 0, detached.

    Under torch.distributed the mean is over the pairs of every rank (an all-reduce of the sum
    and the count), as TRL does, so all ranks share one reference point."""
    logratios = (policy_kl_logps - reference_kl_logps).detach().float()
    total = torch.stack([logratios.sum(), torch.tensor(float(logratios.numel()), device=logratios.device)])
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(total, group=world)
    return (total[0] / total[1].clamp(min=1)).clamp(min=0)
