"""One adapter per dataset: read its on-disk layout (docs/datasets.md) into a Manifest.

Each adapter takes the dataset's own folder (`<data root>/<name>`), reads the metadata with the
csv module, json or yaml, finds every clip's audio file and probes its header, and returns one
Record per readable clip. Audio is looked up under the official names and under the names the
common download tools give it (aac-datasets, the AudioSet downloaders); the Manifest says which
convention matched most files. Missing, empty and unreadable audio files are skipped with a
reason, never fatal. A metadata file that is missing, not UTF-8, split by another delimiter or
missing a column raises DatasetError naming the file and the fix: nothing can be read without it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from pathlib import Path

import yaml

from clapsweep.audio import AudioError, audio_info
from clapsweep.data.manifest import DatasetError, Manifest, Record

# What each layout looks like, for error messages (the full spec is docs/datasets.md).
LAYOUTS = {
    "fsd50k": "the FSD50K layout (FSD50K.ground_truth/dev.csv, FSD50K.metadata/"
    "dev_clips_info_FSD50K.json, FSD50K.dev_audio/*.wav)",
    "clotho": "the Clotho v2.1 layout (clotho_captions_development.csv, development/*.wav; "
    "or aac-datasets' CLOTHO_v2.1/clotho_csv_files/, CLOTHO_v2.1/clotho_audio_files/)",
    "audiocaps": "the AudioCaps layout (dataset/train.csv or dataset2.0/train.csv, "
    "audio/train/<youtube_id>.wav; or aac-datasets' AUDIOCAPS/csv_files_v1/train.csv, "
    "AUDIOCAPS/audio_32000Hz/train/<youtube_id>_<start_time>.flac)",
    "macs": "the MACS layout (MACS.yaml, audio/*.wav; or aac-datasets' MACS/MACS.yaml, "
    "MACS/audio/*.wav)",
    "audioset": "the AudioSet layout (unbalanced_train_segments.csv, "
    "audio/unbalanced_train/<YTID>.wav)",
    "esc50": "the ESC-50 layout (meta/esc50.csv, audio/*.wav)",
    "us8k": "the UrbanSound8K layout (metadata/UrbanSound8K.csv, audio/fold<n>/*.wav)",
    "tut17": "the TUT Acoustic Scenes 2017 layout (TUT-acoustic-scenes-2017-development/meta.txt, "
    "TUT-acoustic-scenes-2017-development/audio/*.wav)",
}

# Where each adapter looks for a clip's audio, convention by convention (see expected_audio).
AUDIO_NAMES = {
    "fsd50k": "FSD50K.dev_audio/<fname>.wav and FSD50K.eval_audio/<fname>.wav (official)",
    "clotho": "<split>/<file_name> or clotho_audio_<split>/<file_name> (official), "
    "CLOTHO_v2.1/clotho_audio_files/<split>/<file_name> (aac-datasets)",
    "audiocaps": "audio/<split>/<youtube_id>.wav (official) or Y<youtube_id>.wav, "
    "AUDIOCAPS/audio_<rate>Hz/<split>/<youtube_id>_<start_time>.flac (aac-datasets), "
    "<audiocap_id>.ogg in either folder (audiocaps-download), "
    "audio/<split>/[Y]<youtube_id>_<start>_<end>.wav in seconds or milliseconds "
    "(AudioSet downloaders)",
    "macs": "audio/<filename> (official), MACS/audio/<filename> (aac-datasets), "
    "TAU-urban-acoustic-scenes-2019-development/audio/<filename> (TAU archive)",
    "audioset": "audio/unbalanced_train/ or data/unbalanced_train_segments/audio/ holding "
    "<YTID>.wav (official), Y<YTID>.wav, or [Y]<YTID>_<start>_<end>.wav with the times in "
    "seconds (30, 30.0, 30.000) or milliseconds (30000)",
    "esc50": "audio/<filename> (official)",
    "us8k": "audio/fold<fold>/<slice_file_name> (official)",
    "tut17": "TUT-acoustic-scenes-2017-<part>/audio/<file>.wav as listed in meta.txt (official)",
}

# File name suffixes looked up when a layout names a clip without its extension.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".opus")


def expected_audio(name: str) -> str:
    """Where, and under which file names, the adapter of dataset `name` looks for audio."""
    return AUDIO_NAMES[name]


# --- reading metadata -------------------------------------------------------------------------


def _not_found(dataset: str, path: Path) -> DatasetError:
    return DatasetError(
        f"{dataset}: {path} not found; expected {LAYOUTS[dataset]}, see docs/datasets.md"
    )


def _require(dataset: str, path: Path) -> Path:
    if not path.is_file():
        raise _not_found(dataset, path)
    return path


def _encoding_guess(data: bytes) -> str:
    """A likely encoding for the iconv command in the error message (never used to decode)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data:
        return "utf-16"
    for encoding in ("cp949", "cp1252"):
        try:
            data.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    return "latin1"


def _not_utf8(dataset: str, path: Path, data: bytes, start: int) -> DatasetError:
    line = data.count(b"\n", 0, start) + 1
    guess, quoted, tmp = _encoding_guess(data), shlex.quote(str(path)), "utf8.tmp"
    return DatasetError(
        f"{dataset}: {path} is not UTF-8 text (line {line}: byte 0x{data[start]:02x}); "
        f"re-save it as UTF-8: iconv -f {guess} -t utf-8 {quoted} > {tmp} && mv {tmp} {quoted} "
        f"({guess} is a guess from the bytes; check it)"
    )


def _read_text(dataset: str, path: Path, fallback: str = "") -> str:
    """The text of a metadata file, which must be UTF-8 (a leading byte-order mark is dropped).

    Encodings are never guessed: a file that is not UTF-8 is an error naming the line of the
    first bad byte and the command that fixes it. `fallback` is for a file whose publisher
    documents another encoding.
    """
    _require(dataset, path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{dataset}: {path} cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if fallback:
            return data.decode(fallback)
        raise _not_utf8(dataset, path, data, e.start) from None
    if "\x00" in text:  # UTF-16 without a byte-order mark decodes as UTF-8 with NUL bytes
        raise _not_utf8(dataset, path, data, data.index(b"\x00"))
    return text


_DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def _delimiter_hint(line: str, expected: str, what: str) -> str:
    """ "<what> looks ';'-separated; expected commas" when another delimiter outnumbers the
    expected one in `line`, else "". Counting is enough: a header or row split by the wrong
    delimiter holds the other one several times and the expected one rarely."""
    counts = {d: line.count(d) for d in _DELIMITERS}
    best = max(counts, key=counts.__getitem__)
    if counts[best] <= counts[expected]:
        return ""
    return f"{what} looks {best!r}-separated; expected {_DELIMITERS[expected]}"


def _read_csv(
    dataset: str, path: Path, columns: Iterable[str], fallback: str = ""
) -> list[dict[str, str]]:
    """Rows of a comma-separated UTF-8 CSV with a header; every name in `columns` must be a
    header column."""
    text = _read_text(dataset, path, fallback)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in reader.fieldnames or []]
        for column in columns:
            if column not in header:
                raise _no_column(dataset, path, column, header, text.partition("\n")[0])
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as e:
        raise DatasetError(
            f"{dataset}: {path} line {reader.line_num} is not valid CSV ({e})"
        ) from None


def _no_column(
    dataset: str, path: Path, column: str, header: list[str], first_line: str
) -> DatasetError:
    found = ", ".join(header) if header else "no header line"
    start = f"{dataset}: {path} has no column '{column}' (found: {found})"
    hint = _delimiter_hint(first_line, ",", "the header")
    if hint:
        return DatasetError(f"{start}; {hint}: re-save it comma-separated (docs/datasets.md)")
    return DatasetError(f"{start}; expected {LAYOUTS[dataset]}, see docs/datasets.md")


def _yaml_error(path: Path, error: yaml.YAMLError) -> DatasetError:
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f"line {mark.line + 1}: " if mark is not None else ""
    return DatasetError(f"macs: {path} is not valid YAML ({where}{_collapse(problem)})")


def _read_json(dataset: str, path: Path) -> object:
    try:
        return json.loads(_read_text(dataset, path))
    except json.JSONDecodeError as e:
        raise DatasetError(
            f"{dataset}: {path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
        ) from None


def _collapse(text: str) -> str:
    return " ".join(str(text).split())


def _freesound(value: str) -> str:
    """'freesound:<id>' for a Freesound sound id ('123', or '123.0' as some tools write it)."""
    match = re.fullmatch(r"(\d+)(?:\.0*)?", value.strip())
    return f"freesound:{int(match.group(1))}" if match else ""


# --- finding audio ----------------------------------------------------------------------------

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
        info_path = folder / "FSD50K.metadata" / f"{part}_clips_info_FSD50K.json"
        info = _read_json("fsd50k", info_path)
        if not isinstance(info, dict):
            raise DatasetError(
                f"fsd50k: {info_path} holds a JSON {type(info).__name__}; expected an object "
                '{"<fname>": {"title", "description", ...}}'
            )
        audio_dir = folder / f"FSD50K.{part}_audio"
        audio = out.listing(audio_dir).stems
        for row in rows:
            fname = row["fname"]
            path = audio.get(fname, audio_dir / f"{fname}.wav")
            fold = row["split"] if part == "dev" else "eval"
            caption = _fsd50k_caption(info.get(fname))
            # FSD50K clips are whole Freesound sounds: fname is the Freesound id.
            out.add(fname, path, captions=[caption], fold=fold, source=_freesound(fname))
    return out.manifest()


CLOTHO_SPLITS = ("development", "validation", "evaluation")
# aac-datasets keeps Clotho v2.1 in CLOTHO_v2.1/ (clotho_csv_files/, clotho_audio_files/<split>/);
# <data root>/clotho may hold that folder or be it.
_CLOTHO_AAC = ("CLOTHO_v2.1", ".")


def _clotho_csv_dir(folder: Path) -> Path:
    """The folder holding clotho_captions_development.csv: the dataset folder (official) or
    aac-datasets' clotho_csv_files/ (the official place when neither has it)."""
    places = [folder] + [folder / aac / "clotho_csv_files" for aac in _CLOTHO_AAC]
    found = (d for d in places if (d / "clotho_captions_development.csv").is_file())
    return next(found, folder)


def _clotho_audio(out: _Collector, split: str) -> list[tuple[str, _Folder]]:
    folder = out.folder
    dirs = [("official", folder / split), ("official", folder / f"clotho_audio_{split}")]
    dirs += [("aac-datasets", folder / aac / "clotho_audio_files" / split) for aac in _CLOTHO_AAC]
    return [(convention, out.listing(d)) for convention, d in dirs]


def _clotho_sources(csv_dir: Path, split: str) -> dict[str, str]:
    """file_name -> "freesound:<sound_id>" from the optional clotho_metadata_<split>.csv."""
    path = csv_dir / f"clotho_metadata_{split}.csv"
    if not path.is_file():
        return {}
    # Clotho v2/v2.1 publish their metadata CSVs in ISO-8859-1 (aac-datasets reads them so);
    # that is the file's documented encoding, not a guess.
    rows = _read_csv("clotho", path, ["file_name", "sound_id"], fallback="iso-8859-1")
    return {row["file_name"]: _freesound(row["sound_id"]) for row in rows}


def clotho(folder: Path) -> Manifest:
    """Clotho v2.1: five captions per clip; fold = split (development required, others optional)."""
    folder = Path(folder)
    out = _Collector("clotho", folder)
    csv_dir = _clotho_csv_dir(folder)
    for split in CLOTHO_SPLITS:
        csv_path = csv_dir / f"clotho_captions_{split}.csv"
        if split != "development" and not csv_path.is_file():
            continue
        rows = _read_csv("clotho", csv_path, ["file_name", "caption_1"])
        sources = _clotho_sources(csv_dir, split)
        audio = _clotho_audio(out, split)
        for row in rows:
            captions = [v for k, v in row.items() if k.startswith("caption_")]
            name = row["file_name"]
            hit = _find((c, f.names, name) for c, f in audio)
            convention, path = hit or ("", folder / split / name)
            out.add(
                Path(name).stem,
                path,
                captions=captions,
                fold=split,
                source=sources.get(name, ""),
                convention=convention,
            )
    return out.manifest()


AUDIOCAPS_SPLITS = ("train", "val", "test")
# Where the split CSVs may be, in order of preference: the official repository's v1 folder (the
# paper's AudioCaps), its AudioCaps 2.0 folder, then aac-datasets' places (csv_files_v1/, its
# older v1 place, csv_files_v2/), under AUDIOCAPS/ or with <data root>/audiocaps being it.
_AUDIOCAPS_CSV_DIRS = (
    "dataset",
    "dataset2.0",
    "AUDIOCAPS/csv_files_v1",
    "AUDIOCAPS",
    "AUDIOCAPS/csv_files_v2",
    "csv_files_v1",
    ".",
    "csv_files_v2",
)


def _audiocaps_csv_dir(folder: Path) -> Path:
    """The first place holding train.csv (the official dataset/ when none does)."""
    found = (folder / d for d in _AUDIOCAPS_CSV_DIRS if (folder / d / "train.csv").is_file())
    return next(found, folder / "dataset")


def _audiocaps_audio(out: _Collector, split: str) -> tuple[_Folder, list[_Folder]]:
    """The official audio/<split>/ folder and aac-datasets' audio_<rate>Hz/<split>/ folders."""
    aac = sorted(out.folder.glob("AUDIOCAPS/audio_*Hz")) + sorted(out.folder.glob("audio_*Hz"))
    return out.listing(out.folder / "audio" / split), [out.listing(d / split) for d in aac]


def _find_audiocaps(
    official: _Folder, aac: list[_Folder], ytid: str, start: str, caption_ids: list[str]
) -> tuple[str, Path] | None:
    names = [("official", official.stems, ytid), ("Y<youtube_id>", official.stems, f"Y{ytid}")]
    names += [
        ("aac-datasets", f.stems, f"{ytid}_{s}") for f in aac for s in _seconds_spellings(start)
    ]
    # audiocaps-download saves one copy per caption row, named by its audiocap_id.
    names += [("audiocaps-download", f.stems, cid) for f in (official, *aac) for cid in caption_ids]
    hit = _find(names)
    if hit is None:
        # Clips reused from an AudioSet download: the 10 s segment's <start>_<end> name.
        begin = _decimal(start)
        end = "" if begin is None else str(begin + 10)
        hit = _find_segment(official, ytid, _segment_times(start, end), "youtube_id")
    return hit


def audiocaps(folder: Path) -> Manifest:
    """AudioCaps (v1, else 2.0): rows sharing a YouTube id form one clip with several
    captions; fold = split."""
    folder = Path(folder)
    out = _Collector("audiocaps", folder)
    csv_dir = _audiocaps_csv_dir(folder)
    for split in AUDIOCAPS_SPLITS:
        csv_path = csv_dir / f"{split}.csv"
        if split != "train" and not csv_path.is_file():
            continue
        captions: dict[str, list[str]] = {}
        starts: dict[str, str] = {}
        caption_ids: dict[str, list[str]] = {}
        for row in _read_csv("audiocaps", csv_path, ["youtube_id", "caption"]):
            ytid = row["youtube_id"]
            captions.setdefault(ytid, []).append(row["caption"])
            starts.setdefault(ytid, row.get("start_time", ""))
            if row.get("audiocap_id"):
                caption_ids.setdefault(ytid, []).append(row["audiocap_id"])
        official, aac = _audiocaps_audio(out, split)
        for ytid, texts in captions.items():
            ids = caption_ids.get(ytid, [])
            hit = _find_audiocaps(official, aac, ytid, starts[ytid], ids)
            convention, path = hit or ("", folder / "audio" / split / f"{ytid}.wav")
            out.add(
                ytid,
                path,
                captions=texts,
                fold=split,
                source=f"youtube:{ytid}",
                convention=convention,
            )
    return out.manifest()


def _macs_key(path: Path, entry: object, key: str) -> object:
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(
            f"macs: {path} has an entry without '{key}'; expected {LAYOUTS['macs']}, "
            "see docs/datasets.md"
        )
    return entry[key]


def _macs_yaml(folder: Path) -> Path:
    """MACS.yaml in the folder (official) or in aac-datasets' MACS/ folder."""
    aac = folder / "MACS" / "MACS.yaml"
    return aac if not (folder / "MACS.yaml").is_file() and aac.is_file() else folder / "MACS.yaml"


def macs(folder: Path) -> Manifest:
    """MACS: the annotators' sentences for TAU Urban Acoustic Scenes 2019 clips; fold train."""
    folder = Path(folder)
    out = _Collector("macs", folder)
    yaml_path = _macs_yaml(folder)
    text = _read_text("macs", yaml_path)
    # The C loader (when built) is the same safe loader, many times faster on the 4 MB file.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as e:
        raise _yaml_error(yaml_path, e) from None
    audio = [
        ("official", out.listing(folder / "audio")),
        ("aac-datasets", out.listing(folder / "MACS" / "audio")),
        (
            "TAU archive",
            out.listing(folder / "TAU-urban-acoustic-scenes-2019-development" / "audio"),
        ),
    ]
    files = _macs_key(yaml_path, data, "files")
    for entry in files or []:
        filename = str(_macs_key(yaml_path, entry, "filename"))
        annotations = _macs_key(yaml_path, entry, "annotations") or []
        sentences = [str(_macs_key(yaml_path, a, "sentence")) for a in annotations]
        hit = _find((c, f.names, filename) for c, f in audio)
        convention, path = hit or ("", folder / "audio" / filename)
        out.add(Path(filename).stem, path, captions=sentences, fold="train", convention=convention)
    return out.manifest()


# --- in-the-wild pool -------------------------------------------------------------------------


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


# --- downstream tasks -------------------------------------------------------------------------


def esc50(folder: Path) -> Manifest:
    """ESC-50: label = category, folds 1-5; source = the Freesound clip (src_file)."""
    folder = Path(folder)
    out = _Collector("esc50", folder)
    rows = _read_csv("esc50", folder / "meta" / "esc50.csv", ["filename", "fold", "category"])
    for row in rows:
        name = row["filename"]
        path = folder / "audio" / name
        source = _freesound(row.get("src_file", ""))
        out.add(Path(name).stem, path, labels=[row["category"]], fold=row["fold"], source=source)
    return out.manifest()


def us8k(folder: Path) -> Manifest:
    """UrbanSound8K: label = class, folds 1-10 (audio/fold<n>/); source = fsID."""
    folder = Path(folder)
    out = _Collector("us8k", folder)
    csv_path = folder / "metadata" / "UrbanSound8K.csv"
    rows = _read_csv("us8k", csv_path, ["slice_file_name", "fold", "class"])
    for row in rows:
        name = row["slice_file_name"]
        path = folder / "audio" / f"fold{row['fold']}" / name
        source = _freesound(row.get("fsID", ""))
        out.add(Path(name).stem, path, labels=[row["class"]], fold=row["fold"], source=source)
    return out.manifest()


def _tut17_rows(path: Path) -> list[tuple[str, str]]:
    """(relative audio path, scene) from a tab-separated meta.txt."""
    rows = []
    for number, line in enumerate(_read_text("tut17", path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) < 2 or not fields[1]:
            start = f"tut17: {path} line {number} has no scene column"
            hint = _delimiter_hint(line, "\t", "the line")
            if hint:
                raise DatasetError(f"{start}; {hint} between audio/<file>.wav, scene, location")
            raise DatasetError(f"{start}; expected audio/<file>.wav<TAB>scene<TAB>location")
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
        for relative, scene in _tut17_rows(meta):
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
