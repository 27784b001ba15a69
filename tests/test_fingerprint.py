"""dataset_fingerprint: what changes it (paths, sizes, metadata contents) and what does not."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from clapsweep.data.fingerprint import MISSING, dataset_fingerprint, fingerprints

FILES = {
    "meta/esc50.csv": "filename,fold,target,category\n1-1-A-0.wav,1,0,dog\n2-2-A-1.wav,2,1,cat\n",
    "audio/1-1-A-0.wav": "RIFF" + "a" * 60,
    "audio/2-2-A-1.wav": "RIFF" + "b" * 80,
    "audio/sub/3-3-A-2.flac": "fLaC" + "c" * 10,
    "README": "no suffix: size only",
}


def make(folder: Path, files: dict[str, str] = FILES) -> Path:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


@pytest.fixture
def ds(tmp_path) -> Path:
    return make(tmp_path / "root" / "esc50")


def test_is_a_short_hex_digest(ds):
    assert re.fullmatch(r"[0-9a-f]{16}", dataset_fingerprint(ds))
    assert dataset_fingerprint(ds) == dataset_fingerprint(str(ds))


def test_same_content_under_two_roots_is_equal(tmp_path, ds):
    other = make(tmp_path / "elsewhere" / "deeper" / "esc50")
    assert dataset_fingerprint(other) == dataset_fingerprint(ds)
    copy = tmp_path / "copy" / "esc50"
    shutil.copytree(ds, copy)  # copytree keeps mtimes; a plain rewrite below does not
    assert dataset_fingerprint(copy) == dataset_fingerprint(ds)


def test_order_of_creation_does_not_matter(tmp_path, ds):
    reversed_files = dict(reversed(list(FILES.items())))
    assert dataset_fingerprint(make(tmp_path / "b" / "esc50", reversed_files)) == (
        dataset_fingerprint(ds)
    )


class _Reversed:
    """os.scandir listing its entries in reverse order (file systems promise no order)."""

    def __init__(self, scandir, path):
        with scandir(path) as it:
            self.entries = list(it)[::-1]

    def __enter__(self):
        return iter(self.entries)

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return iter(self.entries)


def test_directory_listing_order_does_not_matter(monkeypatch, ds):
    before = dataset_fingerprint(ds)
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": _Reversed(scandir, path))
    assert dataset_fingerprint(ds) == before


def test_mtime_does_not_matter(ds):
    before = dataset_fingerprint(ds)
    for path in [ds / "meta" / "esc50.csv", ds / "audio" / "1-1-A-0.wav"]:
        os.utime(path, (1_000_000, 1_000_000))
    assert dataset_fingerprint(ds) == before


def test_audio_size_change_changes_it(ds):
    before = dataset_fingerprint(ds)
    (ds / "audio" / "1-1-A-0.wav").write_text("RIFF" + "a" * 61)
    assert dataset_fingerprint(ds) != before


def test_audio_content_with_same_size_is_not_read(ds):
    # Documented limitation: audio is identified by path and size only.
    before = dataset_fingerprint(ds)
    (ds / "audio" / "1-1-A-0.wav").write_text("RIFF" + "z" * 60)
    assert dataset_fingerprint(ds) == before


def test_nested_audio_size_change_changes_it(ds):
    before = dataset_fingerprint(ds)
    (ds / "audio" / "sub" / "3-3-A-2.flac").write_text("")
    assert dataset_fingerprint(ds) != before


def test_rename_changes_it(ds):
    before = dataset_fingerprint(ds)
    (ds / "audio" / "2-2-A-1.wav").rename(ds / "audio" / "2-2-A-9.wav")
    assert dataset_fingerprint(ds) != before


def test_moving_a_file_to_another_folder_changes_it(ds):
    before = dataset_fingerprint(ds)
    (ds / "audio" / "2-2-A-1.wav").rename(ds / "audio" / "sub" / "2-2-A-1.wav")
    assert dataset_fingerprint(ds) != before


def test_adding_a_file_changes_it(ds):
    before = dataset_fingerprint(ds)
    (ds / "audio" / "4-4-A-3.wav").write_text("")  # even an empty one
    assert dataset_fingerprint(ds) != before


def test_removing_a_file_changes_it(ds):
    before = dataset_fingerprint(ds)
    (ds / "audio" / "2-2-A-1.wav").unlink()
    assert dataset_fingerprint(ds) != before


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt", ".json", ".yaml", ".yml", ".XML"])
def test_one_character_of_metadata_with_same_size_changes_it(tmp_path, suffix):
    text = "filename,category\n1-1-A-0.wav,dog\n"
    ds = make(tmp_path / "ds", {f"meta/labels{suffix}": text, "audio/1-1-A-0.wav": "x"})
    before = dataset_fingerprint(ds)
    (ds / "meta" / f"labels{suffix}").write_text(text.replace("dog", "dot"))
    assert dataset_fingerprint(ds) != before


def test_non_metadata_same_size_edit_is_not_read(ds):
    before = dataset_fingerprint(ds)
    (ds / "README").write_text("no suffix: size onlY")
    assert dataset_fingerprint(ds) == before


def test_hidden_files_and_folders_are_ignored(ds):
    before = dataset_fingerprint(ds)
    (ds / ".DS_Store").write_text("junk")
    (ds / "audio" / ".1-1-A-0.wav.partial").write_text("junk")
    (ds / ".git" / "objects").mkdir(parents=True)
    (ds / ".git" / "objects" / "labels.csv").write_text("junk")
    (ds / "empty-folder").mkdir()
    assert dataset_fingerprint(ds) == before


def test_missing_folder_gives_the_marker(tmp_path, ds):
    assert dataset_fingerprint(tmp_path / "nope") == MISSING == "missing"
    assert dataset_fingerprint(ds / "README") == MISSING  # a file is not a dataset folder
    (tmp_path / "empty").mkdir()
    assert dataset_fingerprint(tmp_path / "empty") != MISSING


def test_symlinked_file_counts_with_its_target_size(tmp_path, ds):
    before = dataset_fingerprint(ds)
    target = tmp_path / "store" / "2-2-A-1.wav"
    target.parent.mkdir()
    (ds / "audio" / "2-2-A-1.wav").rename(target)
    (ds / "audio" / "2-2-A-1.wav").symlink_to(target)
    assert dataset_fingerprint(ds) == before
    target.write_text("longer than before" * 10)
    assert dataset_fingerprint(ds) != before
    target.unlink()  # broken link: differs from both the file and its absence
    broken = dataset_fingerprint(ds)
    (ds / "audio" / "2-2-A-1.wav").unlink()
    assert len({before, broken, dataset_fingerprint(ds)}) == 3


def test_symlinked_folder_is_walked_and_loops_terminate(tmp_path, ds):
    before = dataset_fingerprint(ds)
    (ds / "audio").rename(tmp_path / "audio-store")
    (ds / "audio").symlink_to(tmp_path / "audio-store", target_is_directory=True)
    assert dataset_fingerprint(ds) == before
    (ds / "audio" / "sub" / "loop").symlink_to(ds, target_is_directory=True)
    looped = dataset_fingerprint(ds)  # must return, and the loop is recorded
    assert looped != before


def test_fingerprints_of_several_datasets(tmp_path):
    make(tmp_path / "esc50")
    make(tmp_path / "us8k", {"metadata/UrbanSound8K.csv": "slice_file_name\n"})
    got = fingerprints(tmp_path, ["esc50", "us8k", "clotho"])
    assert list(got) == ["esc50", "us8k", "clotho"]
    assert got["esc50"] == dataset_fingerprint(tmp_path / "esc50")
    assert got["us8k"] not in (got["esc50"], MISSING)
    assert got["clotho"] == MISSING
