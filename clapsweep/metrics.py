"""Evaluation metrics: zero-shot classification accuracy and audio-text retrieval recall.

Similarities are cosines (both sides L2-normalised, float32) and are computed a block of rows
at a time (`chunk_size`), so 100k x 100k never holds the full matrix. Ranking ties go to the
lower index, so every result is deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK_SIZE = 4096


def prompt_for(label: str) -> str:
    """The zero-shot prompt: "this is a sound of " + label, with '_' and '/' as spaces."""
    words = re.sub(r"\s+", " ", re.sub(r"[_/]", " ", label)).strip()
    return f"this is a sound of {words}"


def _unit(emb: Tensor) -> Tensor:
    return F.normalize(emb.detach().float(), dim=1)


def _row_chunks(n: int, chunk_size: int) -> Iterator[slice]:
    for start in range(0, n, chunk_size):
        yield slice(start, min(start + chunk_size, n))


def _natural_key(text: str) -> list[str | int]:
    """Sort key that orders "2" before "10" and "fold2" before "fold10"."""
    # re.split with a group alternates text and digit runs, so the types line up by position.
    return [int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", text))]


def zero_shot_accuracy(
    audio_emb: Tensor,
    class_emb: Tensor,
    targets: Tensor,
    folds: Sequence[str] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> dict:
    """Predict argmax_c cos(audio_i, class_c); return accuracy overall and per fold.

    Returns {"accuracy": float, "n": N, "per_fold": {fold: accuracy} in natural fold order
    ({} without folds), "predictions": [class index per clip]}.
    """
    n = audio_emb.shape[0]
    if n == 0 or targets.shape[0] != n or (folds is not None and len(folds) != n):
        raise ValueError(
            f"zero_shot_accuracy needs N > 0 clips with one target (and fold) each; got "
            f"{n} clips, {targets.shape[0]} targets, {None if folds is None else len(folds)} folds"
        )
    audio, classes = _unit(audio_emb), _unit(class_emb)
    # torch.argmax returns the first maximum, so ties go to the lowest class index.
    predictions = torch.cat(
        [(audio[rows] @ classes.T).argmax(dim=1).cpu() for rows in _row_chunks(n, chunk_size)]
    )
    correct = predictions == targets.cpu()
    per_fold = {}
    if folds is not None:
        for fold in sorted(set(folds), key=_natural_key):
            mask = torch.tensor([f == fold for f in folds])
            per_fold[fold] = correct[mask].float().mean().item()
    return {
        "accuracy": correct.float().mean().item(),
        "n": n,
        "per_fold": per_fold,
        "predictions": predictions.tolist(),
    }


def _rank_of(scores: Tensor, index: Tensor) -> Tensor:
    """0-based rank of candidate `index[r]` in each row of `scores` (descending, ties -> lower
    index first): the count of candidates scoring higher, plus tied ones with a lower index."""
    own = scores.gather(1, index[:, None])
    positions = torch.arange(scores.shape[1], device=scores.device)
    ahead = (scores > own) | ((scores == own) & (positions[None, :] < index[:, None]))
    return ahead.sum(dim=1)


def retrieval_recall(
    audio_emb: Tensor,
    text_emb: Tensor,
    text_to_audio: Tensor,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = CHUNK_SIZE,
) -> dict[str, float]:
    """Recall@k both ways; caption j describes clip text_to_audio[j].

    t2a_R@k: share of captions whose clip is among the k audio nearest to the caption.
    a2t_R@k: share of clips (those with at least one caption) with ANY of their captions among
    the k texts nearest to the clip, i.e. the best-ranked own caption is within the top k.
    A k above the number of candidates counts every candidate (always a hit).
    """
    n_audio, n_text = audio_emb.shape[0], text_emb.shape[0]
    owner = text_to_audio.long().to(audio_emb.device)
    if n_audio == 0 or n_text == 0 or owner.shape[0] != n_text:
        raise ValueError(
            f"retrieval_recall needs clips, captions and one clip index per caption; got "
            f"{n_audio} clips, {n_text} captions, {owner.shape[0]} clip indices"
        )
    if owner.min() < 0 or owner.max() >= n_audio:
        raise ValueError(f"retrieval_recall: text_to_audio must lie in [0, {n_audio - 1}]")
    audio, text = _unit(audio_emb), _unit(text_emb.to(audio_emb.device))

    t2a_rank = torch.cat(
        [
            _rank_of(text[rows] @ audio.T, owner[rows]).cpu()
            for rows in _row_chunks(n_text, chunk_size)
        ]
    )
    a2t_rank = []
    for rows in _row_chunks(n_audio, chunk_size):
        scores = audio[rows] @ text.T
        clip_ids = torch.arange(rows.start, rows.stop, device=scores.device)
        mine = owner[None, :] == clip_ids[:, None]
        # The clip's best-ranked caption is its highest-scoring one (argmax: lowest index on ties).
        best = scores.masked_fill(~mine, float("-inf")).argmax(dim=1)
        a2t_rank.append(_rank_of(scores, best)[mine.any(dim=1)].cpu())
    a2t = torch.cat(a2t_rank)

    result = {}
    for k in ks:
        result[f"t2a_R@{k}"] = (t2a_rank < k).float().mean().item()
    for k in ks:
        result[f"a2t_R@{k}"] = (a2t < k).float().mean().item()
    return result
