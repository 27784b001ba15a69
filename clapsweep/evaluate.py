"""Deterministic embedding passes, zero-shot classification and retrieval.

Outside training no crop is random: every clip is cut into non-overlapping windows
(`clapsweep.audio.eval_windows`), each window is embedded, and the clip's embedding is the
normalised mean of its windows. Evaluation, embedding and curation all use this one policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from clapsweep.audio import AudioError, eval_windows
from clapsweep.data.cache import AudioCache
from clapsweep.metrics import prompt_for, retrieval_recall, zero_shot_accuracy


class _Windows(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str], cache: AudioCache, clip_samples: int):
        self.paths, self.cache, self.clip_samples = paths, cache, clip_samples

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, eval_windows(self.cache.load(self.paths[i]), self.clip_samples)
        except AudioError:
            return i, None


def _collate(items):
    return items


def autocast_for_eval(device: torch.device):
    """The autocast embedding runs under: bf16 on CUDA, off (fp32) on the CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def embed_audio(
    model,
    paths: Sequence[str],
    cache: AudioCache,
    clip_samples: int,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings (N, dim) float32, unit norm, and a bool mask of clips that decoded."""
    model.eval()
    device = next(model.parameters()).device
    out = torch.zeros(len(paths), model.dim)
    ok = torch.zeros(len(paths), dtype=torch.bool)
    loader = torch.utils.data.DataLoader(
        _Windows(paths, cache, clip_samples),
        batch_size=max(1, batch_size // 2),  # clips per batch; windows per clip vary
        collate_fn=_collate,
        num_workers=num_workers,
    )
    for items in loader:
        good = [(i, w) for i, w in items if w is not None]
        if good:
            windows = torch.cat([w for _, w in good]).to(device)
            owner = torch.cat([torch.full((len(w),), k) for k, (_, w) in enumerate(good)])
            with autocast_for_eval(device):
                emb = model.encode_audio(windows).float().cpu()
            sums = torch.zeros(len(good), emb.shape[1]).index_add_(0, owner, emb)
            rows = torch.tensor([i for i, _ in good])
            out[rows] = torch.nn.functional.normalize(sums, dim=-1)
            ok[rows] = True
        if progress:
            progress(len(items))
    return out, ok


@torch.no_grad()
def embed_texts(model, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Text embeddings (N, dim), float32, unit norm; batches sorted by length to pad less."""
    model.eval()
    device = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.zeros(len(texts), model.dim)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        tokens = {k: v.to(device) for k, v in model.tokenize([texts[i] for i in idx]).items()}
        with autocast_for_eval(device):
            emb = model.encode_text(tokens["input_ids"], tokens["attention_mask"])
        out[torch.tensor(idx)] = emb.float().cpu()
    return torch.nn.functional.normalize(out, dim=-1)


def zero_shot(
    model, records, cache: AudioCache, clip_samples: int, prompt=prompt_for, classes=None, **kw
) -> dict:
    """Zero-shot accuracy (overall and per fold) on a task's records; `prompt` turns a class
    name into its text (a custom task's template, else the built-in policy). `classes`: the
    task's class names when `records` are only some of its clips (default: theirs)."""
    classes = sorted(classes) if classes is not None else sorted({r.labels[0] for r in records})
    class_emb = embed_texts(model, [prompt(c) for c in classes])
    audio, ok = embed_audio(model, [r.path for r in records], cache, clip_samples, **kw)
    keep = [i for i in range(len(records)) if ok[i]]
    targets = torch.tensor([classes.index(records[i].labels[0]) for i in keep])
    result = zero_shot_accuracy(
        audio[keep], class_emb, targets, folds=[records[i].fold for i in keep]
    )
    result.pop("predictions", None)
    result["classes"] = len(classes)
    result["skipped_clips"] = len(records) - len(keep)
    return result


def retrieval(model, records, cache: AudioCache, clip_samples: int, **kw) -> dict:
    """R@1/5/10 both ways on held-out captioned clips (each clip may have several captions)."""
    audio, ok = embed_audio(model, [r.path for r in records], cache, clip_samples, **kw)
    keep = [i for i in range(len(records)) if ok[i]]
    texts, owner = [], []
    for k, i in enumerate(keep):
        texts += records[i].captions
        owner += [k] * len(records[i].captions)
    text_emb = embed_texts(model, texts)
    result = retrieval_recall(audio[keep], text_emb, torch.tensor(owner))
    result["clips"], result["captions"] = len(keep), len(texts)
    return result
