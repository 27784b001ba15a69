"""The training data pipeline: batches of (audio crop, caption) with replay, deterministic per epoch.

An epoch has a fixed number of batches (`batches_per_pass` of the set that defines it: the
teacher's training set in the authors' loop, or the main set). Each batch is drawn whole
from the replay set with probability `replay`, else from the main set (the Improvement-Set
for a student), as the authors' Bernoulli batch swap does. Each source is read through its
own stream of seeded permutations, so no batch holds a pair twice (a repeated pair would be
its own negative in the contrastive loss): a batch takes the next pairs of the current
permutation, a short remainder of at least 2 pairs ends it as a short batch, and the next
batch starts a fresh permutation. Everything random here (order, replay draws, crops) is
derived from (seed, epoch), so an epoch can be replayed exactly after a restart, from any
batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

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


def batches_per_pass(n: int, batch_size: int) -> int:
    """Batches in one pass over n pairs; a trailing batch of one pair (no negative) is dropped."""
    return n // batch_size + (1 if n % batch_size >= 2 else 0)


class _Stream:
    """Indices 0..n-1 in successive seeded permutations, handed out without repeats per batch."""

    def __init__(self, n: int, seed: int, epoch: int, source: int):
        self.n, self.seed, self.epoch, self.source = n, seed, epoch, source
        self.cycle, self.order, self.pos = -1, [], 0

    def take(self, k: int) -> list[int]:
        if self.n - self.pos < 2 or self.cycle < 0:
            self.cycle += 1
            g = generator(self.seed, "order", self.epoch, self.source, self.cycle)
            self.order, self.pos = torch.randperm(self.n, generator=g).tolist(), 0
        idx = self.order[self.pos : self.pos + k]
        self.pos += len(idx)
        return idx


def epoch_batches(
    n_main: int,
    n_replay: int,
    batch_size: int,
    replay: float,
    seed: int,
    epoch: int,
    n_batches: int | None = None,
) -> list[list[Item]]:
    """The batches of one epoch: `n_batches` (default: one pass over the main set)."""
    if n_main < 2:
        return []
    if n_batches is None:
        n_batches = batches_per_pass(n_main, batch_size)
    g = generator(seed, "replay", epoch)
    streams = (_Stream(n_main, seed, epoch, MAIN), _Stream(n_replay, seed, epoch, REPLAY))
    batches = []
    for b in range(n_batches):
        # One draw per batch whatever the sets, so replay choices never depend on set sizes.
        use_replay = torch.rand((), generator=g).item() < replay and n_replay >= 2
        source = REPLAY if use_replay else MAIN
        idx = streams[source].take(batch_size)
        batches.append([Item(source, i, derive_seed(seed, epoch, b, j)) for j, i in enumerate(idx)])
    return batches


class Unreadable(NamedTuple):
    """What an unreadable clip yields in place of its sample."""

    path: str


class PairDataset(torch.utils.data.Dataset):
    """Maps an Item to (crop, caption, source, index); an unreadable clip to Unreadable."""

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
            return Unreadable(pair.path)
        crop = random_crop(wave, self.clip_samples, torch.Generator().manual_seed(item.crop_seed))
        return crop, pair.caption, item.source, item.index


def collate(samples: list) -> dict:
    """Stacks a batch; clips that failed to decode are dropped and named."""
    good = [s for s in samples if not isinstance(s, Unreadable)]
    bad = [s.path for s in samples if isinstance(s, Unreadable)]
    if not good:
        return {"audio": None, "skipped": len(samples), "unreadable": bad}
    return {
        "audio": torch.stack([s[0] for s in good]),
        "captions": [s[1] for s in good],
        "source": good[0][2],
        "index": torch.tensor([s[3] for s in good]),
        "skipped": len(samples) - len(good),
        "unreadable": bad,
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
