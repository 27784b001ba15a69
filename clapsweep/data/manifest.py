"""The common manifest every dataset adapter produces: one record per audio clip."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clapsweep.errors import UserError
from clapsweep.store import atomic_file


class DatasetError(UserError):
    """A dataset folder, metadata file or column is missing or malformed."""


@dataclass
class Record:
    id: str  # "<dataset>/<stable clip id>", unique across datasets
    dataset: str  # esc50 | us8k | tut17 | fsd50k | clotho | audiocaps | macs | audioset
    path: str  # absolute path of the audio file
    captions: list[str] = field(default_factory=list)  # empty for wild audio and tasks
    labels: list[str] = field(default_factory=list)  # class names for tasks; empty otherwise
    fold: str = ""  # fold ("1".."10") or split ("development", "train", ...)
    duration: float = 0.0  # seconds, from the file header
    sample_rate: int = 0  # native rate
    channels: int = 0  # native channel count
    # The recording the clip was cut from, for leakage checks (clapsweep.data.overlap):
    # "freesound:<sound id>" or "youtube:<video id>"; empty when the dataset does not say.
    source: str = ""


@dataclass
class Manifest:
    """An adapter's output: the readable clips, and the files it skipped with the reason."""

    dataset: str
    root: str
    records: list[Record] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    # The audio naming convention most clips were found under ("official", "aac-datasets",
    # "Y<YTID>_<start>_<end> (ms)", ...); empty when no audio file was found at all.
    convention: str = ""
    # Where and under which names the adapter looked for audio, for "no readable audio" messages.
    looked_for: str = ""

    def skipped_counts(self) -> dict[str, int]:
        return dict(Counter(reason for _, reason in self.skipped))

    def save(self, path: str | Path) -> None:
        path = Path(path)
        data = {
            "dataset": self.dataset,
            "root": self.root,
            "records": [asdict(r) for r in self.records],
            "skipped": [list(s) for s in self.skipped],
            "convention": self.convention,
            "looked_for": self.looked_for,
        }
        with atomic_file(path) as f:
            f.write(json.dumps(data))

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        data = json.loads(Path(path).read_text())
        return cls(
            dataset=data["dataset"],
            root=data["root"],
            records=[Record(**r) for r in data["records"]],
            skipped=[tuple(s) for s in data["skipped"]],
            # Manifests saved before these fields existed load with them empty.
            convention=data.get("convention", ""),
            looked_for=data.get("looked_for", ""),
        )
