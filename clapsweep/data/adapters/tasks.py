"""The zero-shot downstream tasks: ESC-50, UrbanSound8K, TUT Acoustic Scenes 2017 (labels)."""

from __future__ import annotations

from pathlib import Path

from clapsweep.data.adapters.collector import _Collector
from clapsweep.data.adapters.metadata import _delimiter_hint, _freesound, _read_csv, _read_text
from clapsweep.data.manifest import DatasetError, Manifest


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
