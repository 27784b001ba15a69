"""User-defined zero-shot tasks: a CSV manifest `path,label[,fold]` (docs/datasets.md).

A sweep names one under `data.custom_tasks.<name>: {csv: FILE, prompt: TEMPLATE}` and lists
`<name>` in `data.tasks`. Paths in the CSV are relative to the CSV's folder; without a fold
column every clip is in fold "1". The prompt template holds `{label}`; without one the
built-in policy (clapsweep.metrics.prompt_for) applies.

Stage configs carry the definition as `data.custom_tasks: {name: {csv: ABSOLUTE, prompt}}`;
the csv path stays out of stage keys (like the data root), the content enters them through
`custom_task_fingerprint` (the CSV's bytes and each listed audio file's path and size) and
the prompt directly.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from pathlib import Path, PurePosixPath

from clapsweep.data.adapters.collector import _Collector
from clapsweep.data.adapters.metadata import read_utf8
from clapsweep.data.manifest import DatasetError, Manifest
from clapsweep.metrics import prompt_for

COLUMNS = ("path", "label", "fold")
REQUIRED = ("path", "label")
DEFAULT_FOLD = "1"
LABEL = "{label}"
_VERSION = b"clapsweep-custom-task-fingerprint-v1\n"


def read_rows(name: str, csv_path: str | Path) -> list[tuple[int, str, str, str]]:
    """(line, relative path, label, fold) for each row of a custom task CSV; any problem (no
    file, not UTF-8, a wrong header, an empty field) is a DatasetError naming file and line."""
    path = Path(csv_path)
    if not path.is_file():
        raise DatasetError(
            f"{name}: {path} not found; expected a CSV with header path,label[,fold]"
        )
    text = read_utf8(name, path)
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise DatasetError(f"{name}: {path} line 1: no header; expected path,label[,fold]")
        for column in header:
            if column not in COLUMNS:
                raise DatasetError(
                    f"{name}: {path} line 1: unknown column {column!r}; expected path,label[,fold]"
                )
        if len(set(header)) != len(header):
            raise DatasetError(f"{name}: {path} line 1: a column is named twice: {header}")
        for column in REQUIRED:
            if column not in header:
                raise DatasetError(
                    f"{name}: {path} line 1: no column {column!r}; expected path,label[,fold]"
                )
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                raise DatasetError(
                    f"{name}: {path} line {line}: {len(fields)} field(s), expected "
                    f"{len(header)} ({','.join(header)})"
                )
            row = dict(zip(header, (f.strip() for f in fields), strict=True))
            for column in header:
                if not row[column]:
                    raise DatasetError(f"{name}: {path} line {line}: empty {column}")
            if PurePosixPath(row["path"]).is_absolute() or Path(row["path"]).is_absolute():
                raise DatasetError(
                    f"{name}: {path} line {line}: path {row['path']!r} is absolute; give it "
                    "relative to the CSV's folder"
                )
            rows.append((line, row["path"], row["label"], row.get("fold", DEFAULT_FOLD)))
    except csv.Error as e:
        raise DatasetError(
            f"{name}: {path} line {reader.line_num} is not valid CSV ({e})"
        ) from None
    if not rows:
        raise DatasetError(f"{name}: {path} lists no clips (only a header)")
    return rows


def load_custom_task(name: str, csv_path: str | Path) -> Manifest:
    """The manifest of a custom task: one record per readable listed clip (id
    "<name>/<relative path>"); missing, empty, unreadable and repeated files are skipped."""
    path = Path(csv_path).absolute()
    folder = path.parent
    out = _Collector(name, folder)
    for _, relative, label, fold in read_rows(name, path):
        clip = PurePosixPath(relative.replace("\\", "/")).as_posix()
        out.add(clip, Path(os.path.normpath(folder / relative)), labels=[label], fold=fold)
    top = out.matched.most_common(1)
    return Manifest(
        dataset=name,
        root=str(folder),
        records=[out.records[k] for k in sorted(out.records)],
        skipped=sorted(out.skipped),
        convention=top[0][0] if top else "",
        looked_for=f"the paths listed in {path}, relative to {folder}",
    )


def custom_task_fingerprint(name: str, csv_path: str | Path) -> str:
    """16 hex chars of sha256 over the CSV's bytes and each listed file's relative path and
    size (or that it is missing); independent of where the CSV lives."""
    path = Path(csv_path).absolute()
    rows = read_rows(name, path)
    h = hashlib.sha256(_VERSION)
    h.update(hashlib.sha256(path.read_bytes()).hexdigest().encode() + b"\n")
    for _, relative, _, _ in rows:
        try:
            size = str(os.stat(path.parent / relative).st_size).encode()
        except OSError:
            size = b"missing"
        h.update(relative.encode() + b"\0" + size + b"\n")
    return h.hexdigest()[:16]


def task_prompt(template: str | None, label: str) -> str:
    """The zero-shot prompt of one class: the template with {label} replaced, else the
    built-in policy."""
    return template.replace(LABEL, label) if template else prompt_for(label)
