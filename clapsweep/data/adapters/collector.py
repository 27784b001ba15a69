"""The collector every adapter fills: it probes each clip's audio header, keeps one Record per
readable clip, notes the skipped files with a reason (missing, empty, unreadable, duplicate
id, never fatal) and counts the naming convention each file was found under."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from clapsweep.audio import AudioError, audio_info
from clapsweep.data.adapters.audiofiles import _Folder
from clapsweep.data.adapters.layouts import AUDIO_NAMES
from clapsweep.data.adapters.metadata import _collapse
from clapsweep.data.manifest import Manifest, Record


def _reason(path: Path, error: AudioError) -> str:
    """A short skip reason from an AudioError ("<path>: unreadable: <why>" or "<path>: empty")."""
    why = _collapse(str(error))
    for prefix in (f"{path}: ", "unreadable: "):
        why = why.removeprefix(prefix)
    return "empty" if why.startswith("empty") else f"unreadable: {why}"


class _Collector:
    """Gathers an adapter's records, probing each audio file and noting the skipped ones."""

    def __init__(self, dataset: str, folder: Path):
        self.dataset = dataset
        self.folder = folder
        self.records: dict[str, Record] = {}
        self.skipped: list[tuple[str, str]] = []
        self.matched: Counter[str] = Counter()  # files found, per naming convention
        self._folders: dict[Path, _Folder] = {}

    def listing(self, path: Path) -> _Folder:
        """The audio files in folder `path`, listed on first use."""
        if path not in self._folders:
            self._folders[path] = _Folder(path)
        return self._folders[path]

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.append((str(path.absolute()), reason))

    def add(
        self,
        clip_id: str,
        path: Path,
        *,
        captions: Iterable[str] = (),
        labels: Iterable[str] = (),
        fold: str = "",
        source: str = "",
        convention: str = "official",
    ) -> None:
        record_id = f"{self.dataset}/{clip_id}"
        if record_id in self.records:
            self.skip(path, "duplicate id")
            return
        if not path.is_file():
            self.skip(path, "missing")
            return
        self.matched[convention] += 1
        if path.stat().st_size == 0:
            self.skip(path, "empty")
            return
        try:
            duration, rate, channels = audio_info(path)
        except AudioError as e:
            self.skip(path, _reason(path, e))
            return
        if duration <= 0:
            self.skip(path, "empty")
            return
        self.records[record_id] = Record(
            id=record_id,
            dataset=self.dataset,
            path=str(path.absolute()),
            captions=[c for c in (_collapse(c) for c in captions) if c],
            labels=list(labels),
            fold=fold,
            duration=float(duration),
            sample_rate=int(rate),
            channels=int(channels),
            source=source,
        )

    def manifest(self) -> Manifest:
        # Clips are matched one by one; the manifest reports the convention most files had.
        top = self.matched.most_common(1)
        return Manifest(
            dataset=self.dataset,
            root=str(self.folder.absolute()),
            records=[self.records[k] for k in sorted(self.records)],
            skipped=sorted(self.skipped),
            convention=top[0][0] if top else "",
            looked_for=AUDIO_NAMES[self.dataset],
        )
