"""Cheap content identity of a dataset folder, for stage keys.

A stage's key has to change when the data it reads changes. `dataset_fingerprint` summarises what
an adapter would read from one dataset folder (`<data root>/<name>/`) without reading any audio:

* every file's path relative to the folder (POSIX form, walked in sorted byte order) and its size
  in bytes, so adding, removing, renaming, truncating or re-encoding a clip changes it;
* the full sha256 of every metadata file (suffixes in METADATA_SUFFIXES: the files that hold
  labels, captions and folds), so editing one label changes it even when the size stays the same.

Deliberately left out:

* modification times: copies, `cp -r` and rsync change them without changing the data, and the
  same data under two roots (different absolute paths) must give the same fingerprint;
* audio contents: an audio file rewritten with different samples but exactly the same size is
  NOT detected (out of scope: reading 2 M clips would take hours, not seconds);
* hidden entries (names starting with '.', e.g. .DS_Store, .git, .cache) and empty folders,
  which no adapter reads; and anything that is neither a file nor a folder (sockets, fifos).

Symlinks are followed: a symlinked file counts with its target's size (a broken one is recorded
as broken), and a symlinked folder is walked like a real one, except that a folder that is already
one of its own ancestors (a symlink loop) is recorded as a loop and not entered again.

Nothing is memoised: files can change while a process runs, so the caller decides when a
fingerprint is fresh enough to reuse.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

# Returned for a folder that does not exist (or is not a folder); the caller decides if that is
# an error. It is not a hex digest, so it can never equal the fingerprint of a real folder.
MISSING = "missing"

# Files whose full contents are hashed (case-insensitive suffix match).
METADATA_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".yaml", ".yml", ".xml")

# Bumped when the format of the hashed records changes, so old and new fingerprints never match.
_VERSION = b"clapsweep-dataset-fingerprint-v1\n"
_METADATA = tuple(s.encode() for s in METADATA_SUFFIXES)


def _file_digest(path: bytes) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest().encode()


def _walk(h, path: bytes, rel: bytes, ancestors: set[tuple[int, int]]) -> None:
    """Feed one record per file under `path` into `h`, in sorted order of names."""
    try:
        with os.scandir(path) as it:
            entries = sorted((e for e in it if not e.name.startswith(b".")), key=lambda e: e.name)
    except OSError as e:
        h.update(b"U" + rel + b"\0" + type(e).__name__.encode() + b"\n")
        return
    lines = []
    for entry in entries:
        name_rel = rel + entry.name
        try:
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()
        except OSError:
            is_dir = is_file = False
        if is_dir:
            h.update(b"".join(lines))
            lines = []
            try:
                st = entry.stat()
            except OSError:
                h.update(b"B" + name_rel + b"\0\n")
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in ancestors:
                h.update(b"L" + name_rel + b"\0\n")
                continue
            ancestors.add(ident)
            _walk(h, entry.path, name_rel + b"/", ancestors)
            ancestors.discard(ident)
        elif is_file:
            try:
                size = entry.stat().st_size
            except OSError:
                lines.append(b"B" + name_rel + b"\0\n")
                continue
            line = b"F" + name_rel + b"\0" + str(size).encode()
            if entry.name.lower().endswith(_METADATA):
                try:
                    line += b"\0" + _file_digest(entry.path)
                except OSError as e:
                    line += b"\0unreadable:" + type(e).__name__.encode()
            lines.append(line + b"\n")
        elif entry.is_symlink():
            lines.append(b"B" + name_rel + b"\0\n")  # broken symlink: the adapter sees it missing
    h.update(b"".join(lines))


def dataset_fingerprint(folder: str | Path) -> str:
    """16 hex chars of sha256 over the relative paths and sizes of every non-hidden file under
    `folder`, plus the full sha256 of each metadata file; MISSING if `folder` is not a folder.

    Independent of where the folder lives, of mtimes and of the order files were created in.
    Does not read audio, so an audio file changed in place to the same size goes unnoticed.
    """
    path = os.fsencode(os.path.abspath(folder))
    try:
        st = os.stat(path)
    except OSError:
        return MISSING
    if not stat.S_ISDIR(st.st_mode):
        return MISSING
    h = hashlib.sha256(_VERSION)
    _walk(h, path, b"", {(st.st_dev, st.st_ino)})
    return h.hexdigest()[:16]


def fingerprints(root: str | Path, names: Iterable[str]) -> dict[str, str]:
    """dataset_fingerprint of `root/<name>` for each name (MISSING for an absent one)."""
    return {name: dataset_fingerprint(Path(root) / name) for name in names}
