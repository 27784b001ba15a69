"""The in-the-wild pool: AudioSet unbalanced train as unlabeled audio, without the clips that
are also in AudioCaps (a teacher dataset)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from clapsweep.data.adapters.audiofiles import _find, _find_segment, _Folder, _segment_times
from clapsweep.data.adapters.collector import _Collector
from clapsweep.data.adapters.metadata import _delimiter_hint, _read_csv, _read_text, _require
from clapsweep.data.adapters.teacher import AUDIOCAPS_SPLITS, _audiocaps_csv_dir
from clapsweep.data.manifest import DatasetError, Manifest


def audiocaps_youtube_ids(audiocaps_folder: Path) -> set[str]:
    """YouTube ids in the AudioCaps split CSVs the adapter reads (empty if AudioCaps is absent)."""
    csv_dir = _audiocaps_csv_dir(Path(audiocaps_folder))
    ids: set[str] = set()
    for split in AUDIOCAPS_SPLITS:
        csv_path = csv_dir / f"{split}.csv"
        if csv_path.is_file():
            rows = _read_csv("audiocaps", csv_path, ["youtube_id"])
            ids.update(row["youtube_id"] for row in rows)
    return ids


_AUDIOSET_COLUMNS = "YTID, start_seconds, end_seconds, positive_labels"


def _audioset_rows(path: Path) -> list[list[str]]:
    """The segment rows (YTID, start, end, labels) below the '#' comment lines."""
    rows = []
    reader = csv.reader(
        io.StringIO(_read_text("audioset", path), newline=""), skipinitialspace=True
    )
    try:
        for row in reader:
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3:
                start = f"audioset: {path} line {reader.line_num} has {len(row)} column(s)"
                hint = _delimiter_hint(",".join(row), ",", "the line")
                if hint:
                    raise DatasetError(f"{start}; {hint} between {_AUDIOSET_COLUMNS}")
                raise DatasetError(f"{start}; expected {_AUDIOSET_COLUMNS}")
            rows.append(row)
    except csv.Error as e:
        raise DatasetError(
            f"audioset: {path} line {reader.line_num} is not valid CSV ({e})"
        ) from None
    return rows


# audio/unbalanced_train/ (the documented place), then audiosetdl's data/<csv name>/audio/.
_AUDIOSET_AUDIO = ("audio/unbalanced_train", "data/unbalanced_train_segments/audio")


def _find_audioset(
    folders: list[_Folder], ytid: str, start: str, end: str
) -> tuple[str, Path] | None:
    """(convention, path) of a segment's file: <YTID> (official) or Y<YTID> (PANNs), else
    [Y]<YTID>_<start>_<end> in seconds or milliseconds (audiosetdl), folder by folder."""
    times = None  # parsed only when a bare name is not there
    for folder in (f for f in folders if f.stems):
        hit = _find([("official", folder.stems, ytid), ("Y<YTID>", folder.stems, f"Y{ytid}")])
        if hit is None:
            times = _segment_times(start, end) if times is None else times
            hit = _find_segment(folder, ytid, times, "YTID")
        if hit is not None:
            return hit
    return None


def audioset(folder: Path, audiocaps_folder: Path | None = None) -> Manifest:
    """AudioSet unbalanced train as unlabeled audio; clips also in AudioCaps are excluded.

    `audiocaps_folder` defaults to the sibling `<data root>/audiocaps`.
    """
    folder = Path(folder)
    out = _Collector("audioset", folder)
    csv_path = _require("audioset", folder / "unbalanced_train_segments.csv")
    rows = _audioset_rows(csv_path)
    excluded = audiocaps_youtube_ids(audiocaps_folder or folder.parent / "audiocaps")
    folders = [out.listing(folder / d) for d in _AUDIOSET_AUDIO]
    for ytid, start, end, *_ in rows:
        hit = _find_audioset(folders, ytid, start, end)
        convention, path = hit or ("", folder / _AUDIOSET_AUDIO[0] / f"{ytid}.wav")
        if ytid in excluded:
            out.skip(path, "in_audiocaps")
            continue
        # No label information is used: the record carries no captions and no labels.
        out.add(
            ytid, path, fold="unbalanced_train", source=f"youtube:{ytid}", convention=convention
        )
    return out.manifest()
