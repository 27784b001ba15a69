"""Contrastive losses: CLAP's symmetric cross-entropy (paper eq. 3) and the soft-label
KL loss (eq. 5-8).

`logits` is always the student's (N, N) matrix `logits[i, j] = a_i . t_j / tau` for a batch of
N aligned pairs: row i scores clip i against every caption (audio->text), column j scores
caption j against every clip (text->audio). Everything is computed in float32, so bf16 logits
give the same, finite loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SOFT_TARGETS = ("paper", "normalized", "softmax")


def _kl_rows(target: Tensor, logits: Tensor) -> Tensor:
    """(1/N) sum_i KL(target_i || softmax(logits_i)) = (1/N) sum_ij y_ij (log y_ij - log p_ij).

    Entries with y_ij <= 0 contribute 0: the usual 0 log 0 = 0, and for `paper` targets the
    negative entries that old PyTorch's KLDivLoss silently zeroed. The target carries no
    gradient, so the masked branch never leaks NaN into the backward pass.
    """
    log_p = torch.log_softmax(logits, dim=1)
    positive = target > 0
    log_y = torch.log(torch.where(positive, target, torch.ones_like(target)))
    terms = torch.where(positive, target * (log_y - log_p), torch.zeros_like(log_p))
    return terms.sum() / logits.shape[0]


def clap_loss(logits_per_audio: Tensor) -> Tensor:
    """Eq. 3: L = 1/2 [ CE_rows + CE_cols ], CE = -(1/N) sum_i log softmax(row_i)[i].

    Computed as KL against a one-hot target (its entropy is 0, so KL = CE), which makes
    `soft_clap_loss(..., beta=0)` equal to this bit for bit.
    """
    logits = logits_per_audio.float()
    onehot = torch.eye(logits.shape[0], device=logits.device)
    return 0.5 * (_kl_rows(onehot, logits) + _kl_rows(onehot, logits.T))


def _similarity(emb: Tensor) -> Tensor:
    """Cosine similarity matrix S = e e^T of L2-normalised, detached teacher embeddings."""
    e = F.normalize(emb.detach().float(), dim=1)
    return e @ e.T


def _soft_rows(sim: Tensor, soft_target: str, teacher_temperature: float) -> Tensor:
    """S' for the chosen mode (see `soft_clap_loss`)."""
    if soft_target == "paper":
        return sim
    if soft_target == "normalized":
        clamped = sim.clamp_min(0.0)
        sums = clamped.sum(dim=1, keepdim=True)
        onehot = torch.eye(sim.shape[0], device=sim.device)
        # A zero row (a zero teacher vector) has nothing to spread: fall back to the hard label.
        return torch.where(sums > 0, clamped / sums.clamp_min(1e-12), onehot)
    return torch.softmax(sim / teacher_temperature, dim=1)


def soft_targets(
    teacher_audio: Tensor,
    teacher_text: Tensor,
    beta: float,
    soft_target: str = "paper",
    teacher_temperature: float = 0.07,
) -> tuple[Tensor, Tensor]:
    """Eq. 5-7: the (N, N) targets (y_a->t, y_t->a) from the teacher's embeddings of a batch.

    S_a = a~ a~^T and S_t = t~ t~^T (eq. 5) from the (N, d) teacher embeddings, L2-normalised
    here and detached; y_a->t(i) = (1-beta) onehot_i + beta S'_a(i) and y_t->a(i) =
    (1-beta) onehot_i + beta S'_t(i), S' chosen by `soft_target`:
      paper      raw cosine rows, as the authors' code; target entries <= 0 contribute 0 (what
                 old PyTorch's KLDivLoss did) and rows need not sum to 1: a row sum s scales
                 that row's KL gradient by about s.
      normalized cosine clamped at 0, rows renormalised to sum 1 (a zero row -> one-hot).
      softmax    row softmax of S / teacher_temperature.
    """
    if soft_target not in SOFT_TARGETS:
        raise ValueError(
            f"soft_target must be one of {', '.join(SOFT_TARGETS)}; got {soft_target!r}"
        )
    onehot = torch.eye(teacher_audio.shape[0], device=teacher_audio.device)
    soft_a = _soft_rows(_similarity(teacher_audio), soft_target, teacher_temperature)
    soft_t = _soft_rows(_similarity(teacher_text), soft_target, teacher_temperature)
    return (1.0 - beta) * onehot + beta * soft_a, (1.0 - beta) * onehot + beta * soft_t


def target_stats(target: Tensor) -> dict[str, float]:
    """How soft a target matrix is, over the entries the loss uses (those > 0): the mean
    share of each row's mass off the diagonal, and the mean row sum (1 for distributions)."""
    mass = target.clamp_min(0.0)
    rows = mass.sum(dim=1)
    off = (rows - mass.diagonal()) / rows.clamp_min(1e-12)
    return {"off_diagonal": off.mean().item(), "row_sum": rows.mean().item()}


def soft_clap_loss(
    logits_per_audio: Tensor,
    teacher_audio: Tensor,
    teacher_text: Tensor,
    beta: float,
    soft_target: str = "paper",
    teacher_temperature: float = 0.07,
) -> Tensor:
    """Eq. 8: the CLAP loss against the soft targets of `soft_targets` (eq. 5-7):
    1/2 [ (1/N) sum_i KL(y_a->t(i) || softmax(logits[i, :]))
        + (1/N) sum_i KL(y_t->a(i) || softmax(logits[:, i])) ].
    Row i of the logits scores clip i against every caption (audio->text), so it takes the
    audio targets; column i takes the text targets. With beta = 0 every mode equals
    `clap_loss` exactly.
    """
    logits = logits_per_audio.float()
    target_a2t, target_t2a = soft_targets(
        teacher_audio.to(logits.device),
        teacher_text.to(logits.device),
        beta,
        soft_target,
        teacher_temperature,
    )
    return 0.5 * (_kl_rows(target_a2t, logits) + _kl_rows(target_t2a, logits.T))
