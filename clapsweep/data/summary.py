"""`clapsweep data summary`: load every dataset present under a data root and count what it holds.

Every dataset gets a row, a broken one included: its "errors" say what is wrong and how to fix
it (a missing metadata file, a folder unpacked one level too deep, an archive's folder that needs
renaming, audio that is all missing). `unusable(result)` names the datasets with errors; the CLI
exits 2 when there is any. With `deep`, every clip is also decoded (clapsweep.data.deep) and the
truncated, corrupt and silent files are counted per dataset; those are skipped in sweeps, so they
are not errors unless no clip of a dataset decodes.
"""

from __future__ import annotations

import io
import re
import shlex
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clapsweep.data import deep as deep_check
from clapsweep.data.adapters import LAYOUTS
from clapsweep.data.datasets import ROLES, load_dataset
from clapsweep.data.manifest import DatasetError, Manifest
from clapsweep.data.overlap import overlap

# The metadata file each dataset cannot be read without, relative to its folder: finding it one
# folder further down shows an archive unpacked one level too deep.
_METADATA = {
    "fsd50k": "FSD50K.ground_truth/dev.csv",
    "clotho": "clotho_captions_development.csv",
    "audiocaps": "dataset/train.csv",
    "macs": "MACS.yaml",
    "audioset": "unbalanced_train_segments.csv",
    "esc50": "meta/esc50.csv",
    "us8k": "metadata/UrbanSound8K.csv",
    "tut17": "TUT-acoustic-scenes-2017-development/meta.txt",
}
# Other names the archives (or their download pages) give a dataset's own folder, compared
# lowercased without "-", "_", "." and spaces; the dataset's own name is always compared too.
_ALIASES = {
    "esc50": {"esc50master"},
    "us8k": {"urbansound8k"},
    "clotho": {"clothov2", "clothov21"},
    "audiocaps": {"audiocapsmaster"},
    "tut17": {"tutacousticscenes2017"},
}
# Entries that belong inside a dataset's folder, as the archives unpack them.
_PARTS = {
    "fsd50k": r"FSD50K\.(dev_audio|eval_audio|ground_truth|metadata|doc)",
    "clotho": r"clotho_(audio|captions|metadata)_(development|validation|evaluation)(\.csv)?",
    "macs": r"MACS\.yaml",
    "audioset": r"(unbalanced_train|balanced_train|eval)_segments\.csv",
    "tut17": r"TUT-acoustic-scenes-2017-(development|evaluation)",
}
_COLUMNS = ("dataset", "role", "clips", "captions", "classes", "folds", "hours", "skipped")
_NUMBERS = {"clips", "captions", "classes", "hours", *deep_check.PROBLEMS}


def summarize(
    root: str | Path, *, deep: bool = False, jobs: int = 1, bad_files: str | Path | None = None
) -> dict[str, dict]:
    """{dataset: row} for each dataset present under `root`, or named by a misplaced folder.

    A loaded dataset's row has role, clips, captions, classes, folds, hours, skipped and
    convention; every row has "errors" (what makes it unusable) and "notes" (misplaced folders
    next to a usable dataset). With `deep`, rows gain truncated / corrupt / silent counts from
    decoding every clip on `jobs` processes, and `bad_files` (a path) receives them as CSV.
    Raises DatasetError only when the root holds nothing that looks like a dataset.
    """
    root = Path(root).absolute()
    hints = _misplaced(root)
    present = [name for name in ROLES if (root / name).is_dir() or name in hints]
    if not present:
        raise DatasetError(
            f"{root}: no dataset folder found; expected one or more of "
            f"{', '.join(ROLES)} (see docs/datasets.md)"
        )
    result, manifests = {}, {}
    for name in present:
        result[name], manifest = _row(root, name, hints.get(name, []))
        if manifest is not None:
            manifests[name] = manifest
    _add_overlap(result, manifests)
    if deep:
        _add_deep(result, manifests, jobs, bad_files)
    return result


def _add_overlap(result: dict[str, dict], manifests: dict[str, Manifest]) -> None:
    """Each task's leakage: its clips cut from a recording a teacher or wild clip also
    comes from (overlap.py), as the row's `overlap`."""
    teacher = [n for n, role in ROLES.items() if role == "teacher"]
    tasks = [n for n, role in ROLES.items() if role == "task"]
    wild = next(n for n, role in ROLES.items() if role == "wild")
    for task, counts in overlap(manifests, teacher, wild, tasks).items():
        result[task]["overlap"] = counts


def _overlap_line(row: dict) -> str | None:
    counts = row.get("overlap")
    if not counts or not counts["with_source"]:
        return None
    which = ", ".join(f"{n} {c}" for n, c in counts["by_teacher"].items() if c)
    return (
        f"{counts['teacher']} of {counts['clips']} clips share a source recording with teacher "
        f"data{f' ({which})' if which else ''} and {counts['wild']} with the wild pool"
        + ("; data.exclude_overlap: true drops those teacher clips" if counts["teacher"] else "")
    )


def unusable(result: dict[str, dict]) -> list[str]:
    """The datasets of a summarize() result that have errors."""
    return [name for name, row in result.items() if row["errors"]]


def render(result: dict[str, dict]) -> str:
    """The summary as a plain-text table, then each dataset's errors and notes."""
    rows = result.values()
    columns = list(_COLUMNS)
    columns += [p for p in deep_check.PROBLEMS if any(p in row for row in rows)]
    columns += ["convention"] if any(row.get("convention") for row in rows) else []
    table = Table(title="datasets")
    for column in [*columns, "status"]:
        table.add_column(column, justify="right" if column in _NUMBERS else "left")
    for name, row in result.items():
        table.add_row(name, *(_cell(row, c) for c in columns[1:]), _status(row))
    buffer = io.StringIO()
    console = Console(file=buffer, width=200, color_system=None, force_terminal=False)
    console.print(table)
    for name, row in result.items():
        for kind in ("errors", "notes"):
            for text in row[kind]:
                console.print(f"{name}: {kind[:-1]}: {text}", soft_wrap=True, highlight=False)
        leak = _overlap_line(row)
        if leak:
            console.print(f"{name}: leakage: {leak}", soft_wrap=True, highlight=False)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- loading


def _row(root: Path, name: str, hints: list[str]) -> tuple[dict, Manifest | None]:
    """(row, manifest) of one dataset; the manifest is None when the dataset did not load."""
    folder = root / name
    if not folder.is_dir():
        return {"role": ROLES[name], "errors": hints, "notes": []}, None
    try:
        manifest = load_dataset(name, root)
    except DatasetError as e:
        errors = [str(e), *_nested(folder, name), *hints]
        return {"role": ROLES[name], "errors": errors, "notes": []}, None
    row = _describe(name, manifest)
    row["errors"] = [] if manifest.records else [_no_clips(name, manifest)]
    row["notes"] = []
    # A misplaced folder next to a usable dataset is likely a leftover, not a blocker.
    row["errors" if row["errors"] else "notes"] += hints
    return row, manifest


def _fold_key(fold: str) -> tuple[int, int | str]:
    # Numeric folds in numeric order (1, 2, ..., 10), named splits after them alphabetically.
    return (0, int(fold)) if fold.isdigit() else (1, fold)


def _describe(name: str, manifest: Manifest) -> dict:
    # "unreadable: <why>" varies per file; count by the kind of reason before the colon.
    skipped = Counter(reason.split(":", 1)[0] for _, reason in manifest.skipped)
    return {
        "role": ROLES[name],
        "clips": len(manifest.records),
        "captions": sum(len(r.captions) for r in manifest.records),
        "classes": len({label for r in manifest.records for label in r.labels}),
        "folds": sorted({r.fold for r in manifest.records}, key=_fold_key),
        "hours": sum(r.duration for r in manifest.records) / 3600.0,
        "skipped": dict(sorted(skipped.items())),
        # getattr: adapters that predate naming conventions have no such attribute.
        "convention": getattr(manifest, "convention", "") or "",
    }


def _no_clips(name: str, manifest: Manifest) -> str:
    """The error for a dataset whose metadata loaded but whose audio gave no clip."""
    if not manifest.skipped:
        return f"{name}: the metadata under {manifest.root} lists no clip"
    reasons = Counter(reason.split(":", 1)[0] for _, reason in manifest.skipped)
    listed = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
    looked = getattr(manifest, "looked_for", "") or LAYOUTS[name]
    if not isinstance(looked, str):  # a list of folders or patterns
        looked = ", ".join(map(str, looked))
    convention = getattr(manifest, "convention", "")
    looked += f" (naming convention {convention})" if convention else ""
    return (
        f"{name}: no readable clip ({listed}, e.g. {manifest.skipped[0][0]}); looked for "
        f"{looked}; see docs/datasets.md"
    )


# ----------------------------------------------------------------------------- misplaced folders


def _normal(name: str) -> str:
    return re.sub(r"[-_. ]", "", name.lower())


def _misplaced(root: Path) -> dict[str, list[str]]:
    """{dataset: fixes} for entries of `root` that are a dataset's folder or part of one."""
    if not root.is_dir():
        return {}
    renames: dict[str, list[Path]] = {}
    parts: dict[str, list[Path]] = {}
    for entry in sorted(root.iterdir()):
        if entry.name in ROLES or entry.name.startswith("."):
            continue
        for name in ROLES:
            if entry.is_dir() and _normal(entry.name) in {name, *_ALIASES.get(name, ())}:
                if not _same(entry, root / name):  # one folder on a case-insensitive disk
                    renames.setdefault(name, []).append(entry)
            elif name in _PARTS and re.fullmatch(_PARTS[name], entry.name, re.IGNORECASE):
                parts.setdefault(name, []).append(entry)
    hints: dict[str, list[str]] = {}
    for name, entries in renames.items():
        hints.setdefault(name, []).extend(_rename_hint(root, name, e) for e in entries)
    for name, entries in parts.items():
        hints.setdefault(name, []).append(_move_hint(root, name, entries))
    return hints


def _same(a: Path, b: Path) -> bool:
    return b.exists() and a.samefile(b)


def _rename_hint(root: Path, name: str, entry: Path) -> str:
    target = root / name
    if target.exists():
        return (
            f"{entry.name}/ looks like {name}, and {name}/ exists too: "
            f"merge what {name}/ lacks into it and remove {entry.name}/"
        )
    return (
        f"{entry.name}/ looks like {name}: rename it to {name} "
        f"(mv {shlex.quote(str(entry))} {shlex.quote(str(target))})"
    )


def _move_hint(root: Path, name: str, entries: list[Path]) -> str:
    shown = ", ".join(e.name + ("/" if e.is_dir() else "") for e in entries)
    which = "it" if len(entries) == 1 else "them"
    target = shlex.quote(str(root / name))
    moved = " ".join(shlex.quote(str(e)) for e in entries)
    return (
        f"{shown} {'looks' if len(entries) == 1 else 'look'} like part of {name}: move {which} "
        f"into {name}/ (mkdir -p {target} && mv {moved} {target}/)"
    )


def _nested(folder: Path, name: str) -> list[str]:
    """A hint when a subfolder of `folder` holds the metadata `folder` itself should hold."""
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if (sub / _METADATA[name]).is_file():
            inner, outer = shlex.quote(str(sub)), shlex.quote(str(folder))
            return [
                f"{name}/{sub.name}/ holds {_METADATA[name]}: the archive was unpacked one level "
                f"too deep; move the contents of {name}/{sub.name} up one level "
                f"(mv {inner}/* {outer}/ && rmdir {inner})"
            ]
    return []


# ----------------------------------------------------------------------------- deep check


def _add_deep(
    result: dict[str, dict], manifests: dict[str, Manifest], jobs: int, bad_files
) -> None:
    bad = deep_check.check(manifests, jobs)
    tally = deep_check.counts(bad)
    for name in manifests:
        row = result[name]
        row.update(tally.get(name, dict.fromkeys(deep_check.PROBLEMS, 0)))
        if row["clips"] and row["truncated"] + row["corrupt"] == row["clips"]:
            row["errors"].append(f"{name}: none of the {row['clips']} clips decodes")
    if bad_files is not None:
        deep_check.write_csv(bad_files, bad)


# ----------------------------------------------------------------------------- table cells


def _cell(row: dict, column: str) -> str:
    if column == "role":
        return row["role"]
    if column not in row:
        return "-"
    value = row[column]
    if column == "folds":
        return " ".join(value) or "-"
    if column == "hours":
        return f"{value:.4g}"
    if column == "skipped":
        return ", ".join(f"{reason} {count}" for reason, count in value.items()) or "-"
    return str(value) if value != "" else "-"


def _status(row: dict) -> str:
    if row["errors"]:
        return "ERROR (below)"
    return "ok, see note" if row["notes"] else "ok"
