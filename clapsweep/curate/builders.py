"""Builders: teacher embeddings + id tables -> the DU, DS and ADS Improvement-Sets."""

from __future__ import annotations

import numpy as np
import torch

from clapsweep.curate.improvement_set import ImprovementSet, check_no_task_audio
from clapsweep.curate.search import DEFAULT_CHUNK, _ds_from_max, _search, prompt_similarity


def _check_rows(name: str, emb: torch.Tensor, table: list[str]) -> None:
    if len(table) != torch.as_tensor(emb).shape[0]:
        raise ValueError(f"{name}: {len(table)} entries for {torch.as_tensor(emb).shape[0]} rows")


def build_du(
    caption_emb: torch.Tensor,
    wild_audio_emb: torch.Tensor,
    sigma: float,
    captions: list[str],
    clip_ids: list[str],
    chunk: int = DEFAULT_CHUNK,
    top_k: int | None = None,
    device=None,
) -> ImprovementSet:
    """The DU Improvement-Set. `clip_ids` are the wild clips' ids, one per audio row."""
    _check_rows("captions", caption_emb, captions)
    _check_rows("clip_ids", wild_audio_emb, clip_ids)
    check_no_task_audio(clip_ids)
    t, a, s, best = _search(caption_emb, wild_audio_emb, sigma, chunk, top_k, device)
    return ImprovementSet.build(
        "du",
        "",
        {"sigma": sigma},
        captions,
        clip_ids,
        t,
        a,
        s,
        max_sims={"sigma": best},
        searched={"captions": len(captions), "clips": len(clip_ids)},
    )


def build_ds(
    caption_emb: torch.Tensor,
    prompt_emb: torch.Tensor,
    sigma_ds: float,
    captions: list[str],
    caption_clip_ids: list[str],
    task: str,
    chunk: int = DEFAULT_CHUNK,
    device=None,
) -> ImprovementSet:
    """The DS Improvement-Set: selected teacher captions with their own clip
    (`caption_clip_ids[i]` is the teacher clip of caption i)."""
    _check_rows("captions", caption_emb, captions)
    _check_rows("caption_clip_ids", caption_emb, caption_clip_ids)
    per_caption = prompt_similarity(caption_emb, prompt_emb, chunk, device)
    idx, sims = _ds_from_max(per_caption, sigma_ds)
    clip_table = sorted(set(caption_clip_ids))
    clip_pos = {c: i for i, c in enumerate(clip_table)}
    return ImprovementSet.build(
        "ds",
        task,
        {"sigma_ds": sigma_ds},
        captions,
        clip_table,
        idx,
        np.array([clip_pos[caption_clip_ids[i]] for i in idx], dtype=np.int64),
        sims,
        max_sims={"sigma_ds": float(per_caption.max()) if len(per_caption) else None},
        searched={
            "teacher_captions": len(captions),
            "prompts": int(torch.as_tensor(prompt_emb).shape[0]),
            "captions": len(idx),
        },
    )


def build_ads(
    caption_emb: torch.Tensor,
    prompt_emb: torch.Tensor,
    wild_audio_emb: torch.Tensor,
    sigma_ds: float,
    sigma_ads: float,
    captions: list[str],
    clip_ids: list[str],
    task: str,
    chunk: int = DEFAULT_CHUNK,
    top_k: int | None = None,
    device=None,
) -> ImprovementSet:
    """The ADS Improvement-Set: DS captions x wild clips with cosine >= sigma_ads."""
    _check_rows("captions", caption_emb, captions)
    _check_rows("clip_ids", wild_audio_emb, clip_ids)
    check_no_task_audio(clip_ids)
    per_caption = prompt_similarity(caption_emb, prompt_emb, chunk, device)
    ds_idx, _ = _ds_from_max(per_caption, sigma_ds)
    t, a, s, best = _search(
        torch.as_tensor(caption_emb)[torch.from_numpy(ds_idx)],
        wild_audio_emb,
        sigma_ads,
        chunk,
        top_k,
        device,
    )
    return ImprovementSet.build(
        "ads",
        task,
        {"sigma_ds": sigma_ds, "sigma_ads": sigma_ads},
        captions,
        clip_ids,
        ds_idx[t],
        a,
        s,
        max_sims={
            "sigma_ds": float(per_caption.max()) if len(per_caption) else None,
            "sigma_ads": best,
        },
        searched={
            "teacher_captions": len(captions),
            "prompts": int(torch.as_tensor(prompt_emb).shape[0]),
            "captions": len(ds_idx),
            "clips": len(clip_ids),
        },
    )
