"""The dataset registry (name -> role and adapter) and the helpers that pool manifests.

`load_dataset(name, root)` reads `<root>/<name>/` with that dataset's adapter.
`teacher_pairs` pools the (clip, caption) pairs of the teacher datasets and, for the teacher data
fraction sweep, keeps a seeded subset that is nested across fractions: pairs are ranked by a hash
of (seed, pair id), so a smaller fraction keeps a prefix of a larger one's ranking and adding
other pairs never reshuffles the existing ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from clapsweep.data.adapters import ADAPTERS, LAYOUTS
from clapsweep.data.manifest import DatasetError, Manifest, Record
from clapsweep.errors import UserError

__all__ = [
    "ROLES",
    "DatasetError",
    "Pair",
    "load_dataset",
    "task_classes",
    "subset_size",
    "teacher_pairs",
    "wild_clips",
]

# The part each dataset plays in the paper: teacher captions, in-the-wild audio, zero-shot tasks.
ROLES = {
    "fsd50k": "teacher",
    "clotho": "teacher",
    "audiocaps": "teacher",
    "macs": "teacher",
    "audioset": "wild",
    "esc50": "task",
    "us8k": "task",
    "tut17": "task",
}


@dataclass
class Pair:
    id: str  # "<record id>#<caption index>", unique
    record_id: str
    path: str  # absolute audio path
    caption: str


def load_dataset(name: str, root: str | Path) -> Manifest:
    """Read `<root>/<name>/` in the dataset's official layout (docs/datasets.md)."""
    if name not in ADAPTERS:
        raise UserError(f"unknown dataset '{name}'; known datasets: {', '.join(ROLES)}")
    folder = Path(root).absolute() / name
    if not folder.is_dir():
        raise DatasetError(
            f"{name}: {folder} not found; expected {LAYOUTS[name]}, see docs/datasets.md"
        )
    return ADAPTERS[name](folder)


def _rank(seed: int, pair_id: str) -> bytes:
    # hashlib, not hash(): Python's string hash changes from process to process.
    return hashlib.sha256(f"{seed}\0{pair_id}".encode()).digest()


def teacher_pairs(manifests: list[Manifest], fraction: float = 1.0, seed: int = 0) -> list[Pair]:
    """Every (clip, caption) pair of the teacher manifests, or a seeded `fraction` of them.

    The subset has round(fraction * N) pairs (at least 1 when fraction > 0), sorted by pair id.
    """
    if not 0.0 <= fraction <= 1.0:
        raise UserError(f"teacher data fraction must be in [0, 1], got {fraction}")
    pairs = []
    for manifest in manifests:
        if ROLES.get(manifest.dataset) != "teacher":
            teachers = ", ".join(n for n, r in ROLES.items() if r == "teacher")
            raise UserError(
                f"{manifest.dataset} is not a teacher dataset (teacher datasets: {teachers})"
            )
        for record in manifest.records:
            for i, caption in enumerate(record.captions):
                pairs.append(Pair(f"{record.id}#{i}", record.id, record.path, caption))
    if fraction < 1.0:
        keep = subset_size(len(pairs), fraction)
        pairs = sorted(pairs, key=lambda p: (_rank(seed, p.id), p.id))[:keep]
    return sorted(pairs, key=lambda p: p.id)


def subset_size(n: int, fraction: float) -> int:
    """How many of n teacher pairs a teacher data fraction keeps (at least 1 when > 0)."""
    if fraction >= 1.0:
        return n
    keep = round(fraction * n)
    return max(keep, 1) if fraction > 0 and n else keep


def task_classes(manifest: Manifest) -> list[str]:
    """The sorted class names of a task dataset."""
    return sorted({label for record in manifest.records for label in record.labels})


def wild_clips(manifest: Manifest) -> list[Record]:
    """The in-the-wild clips (records of the wild pool), in id order."""
    return list(manifest.records)
