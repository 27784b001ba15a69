"""The similarity search behind DU, DS and ADS: cosines between teacher embeddings.

The search is a chunked matrix product: blocks of `chunk` captions x `chunk` clips, so the
working memory is O(chunk^2) besides the embeddings themselves, whatever M and N are.
On CPU it runs in float32; on CUDA it runs in the inputs' dtype (bf16/fp16 allowed), and the
threshold test is done on the float32 value of each product.

A pair whose cosine equals the threshold (within SIM_TOL) is kept; `top_k` optionally keeps
only the k most similar captions per clip.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# A pair whose cosine equals the threshold is kept; this absorbs float32 rounding of the
# normalisation so that, e.g., identical vectors reach sigma = 1.0.
SIM_TOL = 1e-6
DEFAULT_CHUNK = 8192


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
