"""`clapsweep data summary`: load every dataset present under a data root and count what it holds."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from clapsweep.data.datasets import ROLES, load_dataset
from clapsweep.data.manifest import DatasetError, Manifest


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
    }


def summarize(root: str | Path) -> dict[str, dict]:
    """{dataset: {role, clips, captions, classes, folds, hours, skipped}} for each folder present."""
    root = Path(root).absolute()
    present = [name for name in ROLES if (root / name).is_dir()]
    if not present:
        raise DatasetError(
            f"{root}: no dataset folder found; expected one or more of "
            f"{', '.join(ROLES)} (see docs/datasets.md)"
        )
    return {name: _describe(name, load_dataset(name, root)) for name in present}


def render(result: dict[str, dict]) -> str:
    """The summary as a plain-text table."""
    table = Table(title="datasets")
    for column in ("dataset", "role", "clips", "captions", "classes", "folds", "hours", "skipped"):
        justify = "right" if column in ("clips", "captions", "classes", "hours") else "left"
        table.add_column(column, justify=justify)
    for name, info in result.items():
        skipped = ", ".join(f"{reason} {count}" for reason, count in info["skipped"].items())
        table.add_row(
            name,
            info["role"],
            str(info["clips"]),
            str(info["captions"]),
            str(info["classes"]),
            " ".join(info["folds"]),
            f"{info['hours']:.4g}",
            skipped or "-",
        )
    buffer = io.StringIO()
    Console(file=buffer, width=140, color_system=None, force_terminal=False).print(table)
    return buffer.getvalue()
