"""The teacher datasets, whose captions train the teacher: FSD50K, Clotho, AudioCaps, MACS.

Each is read in its official layout and in the layouts of the common download tools
(aac-datasets, audiocaps-download, AudioSet downloaders); see AUDIO_NAMES in layouts.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from clapsweep.data.adapters.audiofiles import (
    _decimal,
    _find,
    _find_segment,
    _Folder,
    _seconds_spellings,
    _segment_times,
)
from clapsweep.data.adapters.collector import _Collector
from clapsweep.data.adapters.html_text import _strip_html
from clapsweep.data.adapters.layouts import LAYOUTS
from clapsweep.data.adapters.metadata import (
    _freesound,
    _read_csv,
    _read_json,
    _read_text,
    _yaml_error,
)
from clapsweep.data.manifest import DatasetError, Manifest


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
