"""A disk cache of decoded, resampled audio, shared safely by many processes.

Each entry is one float16 .npy file under `root/<2 hex>/<sha256>.npy`. The key hashes the
absolute path, size and mtime of the source, the target sample rate and a format version,
so an edited source file or a new rate is a miss, never stale data. Entries are written to a
uniquely named temporary file in the same folder and moved into place with os.replace, so a
reader never sees a partial entry, even while other processes fill the same key.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np
import torch

from clapsweep.audio import AudioError, load_audio

# Bump when what an entry holds changes (decoder, resampler, dtype): old entries then miss.
FORMAT_VERSION = 1


class AudioCache:
    """`load(path)` gives load_audio(path, sample_rate), from the cache when `root` is set.

    With a cache, a miss returns the float16-rounded samples it stored, so the first and every
    later load of a file give identical tensors. `hits` and `misses` count this instance's
    loads (each DataLoader worker holds its own copy).
    """

    def __init__(self, root: str | Path | None, sample_rate: int) -> None:
        self.root = Path(root) if root is not None else None
        self.sample_rate = sample_rate
        self.hits = 0
        self.misses = 0

    def load(self, path: str | Path) -> torch.Tensor:
        if self.root is None:
            self.misses += 1
            return load_audio(path, self.sample_rate)
        entry = self.entry_path(path)
        cached = _read_entry(entry)
        if cached is not None:
            self.hits += 1
            return torch.from_numpy(cached.astype(np.float32))
        self.misses += 1
        wave = load_audio(path, self.sample_rate)
        half = wave.numpy().astype(np.float16)
        if not np.isfinite(half).all():
            return wave  # samples beyond float16's range: not cached, decoded every time
        _write_entry(entry, half)
        return torch.from_numpy(half.astype(np.float32))

    def entry_path(self, path: str | Path) -> Path:
        """Where the entry for `path` lives (it may not exist yet)."""
        assert self.root is not None
        absolute = os.path.abspath(path)
        try:
            stat = os.stat(absolute)
        except OSError as e:
            raise AudioError(f"{path}: unreadable: {e.strerror}") from e
        key = (
            f"{absolute}\0{stat.st_size}\0{stat.st_mtime_ns}\0{self.sample_rate}\0{FORMAT_VERSION}"
        )
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        # Two-level layout: a flat folder of millions of files is slow on shared filesystems.
        return self.root / digest[:2] / f"{digest}.npy"


def _read_entry(entry: Path) -> np.ndarray | None:
    """The stored samples, or None for a missing or unreadable (corrupt) entry."""
    try:
        data = np.load(entry, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError):
        return None  # corrupt: treated as a miss and overwritten
    if data.dtype != np.float16 or data.ndim != 1 or data.size == 0:
        return None
    return data


def _write_entry(entry: Path, data: np.ndarray) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    # A name no other writer can pick; open(..., "xb") honours the umask, unlike mkstemp,
    # so a cache shared by a group stays readable.
    tmp = entry.parent / f".{entry.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "xb") as f:
            np.save(f, data, allow_pickle=False)
        os.replace(tmp, entry)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
