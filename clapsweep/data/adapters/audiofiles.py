"""Finding a clip's audio file: each audio folder listed once, files looked up by name, by
stem or by segment ([Y]<id>_<start>_<end>, times in seconds or milliseconds), and the ways the
download tools spell a time in file names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path

from clapsweep.data.adapters.layouts import AUDIO_SUFFIXES

# "<base>_<start>_<end>": how AudioSet downloaders name a segment's file (times in s or ms).
_SEGMENT = re.compile(r"(.+)_(\d+(?:\.\d+)?)_(\d+(?:\.\d+)?)")


class _Folder:
    """The audio files directly in one folder, listed once (a stat per clip would be slow on
    two million AudioSet clips), looked up by file name, by stem, or by segment."""

    def __init__(self, path: Path):
        files = sorted(path.iterdir()) if path.is_dir() else []
        files = [p for p in files if p.suffix.lower() in AUDIO_SUFFIXES and p.name[0] != "."]
        self.names = {p.name: p for p in files}
        self.stems = {p.stem: p for p in files}
        self._segments: dict[tuple[str, Decimal, Decimal], tuple[str, Path]] | None = None

    def segment(self, clip: str, start: Decimal, end: Decimal) -> tuple[str, Path] | None:
        """("" or "Y", path) of the file named [Y]<clip>_<start>_<end>, however the numbers
        are spelled (30, 30.0, 30.000 are one time)."""
        if self._segments is None:
            self._segments = {}
            for stem, path in self.stems.items():
                match = _SEGMENT.fullmatch(stem)
                if match is None:
                    continue
                base, times = match.group(1), (Decimal(match.group(2)), Decimal(match.group(3)))
                # An id may itself start with Y, so a Y-less reading never loses to a Y one.
                self._segments[(base, *times)] = ("", path)
                if base.startswith("Y"):
                    self._segments.setdefault((base[1:], *times), ("Y", path))
        return self._segments.get((clip, start, end))


def _find(candidates: Iterable[tuple[str, dict[str, Path], str]]) -> tuple[str, Path] | None:
    """(convention, path) of the first candidate (convention, folder listing, name) present;
    candidates are produced lazily, so the usual first hit costs one lookup."""
    for convention, listing, name in candidates:
        path = listing.get(name)
        if path is not None:
            return convention, path
    return None


def _decimal(value: str) -> Decimal | None:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _segment_times(start: str, end: str) -> list[tuple[str, Decimal, Decimal]]:
    """(unit, start, end) spellings of a segment's times in file names: seconds, then
    milliseconds, also as int(seconds * 1000) in floating point (what audiosetdl writes).
    Empty when the times are not numbers."""
    begin, finish = _decimal(start), _decimal(end)
    if begin is None or finish is None:
        return []
    times = [("s", begin, finish), ("ms", begin * 1000, finish * 1000)]
    truncated = Decimal(int(float(begin) * 1000)), Decimal(int(float(finish) * 1000))
    if truncated != times[1][1:]:
        times.append(("ms", *truncated))
    return times


def _find_segment(
    folder: _Folder, clip: str, times: list[tuple[str, Decimal, Decimal]], name: str
) -> tuple[str, Path] | None:
    """A file named [Y]<clip>_<start>_<end> for one of `times` (_segment_times), with its
    convention spelled with `name` ("YTID", "youtube_id")."""
    for unit, start, end in times:
        hit = folder.segment(clip, start, end)
        if hit is not None:
            return f"{hit[0]}<{name}>_<start>_<end> ({unit})", hit[1]
    return None


def _seconds_spellings(value: str) -> list[str]:
    """How download tools spell a time in file names: as in the CSV, 30.000, 30.0, 30."""
    spellings = [value]
    try:
        number = float(value)
    except ValueError:
        return spellings
    spellings += [f"{number:.3f}", f"{number:.1f}", f"{number:g}"]
    if number.is_integer():
        spellings.append(str(int(number)))
    return list(dict.fromkeys(spellings))
