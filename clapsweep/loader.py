"""The training data pipeline: batches of (audio crop, caption) with replay, deterministic per epoch.

Each batch is drawn whole from the replay set with probability `replay`, else from the main
set (the Improvement-Set for a student), as the authors' Bernoulli batch swap does. An epoch is
one pass over the main set. Everything random here (order, replay draws, crops) is derived from
(seed, epoch), so an epoch can be replayed exactly after a restart, from any batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from clapsweep.audio import AudioError, random_crop
from clapsweep.data.cache import AudioCache
from clapsweep.seeds import derive_seed, generator

MAIN, REPLAY = 0, 1


@dataclass(frozen=True)
class Item:
    source: int  # MAIN or REPLAY
    index: int  # position in that source's pair list
    crop_seed: int


def epoch_batches(
    n_main: int, n_replay: int, batch_size: int, replay: float, seed: int, epoch: int
) -> list[list[Item]]:
    """The batches of one epoch. The last partial main batch is dropped when it is below 2."""
    g = generator(seed, "epoch", epoch)
    order = torch.randperm(n_main, generator=g).tolist()
    n_batches = max(1, math.ceil(n_main / batch_size)) if n_main >= 2 else 0
    batches = []
    for b in range(n_batches):
        if n_replay >= 2 and torch.rand((), generator=g).item() < replay:
            size = min(batch_size, n_replay)
            idx = torch.randint(n_replay, (size,), generator=g).tolist()
            source = REPLAY
        else:
            idx = order[b * batch_size : (b + 1) * batch_size]
            source = MAIN
        if len(idx) < 2:  # a contrastive batch needs at least one negative
            continue
        batches.append([Item(source, i, derive_seed(seed, epoch, b, j)) for j, i in enumerate(idx)])
    return batches


class PairDataset(torch.utils.data.Dataset):
    """Maps an Item to (crop, caption, source, index); an unreadable clip yields None."""

    def __init__(self, main: Sequence, replay: Sequence, cache: AudioCache, clip_samples: int):
        self.sources = (main, replay)
        self.cache = cache
        self.clip_samples = clip_samples

    def __len__(self) -> int:
        return len(self.sources[MAIN])

    def __getitem__(self, item: Item):
        pair = self.sources[item.source][item.index]
        try:
            wave = self.cache.load(pair.path)
        except AudioError:
            return None
        crop = random_crop(wave, self.clip_samples, torch.Generator().manual_seed(item.crop_seed))
        return crop, pair.caption, item.source, item.index


def collate(samples: list) -> dict:
    """Stacks a batch; clips that failed to decode are dropped and counted."""
    good = [s for s in samples if s is not None]
    if not good:
        return {"audio": None, "skipped": len(samples)}
    return {
        "audio": torch.stack([s[0] for s in good]),
        "captions": [s[1] for s in good],
        "source": good[0][2],
        "index": torch.tensor([s[3] for s in good]),
        "skipped": len(samples) - len(good),
    }


def make_loader(
    dataset: PairDataset, batches: list[list[Item]], num_workers: int, pin_memory: bool
) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
    )
