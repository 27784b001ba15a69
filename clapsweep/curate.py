"""Improvement-Set curation (paper §2.3): DU, DS and ADS pairs from teacher embeddings.

Everything here works on embeddings already computed by the teacher; the caller embeds the
teacher captions (text tower), the class prompts of a task (text tower) and the audio
(audio tower), all in the joint space.

- DU  (domain-unspecific): every (teacher caption, wild clip) pair with cosine >= sigma.
- DS  (domain-specific): the teacher pairs whose caption has a text-to-text cosine >= sigma_ds
  with at least one class prompt of the task (the max over the prompts), with their own audio.
- ADS (augmented domain-specific): the DS captions matched to wild clips with cosine
  >= sigma_ads.

The search is a chunked matrix product: blocks of `chunk` captions x `chunk` clips, so the
working memory is O(chunk^2) besides the embeddings themselves, whatever M and N are.
On CPU it runs in float32; on CUDA it runs in the inputs' dtype (bf16/fp16 allowed), and the
threshold test is done on the float32 value of each product.

No leakage: curation only accepts audio from the wild pool and the teacher training set.
Downstream evaluation audio (ids "esc50/...", "us8k/...", "tut17/...") never enters an
Improvement-Set: `ImprovementSet.build` and `ImprovementSet.save` check the clip ids and raise
`LeakageError` otherwise.

On disk an Improvement-Set is a folder: `pairs.npz` (caption_idx, clip_idx, sims),
`captions.json` and `clips.json` (the tables the indices point into), and `counts.json`
(strategy, task, thresholds, counts, highest similarity seen). It is written atomically.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from clapsweep.errors import UserError

# A pair whose cosine equals the threshold is kept; this absorbs float32 rounding of the
# normalisation so that, e.g., identical vectors reach sigma = 1.0.
SIM_TOL = 1e-6
DEFAULT_CHUNK = 8192
TASK_DATASETS = ("esc50", "us8k", "tut17")


class LeakageError(UserError):
    """Downstream evaluation audio was about to enter an Improvement-Set."""


class EmptyImprovementSetError(UserError):
    """Curation found no pair at the configured threshold."""


# ---------------------------------------------------------------------------------------------
# Similarity search


def _compute_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    # Half precision only where it is fast and accurate enough: on CUDA. CPU uses float32.
    if device.type == "cuda" and dtype in (torch.bfloat16, torch.float16):
        return dtype
    return torch.float32


def _prepare(emb: torch.Tensor, device: torch.device, name: str) -> torch.Tensor:
    """L2-normalise rows in float32, then cast to the compute dtype on `device`."""
    emb = torch.as_tensor(emb)
    if emb.dim() != 2:
        raise ValueError(f"{name}: expected a 2-d tensor (rows, dim), got shape {tuple(emb.shape)}")
    dtype = _compute_dtype(emb.dtype, device)
    x = emb.to(device=device, dtype=torch.float32)
    x = torch.nn.functional.normalize(x, dim=1)  # zero rows stay zero (cosine 0)
    return x.to(dtype)


def _resolve_device(device, emb: torch.Tensor) -> torch.device:
    if device is None:
        return emb.device if isinstance(emb, torch.Tensor) else torch.device("cpu")
    return torch.device(device)


def _check_chunk(chunk: int) -> None:
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")


def _search(
    text_emb: torch.Tensor,
    audio_emb: torch.Tensor,
    sigma: float,
    chunk: int,
    top_k: int | None,
    device,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float | None]:
    """threshold_pairs, plus the highest cosine seen (None if nothing was compared)."""
    _check_chunk(chunk)
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    dev = _resolve_device(device, text_emb)
    text = _prepare(text_emb, dev, "text_emb")
    audio = _prepare(audio_emb, dev, "audio_emb")
    if text.shape[1] != audio.shape[1]:
        raise ValueError(
            f"embedding sizes differ: text {text.shape[1]}, audio {audio.shape[1]}; "
            "embed both with the same teacher"
        )
    m, n = text.shape[0], audio.shape[0]
    cut = sigma - SIM_TOL
    best = torch.tensor(-math.inf, device=dev)
    parts_t, parts_a, parts_s = [], [], []
    for a0 in range(0, n, chunk):
        a_blk = audio[a0 : a0 + chunk]
        if top_k is None:
            for t0 in range(0, m, chunk):
                sims = (text[t0 : t0 + chunk] @ a_blk.T).float()
                best = torch.maximum(best, sims.max())
                rows, cols = torch.nonzero(sims >= cut, as_tuple=True)
                parts_t.append((rows + t0).cpu())
                parts_a.append((cols + a0).cpu())
                parts_s.append(sims[rows, cols].cpu())
        else:
            t, a, s, blk_best = _top_k_column_block(text, a_blk, cut, chunk, top_k)
            best = torch.maximum(best, blk_best)
            parts_t.append(t.cpu())
            parts_a.append((a + a0).cpu())
            parts_s.append(s.cpu())
    if not parts_t:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0, dtype=np.float32), None
    t_idx = torch.cat(parts_t).numpy().astype(np.int64)
    a_idx = torch.cat(parts_a).numpy().astype(np.int64)
    sim = torch.cat(parts_s).numpy().astype(np.float32)
    order = np.lexsort((t_idx, a_idx))  # by audio, then text: the same for every chunk size
    max_sim = float(best.item()) if m > 0 else None
    return t_idx[order], a_idx[order], sim[order], max_sim


def _top_k_column_block(
    text: torch.Tensor, a_blk: torch.Tensor, cut: float, chunk: int, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k best captions (>= cut) of each clip in `a_blk`, keeping a running (k, n) buffer.

    Ties are broken by the lower caption index (stable sorts, blocks visited in caption
    order), so the result does not depend on the chunk size.
    """
    n = a_blk.shape[0]
    dev = a_blk.device
    run_s = torch.empty((0, n), device=dev)
    run_i = torch.empty((0, n), dtype=torch.long, device=dev)
    best = torch.tensor(-math.inf, device=dev)
    for t0 in range(0, text.shape[0], chunk):
        sims = (text[t0 : t0 + chunk] @ a_blk.T).float()
        best = torch.maximum(best, sims.max())
        sims = sims.masked_fill(sims < cut, -math.inf)
        s, i = torch.sort(sims, dim=0, descending=True, stable=True)
        run_s = torch.cat([run_s, s[:k]])
        run_i = torch.cat([run_i, i[:k] + t0])
        s, order = torch.sort(run_s, dim=0, descending=True, stable=True)
        run_s, run_i = s[:k], torch.gather(run_i, 0, order)[:k]
    rows, cols = torch.nonzero(run_s > -math.inf, as_tuple=True)
    return run_i[rows, cols], cols, run_s[rows, cols], best


def threshold_pairs(
    text_emb: torch.Tensor,
    audio_emb: torch.Tensor,
    sigma: float,
    chunk: int = DEFAULT_CHUNK,
    top_k: int | None = None,
    device=None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (caption, clip) pair with cosine >= sigma: (text_idx, audio_idx, sim).

    Embeddings are normalised here. Blocks of chunk x chunk keep the working memory at
    O(chunk^2). Results are sorted by (audio_idx, text_idx). `top_k` keeps at most the k most
    similar captions per clip (ties: lower caption index); the paper has no such cap, but at
    AudioSet scale DU can yield millions of pairs.
    """
    t, a, s, _ = _search(text_emb, audio_emb, sigma, chunk, top_k, device)
    return t, a, s


def du_pairs(
    caption_emb: torch.Tensor, wild_audio_emb: torch.Tensor, sigma: float, **kw
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DU: teacher captions x wild audio with cosine >= sigma (see threshold_pairs)."""
    return threshold_pairs(caption_emb, wild_audio_emb, sigma, **kw)


def prompt_similarity(
    caption_emb: torch.Tensor,
    prompt_emb: torch.Tensor,
    chunk: int = DEFAULT_CHUNK,
    device=None,
) -> np.ndarray:
    """For each caption, its highest cosine over the class prompts (float32, shape (M,))."""
    _check_chunk(chunk)
    dev = _resolve_device(device, caption_emb)
    caps = _prepare(caption_emb, dev, "caption_emb")
    prompts = _prepare(prompt_emb, dev, "prompt_emb")
    if prompts.shape[0] == 0:
        raise ValueError("prompt_emb is empty: a task needs at least one class prompt")
    if caps.shape[1] != prompts.shape[1]:
        raise ValueError(
            f"embedding sizes differ: captions {caps.shape[1]}, prompts {prompts.shape[1]}"
        )
    out = []
    for c0 in range(0, caps.shape[0], chunk):
        run = torch.full((min(chunk, caps.shape[0] - c0),), -math.inf, device=dev)
        for p0 in range(0, prompts.shape[0], chunk):
            sims = (caps[c0 : c0 + chunk] @ prompts[p0 : p0 + chunk].T).float()
            run = torch.maximum(run, sims.max(dim=1).values)
        out.append(run.cpu())
    if not out:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(out).numpy().astype(np.float32)


def _ds_from_max(max_sim: np.ndarray, sigma_ds: float) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(max_sim >= sigma_ds - SIM_TOL).astype(np.int64)
    return idx, max_sim[idx]


def ds_select(
    caption_emb: torch.Tensor,
    prompt_emb: torch.Tensor,
    sigma_ds: float,
    chunk: int = DEFAULT_CHUNK,
    device=None,
) -> tuple[np.ndarray, np.ndarray]:
    """DS: indices (ascending) of captions whose max cosine over the prompts is >= sigma_ds,
    and that max cosine. Both inputs come from the teacher's text tower; DS pairs are the
    teacher pairs of these captions, with their own audio."""
    return _ds_from_max(prompt_similarity(caption_emb, prompt_emb, chunk, device), sigma_ds)


def ads_pairs(
    caption_emb: torch.Tensor,
    prompt_emb: torch.Tensor,
    wild_audio_emb: torch.Tensor,
    sigma_ds: float,
    sigma_ads: float,
    **kw,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ADS: the DS captions x wild audio with cosine >= sigma_ads.

    Returns (caption_idx, audio_idx, sim); caption indices refer to the full caption list.
    `kw` (chunk, top_k, device) goes to threshold_pairs; chunk and device also to ds_select.
    """
    ds_kw = {key: kw[key] for key in ("chunk", "device") if key in kw}
    ds_idx, _ = ds_select(caption_emb, prompt_emb, sigma_ds, **ds_kw)
    t, a, s = threshold_pairs(
        torch.as_tensor(caption_emb)[torch.from_numpy(ds_idx)], wild_audio_emb, sigma_ads, **kw
    )
    return ds_idx[t], a, s


# ---------------------------------------------------------------------------------------------
# Leakage rule


def check_no_task_audio(
    audio_ids: list[str], task_datasets: tuple[str, ...] = TASK_DATASETS
) -> None:
    """Raise LeakageError if any id ("<dataset>/<clip id>") belongs to a downstream task."""
    prefixes = tuple(f"{name}/" for name in task_datasets)
    bad = [a for a in audio_ids if a.startswith(prefixes)]
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise LeakageError(
            f"{len(bad)} clip(s) of a downstream task would enter the Improvement-Set ({shown}); "
            "curate only from the wild audio pool and the teacher training set, never from "
            f"{', '.join(task_datasets)}"
        )


# ---------------------------------------------------------------------------------------------
# The Improvement-Set


@dataclass
class ImprovementSet:
    """Curated (caption, clip) pairs with the settings and statistics that produced them.

    `caption_idx` / `clip_idx` index the `captions` / `clips` tables (only the entries used are
    kept). `sims` is the caption-clip cosine for DU and ADS; for DS it is the caption's max
    cosine over the class prompts (the pair itself is a teacher pair). `sigmas` holds the
    thresholds by name ("sigma" for DU, "sigma_ds", and "sigma_ads" for ADS); `max_sims` the
    highest similarity seen at each of those steps (None where nothing was compared);
    `searched` what was compared, e.g. {"captions": 12, "clips": 2500}.
    """

    strategy: str
    task: str
    sigmas: dict[str, float]
    captions: list[str]
    clips: list[str]
    caption_idx: np.ndarray
    clip_idx: np.ndarray
    sims: np.ndarray
    max_sims: dict[str, float | None] = field(default_factory=dict)
    searched: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.strategy:  # any registered name (clapsweep.recipe.strategies)
            raise ValueError("an Improvement-Set needs the name of its strategy")
        self.caption_idx = np.asarray(self.caption_idx, dtype=np.int64)
        self.clip_idx = np.asarray(self.clip_idx, dtype=np.int64)
        self.sims = np.asarray(self.sims, dtype=np.float32)
        if not len(self.caption_idx) == len(self.clip_idx) == len(self.sims):
            raise ValueError("caption_idx, clip_idx and sims must have the same length")

    @classmethod
    def build(
        cls,
        strategy: str,
        task: str,
        sigmas: dict[str, float],
        captions: list[str],
        clips: list[str],
        caption_idx: np.ndarray,
        clip_idx: np.ndarray,
        sims: np.ndarray,
        max_sims: dict[str, float | None] | None = None,
        searched: dict[str, int] | None = None,
    ) -> ImprovementSet:
        """From indices into the full tables: keeps only the used entries, checks leakage."""
        caption_idx = np.asarray(caption_idx, dtype=np.int64)
        clip_idx = np.asarray(clip_idx, dtype=np.int64)
        used_c, new_c = np.unique(caption_idx, return_inverse=True)
        used_a, new_a = np.unique(clip_idx, return_inverse=True)
        kept_clips = [clips[i] for i in used_a]
        check_no_task_audio(kept_clips)
        return cls(
            strategy=strategy,
            task=task,
            sigmas=dict(sigmas),
            captions=[captions[i] for i in used_c],
            clips=kept_clips,
            caption_idx=new_c.reshape(-1),
            clip_idx=new_a.reshape(-1),
            sims=sims,
            max_sims=dict(max_sims or {}),
            searched=dict(searched or {}),
        )

    def __len__(self) -> int:
        return len(self.sims)

    def counts(self) -> dict[str, int]:
        return {
            "n_pairs": len(self),
            "n_unique_captions": len(np.unique(self.caption_idx)),
            "n_unique_clips": len(np.unique(self.clip_idx)),
        }

    def pairs(self) -> list[tuple[str, str, float]]:
        """(caption, clip id, similarity) per pair; convenient for small sets and tests."""
        return [
            (self.captions[c], self.clips[a], float(s))
            for c, a, s in zip(self.caption_idx, self.clip_idx, self.sims, strict=True)
        ]

    def save(self, directory: str | Path) -> Path:
        """Write the folder atomically: a temporary sibling folder, then a rename."""
        check_no_task_audio(self.clips)
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        for stale in directory.parent.glob(f".{directory.name}.tmp-*"):
            shutil.rmtree(stale)  # an earlier, killed attempt's
        tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        np.savez_compressed(
            tmp / "pairs.npz", caption_idx=self.caption_idx, clip_idx=self.clip_idx, sims=self.sims
        )
        (tmp / "captions.json").write_text(json.dumps(self.captions, ensure_ascii=False))
        (tmp / "clips.json").write_text(json.dumps(self.clips, ensure_ascii=False))
        meta = {
            "strategy": self.strategy,
            "task": self.task,
            "sigmas": self.sigmas,
            **self.counts(),
            "max_sims": self.max_sims,
            "searched": self.searched,
        }
        (tmp / "counts.json").write_text(json.dumps(meta, indent=1))
        # A folder cannot replace a non-empty folder in one rename: move the old one aside.
        old = directory.parent / f".{directory.name}.old-{os.getpid()}"
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        if old.exists():
            shutil.rmtree(old)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ImprovementSet:
        directory = Path(directory)
        for name in ("pairs.npz", "captions.json", "clips.json", "counts.json"):
            if not (directory / name).is_file():
                raise UserError(
                    f"{directory / name}: missing; this is not an Improvement-Set folder "
                    "(run curation again)"
                )
        meta = json.loads((directory / "counts.json").read_text())
        with np.load(directory / "pairs.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("caption_idx", "clip_idx", "sims")}
        return cls(
            strategy=meta["strategy"],
            task=meta["task"],
            sigmas=meta["sigmas"],
            captions=json.loads((directory / "captions.json").read_text()),
            clips=json.loads((directory / "clips.json").read_text()),
            max_sims=meta.get("max_sims", {}),
            searched=meta.get("searched", {}),
            **arrays,
        )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def require_nonempty(imp: ImprovementSet) -> ImprovementSet:
    """Return `imp`, or raise EmptyImprovementSetError naming the step, threshold and counts."""
    if len(imp) > 0:
        return imp
    head = f"{imp.strategy} for {imp.task}" if imp.task else imp.strategy
    s = imp.searched
    if imp.strategy == "du":
        step, what = "sigma", f"{s.get('captions', 0)} captions x {s.get('clips', 0)} wild clips"
    elif imp.strategy == "ds" or s.get("captions", 0) == 0:
        # ADS with no DS caption failed at the DS step already.
        step = "sigma_ds"
        what = (
            f"{s.get('teacher_captions', 0)} teacher captions x {s.get('prompts', 0)} class prompts"
        )
    else:
        step, what = (
            "sigma_ads",
            f"{s.get('captions', 0)} DS captions x {s.get('clips', 0)} wild clips",
        )
    noun = "caption" if step == "sigma_ds" else "pair"
    raise EmptyImprovementSetError(
        f"{head}: no {noun} reached {step}={imp.sigmas.get(step)} ({what}; max similarity "
        f"{_fmt(imp.max_sims.get(step))}); lower {step}"
    )


# ---------------------------------------------------------------------------------------------
# Builders: embeddings + id tables -> ImprovementSet


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
