"""One adapter per dataset: read the official on-disk layout (docs/datasets.md) into a Manifest.

Each adapter takes the dataset's own folder (`<data root>/<name>`), reads the metadata with the
csv module, json or yaml, probes every audio file's header and returns one Record per readable
clip. Missing, empty and unreadable audio files are skipped with a reason, never fatal; a missing
metadata file or column raises DatasetError naming the file, since nothing can be read without it.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path

import yaml

from clapsweep.audio import AudioError, audio_info
from clapsweep.data.manifest import DatasetError, Manifest, Record

# What each layout looks like, for error messages (the full spec is docs/datasets.md).
LAYOUTS = {
    "fsd50k": "the FSD50K layout (FSD50K.ground_truth/dev.csv, FSD50K.metadata/"
    "dev_clips_info_FSD50K.json, FSD50K.dev_audio/*.wav)",
    "clotho": "the Clotho v2.1 layout (clotho_captions_development.csv, development/*.wav)",
    "audiocaps": "the AudioCaps layout (dataset/train.csv, audio/train/<youtube_id>.wav)",
    "macs": "the MACS layout (MACS.yaml, audio/*.wav)",
    "audioset": "the AudioSet layout (unbalanced_train_segments.csv, "
    "audio/unbalanced_train/<YTID>.wav)",
    "esc50": "the ESC-50 layout (meta/esc50.csv, audio/*.wav)",
    "us8k": "the UrbanSound8K layout (metadata/UrbanSound8K.csv, audio/fold<n>/*.wav)",
    "tut17": "the TUT Acoustic Scenes 2017 layout (TUT-acoustic-scenes-2017-development/meta.txt, "
    "TUT-acoustic-scenes-2017-development/audio/*.wav)",
}

# File name suffixes looked up when a layout names a clip without its extension.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".opus")


# --- shared helpers ---------------------------------------------------------------------------


def _not_found(dataset: str, path: Path) -> DatasetError:
    return DatasetError(
        f"{dataset}: {path} not found; expected {LAYOUTS[dataset]}, see docs/datasets.md"
    )


def _require(dataset: str, path: Path) -> Path:
    if not path.is_file():
        raise _not_found(dataset, path)
    return path


def _read_csv(dataset: str, path: Path, columns: Iterable[str]) -> list[dict[str, str]]:
    """Rows of a CSV with a header; every name in `columns` must be a header column."""
    _require(dataset, path)
    # utf-8-sig: some of these CSVs were saved with a byte-order mark before the header.
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [name.strip() for name in reader.fieldnames or []]
        for column in columns:
            if column not in header:
                raise DatasetError(
                    f"{dataset}: {path} has no column '{column}' (found: {', '.join(header)}); "
                    f"expected {LAYOUTS[dataset]}, see docs/datasets.md"
                )
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def _collapse(text: str) -> str:
    return " ".join(str(text).split())


def _audio_index(folder: Path) -> dict[str, Path]:
    """Map file stem -> path for the audio files directly in `folder` (empty if it is absent)."""
    if not folder.is_dir():
        return {}
    return {
        p.stem: p
        for p in sorted(folder.iterdir())
        if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    }


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
    ) -> None:
        record_id = f"{self.dataset}/{clip_id}"
        if record_id in self.records:
            self.skip(path, "duplicate id")
            return
        if not path.is_file():
            self.skip(path, "missing")
            return
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
        )

    def manifest(self) -> Manifest:
        return Manifest(
            dataset=self.dataset,
            root=str(self.folder.absolute()),
            records=[self.records[k] for k in sorted(self.records)],
            skipped=sorted(self.skipped),
        )


# --- teacher datasets -------------------------------------------------------------------------


# Tags that sit inside a line of text (no word break); any other tag (<br />, <p>, <li>, ...)
# separates the words on either side of it.
_INLINE_TAGS = frozenset(
    "a abbr b big cite code em font i kbd mark q s small span strike strong sub sup tt u".split()
)
# A bare URL, with the whitespace before it; trailing punctuation stays with the sentence.
_URL = re.compile(r"""\s*\b(?:https?://|www\.)\S*[^\s.,;:!?'")\]]""", re.IGNORECASE)
# Brackets left empty once the URL inside them is gone: "(http://x.org)".
_EMPTY_BRACKETS = re.compile(r"\s*(?:\(\s*\)|\[\s*\])")


class _VisibleText(HTMLParser):
    """The text a browser would show: tag contents kept, tags dropped, entities unescaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities in text go through html.unescape
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in _INLINE_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag not in _INLINE_TAGS:
            self.parts.append(" ")


def _strip_html(text: str) -> str:
    """Freesound's HTML description as plain text: a link keeps its text and loses its URL, tags
    go, entities are unescaped, bare URLs are removed and whitespace is collapsed."""
    parser = _VisibleText()
    parser.feed(str(text))
    parser.close()
    plain = _URL.sub("", "".join(parser.parts))
    return _collapse(_EMPTY_BRACKETS.sub("", plain))


def _fsd50k_caption(info: object) -> str:
    # The Freesound description is the richer text; a few clips only have a title (or only a
    # link as description). Both are HTML as typed on freesound.org, so the markup is stripped.
    if not isinstance(info, dict):
        return ""
    return _strip_html(info.get("description") or "") or _strip_html(info.get("title") or "")


def fsd50k(folder: Path) -> Manifest:
    """FSD50K: caption = Freesound description (else title); fold dev/val/eval."""
    folder = Path(folder)
    out = _Collector("fsd50k", folder)
    parts = [("dev", True), ("eval", False)]
    for part, required in parts:
        csv_path = folder / "FSD50K.ground_truth" / f"{part}.csv"
        if not required and not csv_path.is_file():
            continue
        columns = ["fname", "split"] if part == "dev" else ["fname"]
        rows = _read_csv("fsd50k", csv_path, columns)
        info_path = _require(
            "fsd50k", folder / "FSD50K.metadata" / f"{part}_clips_info_FSD50K.json"
        )
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"fsd50k: {info_path} is not valid JSON ({e})") from e
        audio_dir = folder / f"FSD50K.{part}_audio"
        audio = _audio_index(audio_dir)
        for row in rows:
            fname = row["fname"]
            path = audio.get(fname, audio_dir / f"{fname}.wav")
            fold = row["split"] if part == "dev" else "eval"
            out.add(fname, path, captions=[_fsd50k_caption(info.get(fname))], fold=fold)
    return out.manifest()


def clotho(folder: Path) -> Manifest:
    """Clotho v2.1: five captions per clip; fold = split (development required, others optional)."""
    folder = Path(folder)
    out = _Collector("clotho", folder)
    for split in ("development", "validation", "evaluation"):
        csv_path = folder / f"clotho_captions_{split}.csv"
        if split != "development" and not csv_path.is_file():
            continue
        rows = _read_csv("clotho", csv_path, ["file_name", "caption_1"])
        audio_dir = folder / split
        if not audio_dir.is_dir() and (folder / f"clotho_audio_{split}").is_dir():
            audio_dir = folder / f"clotho_audio_{split}"
        for row in rows:
            captions = [v for k, v in row.items() if k.startswith("caption_")]
            name = row["file_name"]
            out.add(Path(name).stem, audio_dir / name, captions=captions, fold=split)
    return out.manifest()


def audiocaps(folder: Path) -> Manifest:
    """AudioCaps: rows sharing a YouTube id form one clip with several captions; fold = split."""
    folder = Path(folder)
    out = _Collector("audiocaps", folder)
    for split in ("train", "val", "test"):
        csv_path = folder / "dataset" / f"{split}.csv"
        if split != "train" and not csv_path.is_file():
            continue
        captions: dict[str, list[str]] = {}
        for row in _read_csv("audiocaps", csv_path, ["youtube_id", "caption"]):
            captions.setdefault(row["youtube_id"], []).append(row["caption"])
        audio_dir = folder / "audio" / split
        audio = _audio_index(audio_dir)
        for ytid, texts in captions.items():
            path = audio.get(ytid) or audio.get(f"Y{ytid}") or audio_dir / f"{ytid}.wav"
            out.add(ytid, path, captions=texts, fold=split)
    return out.manifest()


def _macs_key(path: Path, entry: object, key: str) -> object:
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(
            f"macs: {path} has an entry without '{key}'; expected {LAYOUTS['macs']}, "
            "see docs/datasets.md"
        )
    return entry[key]


def macs(folder: Path) -> Manifest:
    """MACS: the annotators' sentences for TAU Urban Acoustic Scenes 2019 clips; fold train."""
    folder = Path(folder)
    out = _Collector("macs", folder)
    yaml_path = _require("macs", folder / "MACS.yaml")
    # The C loader (when built) is the same safe loader, many times faster on the 4 MB file.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(yaml_path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as e:
        raise DatasetError(f"macs: {yaml_path} is not valid YAML ({e})") from e
    files = _macs_key(yaml_path, data, "files")
    for entry in files or []:
        filename = str(_macs_key(yaml_path, entry, "filename"))
        annotations = _macs_key(yaml_path, entry, "annotations") or []
        sentences = [str(_macs_key(yaml_path, a, "sentence")) for a in annotations]
        out.add(Path(filename).stem, folder / "audio" / filename, captions=sentences, fold="train")
    return out.manifest()


# --- in-the-wild pool -------------------------------------------------------------------------


def audiocaps_youtube_ids(audiocaps_folder: Path) -> set[str]:
    """YouTube ids in <audiocaps>/dataset/*.csv (empty if AudioCaps is absent)."""
    ids: set[str] = set()
    for csv_path in sorted((Path(audiocaps_folder) / "dataset").glob("*.csv")):
        ids.update(row["youtube_id"] for row in _read_csv("audiocaps", csv_path, ["youtube_id"]))
    return ids


def _audioset_rows(path: Path) -> list[list[str]]:
    """The segment rows (YTID, start, end, labels) below the '#' comment lines."""
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f, skipinitialspace=True), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 3:
                raise DatasetError(
                    f"audioset: {path} line {number} has {len(row)} column(s); expected "
                    "YTID, start_seconds, end_seconds, positive_labels"
                )
            rows.append(row)
    return rows


def _seconds_spellings(value: str) -> list[str]:
    """How download tools spell a segment time in file names: as in the CSV, 30.000, 30.0, 30."""
    spellings = [value]
    try:
        number = float(value)
    except ValueError:
        return spellings
    spellings += [f"{number:.3f}", f"{number:.1f}", f"{number:g}"]
    if number.is_integer():
        spellings.append(str(int(number)))
    return list(dict.fromkeys(spellings))


def audioset(folder: Path, audiocaps_folder: Path | None = None) -> Manifest:
    """AudioSet unbalanced train as unlabeled audio; clips also in AudioCaps are excluded.

    `audiocaps_folder` defaults to the sibling `<data root>/audiocaps`.
    """
    folder = Path(folder)
    out = _Collector("audioset", folder)
    csv_path = _require("audioset", folder / "unbalanced_train_segments.csv")
    rows = _audioset_rows(csv_path)
    excluded = audiocaps_youtube_ids(audiocaps_folder or folder.parent / "audiocaps")
    audio_dir = folder / "audio" / "unbalanced_train"
    audio = _audio_index(audio_dir)
    for ytid, start, end, *_ in rows:
        names = [ytid, f"Y{ytid}"]
        names += [
            f"Y{ytid}_{s}_{e}" for s in _seconds_spellings(start) for e in _seconds_spellings(end)
        ]
        path = next((audio[n] for n in names if n in audio), audio_dir / f"{ytid}.wav")
        if ytid in excluded:
            out.skip(path, "in_audiocaps")
            continue
        # No label information is used: the record carries no captions and no labels.
        out.add(ytid, path, fold="unbalanced_train")
    return out.manifest()


# --- downstream tasks -------------------------------------------------------------------------


def esc50(folder: Path) -> Manifest:
    """ESC-50: label = category, folds 1-5."""
    folder = Path(folder)
    out = _Collector("esc50", folder)
    rows = _read_csv("esc50", folder / "meta" / "esc50.csv", ["filename", "fold", "category"])
    for row in rows:
        name = row["filename"]
        path = folder / "audio" / name
        out.add(Path(name).stem, path, labels=[row["category"]], fold=row["fold"])
    return out.manifest()


def us8k(folder: Path) -> Manifest:
    """UrbanSound8K: label = class, folds 1-10 (audio/fold<n>/)."""
    folder = Path(folder)
    out = _Collector("us8k", folder)
    csv_path = folder / "metadata" / "UrbanSound8K.csv"
    rows = _read_csv("us8k", csv_path, ["slice_file_name", "fold", "class"])
    for row in rows:
        name = row["slice_file_name"]
        path = folder / "audio" / f"fold{row['fold']}" / name
        out.add(Path(name).stem, path, labels=[row["class"]], fold=row["fold"])
    return out.manifest()


def _tut17_rows(path: Path) -> list[tuple[str, str]]:
    """(relative audio path, scene) from a tab-separated meta.txt."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 2 or not fields[1]:
            raise DatasetError(
                f"tut17: {path} line {number} has no scene column; expected "
                "audio/<file>.wav<TAB>scene<TAB>location"
            )
        rows.append((fields[0], fields[1]))
    return rows


def tut17(folder: Path) -> Manifest:
    """TUT Acoustic Scenes 2017, development and evaluation pooled; label = scene.

    Ids carry the part ("tut17/development/a001_0_10") because the two parts name files
    independently. The evaluation part is optional (its meta.txt ships in a separate archive).
    """
    folder = Path(folder)
    out = _Collector("tut17", folder)
    for part in ("development", "evaluation"):
        part_dir = folder / f"TUT-acoustic-scenes-2017-{part}"
        meta = part_dir / "meta.txt"
        if part == "evaluation" and not meta.is_file():
            continue
        for relative, scene in _tut17_rows(_require("tut17", meta)):
            path = part_dir / relative
            out.add(f"{part}/{Path(relative).stem}", path, labels=[scene], fold=part)
    return out.manifest()


ADAPTERS = {
    "fsd50k": fsd50k,
    "clotho": clotho,
    "audiocaps": audiocaps,
    "macs": macs,
    "audioset": audioset,
    "esc50": esc50,
    "us8k": us8k,
    "tut17": tut17,
}
