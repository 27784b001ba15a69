"""The decoded-audio cache: hits, invalidation, corrupt entries, and concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clapsweep.audio import AudioError, load_audio
from clapsweep.data.cache import AudioCache


def _write(path: Path, seed: int, seconds: float = 0.5, rate: int = 22050) -> None:
    rng = np.random.default_rng(seed)
    sf.write(path, rng.uniform(-0.5, 0.5, (round(seconds * rate), 2)).astype(np.float32), rate)


def _entries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_no_root_decodes_every_time(tmp_path):
    path = tmp_path / "a.wav"
    _write(path, 0)
    cache = AudioCache(None, 16000)
    assert torch.equal(cache.load(path), load_audio(path, 16000))
    cache.load(path)
    assert (cache.hits, cache.misses) == (0, 2)


def test_hit_after_miss_reads_the_entry_not_the_source(tmp_path):
    path = tmp_path / "a.wav"
    _write(path, 0)
    root = tmp_path / "cache"
    cache = AudioCache(root, 16000)
    reference = load_audio(path, 16000)

    first = cache.load(path)
    assert (cache.hits, cache.misses) == (0, 1)
    assert first.dtype == torch.float32 and first.shape == reference.shape
    assert torch.allclose(first, reference, atol=1e-3)  # float16 rounding
    [entry] = _entries(root)
    assert entry == cache.entry_path(path) and entry.suffix == ".npy"
    assert np.load(entry).dtype == np.float16

    # Replace the source with other audio of the same size and mtime: a hit must still give
    # the first audio, which proves the second load does not decode the file.
    stat = path.stat()
    _write(path, 1)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size

    second = AudioCache(root, 16000).load(path)
    assert torch.equal(second, first)  # a miss returns exactly what a later hit returns
    cache.load(path)
    assert (cache.hits, cache.misses) == (1, 1)


def test_changed_mtime_size_or_rate_misses(tmp_path):
    path = tmp_path / "a.wav"
    _write(path, 0)
    cache = AudioCache(tmp_path / "cache", 16000)
    cache.load(path)

    # Same size, new mtime: a miss that decodes the new content.
    mtime = path.stat().st_mtime_ns
    _write(path, 1)
    os.utime(path, ns=(0, mtime + 10**9))
    assert torch.allclose(cache.load(path), load_audio(path, 16000), atol=1e-3)
    assert (cache.hits, cache.misses) == (0, 2)

    # New size, mtime put back to the first one: still a miss.
    _write(path, 2, seconds=0.6)
    os.utime(path, ns=(0, mtime))
    assert torch.allclose(cache.load(path), load_audio(path, 16000), atol=1e-3)
    assert (cache.hits, cache.misses) == (0, 3)

    other_rate = AudioCache(tmp_path / "cache", 8000)
    assert other_rate.load(path).shape == (round(0.6 * 8000),)
    assert other_rate.misses == 1
    assert len(_entries(tmp_path / "cache")) == 4  # old entries stay until cleaned


@pytest.mark.parametrize("content", [b"", b"not a numpy file", b"\x93NUMPY\x01\x00garbage"])
def test_corrupt_entry_is_a_miss_and_is_rewritten(tmp_path, content):
    path = tmp_path / "a.wav"
    _write(path, 0)
    cache = AudioCache(tmp_path / "cache", 16000)
    good = cache.load(path)
    entry = cache.entry_path(path)
    entry.write_bytes(content)

    assert torch.equal(cache.load(path), good)
    assert (cache.hits, cache.misses) == (0, 2)
    cache.load(path)
    assert cache.hits == 1  # the rewritten entry is read back
    assert np.array_equal(np.load(entry), good.numpy().astype(np.float16))


def test_truncated_entry_is_a_miss(tmp_path):
    path = tmp_path / "a.wav"
    _write(path, 0)
    cache = AudioCache(tmp_path / "cache", 16000)
    good = cache.load(path)
    entry = cache.entry_path(path)
    entry.write_bytes(entry.read_bytes()[:-100])
    assert torch.equal(cache.load(path), good)
    assert cache.misses == 2


def test_audio_error_propagates_and_is_not_cached(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF garbage")
    cache = AudioCache(tmp_path / "cache", 16000)
    for _ in range(2):
        with pytest.raises(AudioError, match="bad.wav"):
            cache.load(bad)
    assert cache.misses == 2
    assert _entries(tmp_path / "cache") == []
    with pytest.raises(AudioError, match="missing.wav"):
        cache.load(tmp_path / "missing.wav")


def _fill(root: str, paths: list[str], barrier, results) -> list[np.ndarray] | None:
    # Both writers start together after the barrier, then load every file in the same order.
    cache = AudioCache(root, 16000)
    barrier.wait(timeout=120)
    loaded = [cache.load(p).numpy() for p in paths]
    if results is None:
        return loaded
    results.put(loaded)


def test_two_processes_fill_the_same_keys(tmp_path):
    paths = []
    for i in range(6):
        paths.append(str(tmp_path / f"clip{i}.wav"))
        _write(Path(paths[-1]), i, seconds=1.0)
    root = tmp_path / "cache"
    # One spawned writer races this test process (spawning only one saves a torch import).
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    other = ctx.Process(target=_fill, args=(str(root), paths, barrier, results))
    other.start()
    mine = _fill(str(root), paths, barrier, None)
    theirs = results.get(timeout=120)
    other.join(timeout=60)
    assert other.exitcode == 0

    expected = [load_audio(p, 16000).numpy().astype(np.float16).astype(np.float32) for p in paths]
    for loaded in (mine, theirs):
        for got, want in zip(loaded, expected, strict=True):
            assert np.array_equal(got, want)
    # Exactly one entry per file, no temporary files left, and each entry reads back intact.
    files = _entries(root)
    assert len(files) == len(paths)
    assert all(f.suffix == ".npy" and not f.name.startswith(".") for f in files)
    cache = AudioCache(root, 16000)
    for path, want in zip(paths, expected, strict=True):
        assert np.array_equal(cache.load(path).numpy(), want)
    assert cache.hits == len(paths)
