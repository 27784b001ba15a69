"""synthworld: deterministic, idempotent, atomic, and in the real datasets' layouts."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from clapsweep.data import synthtext, synthworld
from clapsweep.data.synthsounds import Source
from clapsweep.data.synthworld import ESC50, SCENES, US8K, generate
from clapsweep.errors import UserError


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("a") / "world"
    return out, generate(out, scale="tiny", seed=0)


def test_same_seed_gives_identical_bytes(world, tmp_path):
    out, _ = world
    again = generate(tmp_path / "world", scale="tiny", seed=0)
    assert again["cached"] is False
    first, second = _digests(out), _digests(tmp_path / "world")
    assert len(first) > 120
    assert first == second
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_rerun_returns_at_once_without_rewriting(world):
    out, summary = world
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = generate(out, scale="tiny", seed=0)
    assert again["cached"] is True
    assert again["datasets"] == summary["datasets"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_summary_counts(world):
    _, summary = world
    d = summary["datasets"]
    tiny = synthworld.SCALES["tiny"]
    assert d["clotho"]["files"] == sum(tiny.clotho) == 14
    assert d["clotho"]["records"] == 13  # one garbage file
    assert d["clotho"]["captions"] == 13 * 5
    assert d["audiocaps"]["captions"] == tiny.audiocaps[0] + 5 * (
        tiny.audiocaps[1] + tiny.audiocaps[2]
    )
    assert d["esc50"] == {"files": 15, "seconds": 75.0, "records": 15, "classes": 15}
    assert d["tut17"]["seconds"] == 10.0 * d["tut17"]["files"]
    wild = d["audioset"]
    assert wild["skipped"] == {"unreadable": 1, "in_audiocaps": 2, "missing": 2}
    assert wild["records"] == tiny.audioset - 1 - 2
    assert summary["total_files"] == sum(x["files"] for x in d.values())


def test_esc50_layout(world):
    root = world[0] / "esc50"
    header, rows = _rows(root / "meta" / "esc50.csv")
    assert header == ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    official = {name: target for name, target, _ in ESC50}
    assert {r["category"] for r in rows} == set(official)
    for r in rows:
        m = re.fullmatch(r"(\d)-(\d+)-([A-Z])-(\d+)\.wav", r["filename"])
        assert m, r["filename"]
        assert (m[1], m[2], m[3], m[4]) == (r["fold"], r["src_file"], r["take"], r["target"])
        assert int(r["target"]) == official[r["category"]]
        info = sf.info(str(root / "audio" / r["filename"]))
        assert (info.samplerate, info.channels, info.frames) == (44100, 1, 5 * 44100)
        assert info.subtype == "PCM_16"
    assert {r["fold"] for r in rows} == {"1", "2", "3", "4", "5"}


def test_us8k_layout(world):
    root = world[0] / "us8k"
    header, rows = _rows(root / "metadata" / "UrbanSound8K.csv")
    assert header == [
        "slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"
    ]  # fmt: skip
    assert {(int(r["classID"]), r["class"]) for r in rows} == {
        (i, name) for i, (name, _) in enumerate(US8K)
    }
    formats = set()
    for r in rows:
        m = re.fullmatch(r"(\d+)-(\d)-(\d+)-(\d+)\.wav", r["slice_file_name"])
        assert m and (m[1], m[2]) == (r["fsID"], r["classID"])
        info = sf.info(str(root / "audio" / f"fold{r['fold']}" / r["slice_file_name"]))
        assert info.duration <= 4.0
        assert abs(info.duration - (float(r["end"]) - float(r["start"]))) < 1e-3
        formats.add((info.samplerate, info.channels))
    assert {rate for rate, _ in formats} == {48000, 44100, 22050, 16000}
    assert {ch for _, ch in formats} == {1, 2}


def test_tut17_layout(world):
    root = world[0] / "tut17"
    found = set()
    for part in ("development", "evaluation"):
        folder = root / f"TUT-acoustic-scenes-2017-{part}"
        for line in (folder / "meta.txt").read_text().splitlines():
            name, scene, location = line.split("\t")
            assert name.startswith("audio/") and name.endswith(".wav") and location
            info = sf.info(str(folder / name))
            assert (info.samplerate, info.channels, info.frames) == (44100, 2, 441000)
            found.add(scene)
    assert found == set(SCENES)
    assert "cafe/restaurant" in found


def _all_captions(root: Path) -> dict[str, list[list[str]]]:
    """dataset -> one caption list per clip."""
    out: dict[str, list[list[str]]] = {"clotho": [], "audiocaps": [], "macs": [], "fsd50k": []}
    for split in ("development", "validation", "evaluation"):
        header, rows = _rows(root / "clotho" / f"clotho_captions_{split}.csv")
        assert header == ["file_name"] + [f"caption_{k}" for k in range(1, 6)]
        out["clotho"] += [[r[f"caption_{k}"] for k in range(1, 6)] for r in rows]
    for split in ("train", "val", "test"):
        header, rows = _rows(root / "audiocaps" / "dataset" / f"{split}.csv")
        assert header == ["audiocap_id", "youtube_id", "start_time", "caption"]
        by_clip: dict[str, list[str]] = {}
        for r in rows:
            by_clip.setdefault(r["youtube_id"], []).append(r["caption"])
            assert (root / "audiocaps" / "audio" / split / f"{r['youtube_id']}.flac").is_file()
        assert {len(c) for c in by_clip.values()} == ({1} if split == "train" else {5})
        out["audiocaps"] += list(by_clip.values())
    macs = yaml.safe_load((root / "macs" / "MACS.yaml").read_text())
    out["macs"] = [[a["sentence"] for a in f["annotations"]] for f in macs["files"]]
    header, rows = _rows(root / "fsd50k" / "FSD50K.ground_truth" / "dev.csv")
    assert header == ["fname", "labels", "mids", "split"]
    info = yaml.safe_load(
        (root / "fsd50k" / "FSD50K.metadata" / "dev_clips_info_FSD50K.json").read_text()
    )
    out["fsd50k"] = [[info[r["fname"]]["description"]] for r in rows]
    return out


def test_captions_several_per_clip_and_no_class_name_copied(world):
    captions = _all_captions(world[0])
    clotho = captions["clotho"]
    assert all(c.strip() for clip in clotho for c in clip)
    # Five captions per Clotho clip, and they differ: at least 3 distinct on average.
    assert np.mean([len(set(clip)) for clip in clotho]) >= 3
    assert all(len(clip) == 3 for clip in captions["macs"])
    texts = [c.lower() for clips in captions.values() for clip in clips for c in clip]
    assert all(texts)
    spelled = [n for n, _, _ in ESC50] + [n for n, _ in US8K] + list(SCENES)
    spelled = [n for n in spelled if "_" in n or "/" in n]
    assert "car_horn" in spelled and "cafe/restaurant" in spelled
    for text in texts:
        assert not [n for n in spelled if n in text], text


def test_grammar_shares_words_with_every_task_class():
    # Over many captions of a concept, some use a word of its class name (or its stem):
    # "drilling" / "a drill whirs", "gun_shot" / "a gun fires", "engine_idling" / "an engine".
    rng = np.random.default_rng(0)
    for label, concept in [(n, c) for n, _, c in ESC50] + US8K:
        words = [w[:5] for w in re.split(r"[_/]", label)]
        texts = []
        for _ in range(60):
            src = Source(concept, -10.0, attrs={})
            texts.append(synthtext.caption(rng, [src]))
        assert any(w in t for t in texts for w in words), (label, texts[:5])
        assert len(set(texts)) >= 20, label  # synonyms and templates give variety


def test_audioset_layout_and_audiocaps_overlap(world):
    root, summary = world
    lines = (root / "audioset" / "unbalanced_train_segments.csv").read_text().splitlines()
    assert [line[0] for line in lines[:3]] == ["#", "#", "#"]
    assert lines[2] == "# YTID, start_seconds, end_seconds, positive_labels"
    rows = list(csv.reader(lines[3:], skipinitialspace=True))
    assert all(len(r) == 4 and len(r[0]) == 11 for r in rows)
    ytids = {r[0] for r in rows}
    _, train = _rows(root / "audiocaps" / "dataset" / "train.csv")
    shared = ytids & {r["youtube_id"] for r in train}
    assert shared == set(summary["datasets"]["audioset"]["audiocaps_overlap"])
    assert len(shared) == 2
    audio = list((root / "audioset" / "audio" / "unbalanced_train").iterdir())
    assert {p.suffix for p in audio} == {".wav", ".flac"}
    assert any(p.name.startswith("Y") for p in audio)


def test_corrupted_files_are_unreadable(world):
    root, summary = world
    assert len(summary["corrupted"]) == 2
    assert {p.split("/")[0] for p in summary["corrupted"]} == {"clotho", "audioset"}
    for relative in summary["corrupted"]:
        with pytest.raises(sf.LibsndfileError):
            sf.info(str(root / relative))


def test_unknown_scale_names_the_valid_ones(tmp_path):
    with pytest.raises(UserError, match="tiny, demo, large"):
        generate(tmp_path / "w", scale="huge")
    assert not (tmp_path / "w").exists()


def test_refuses_a_folder_that_is_not_a_synthworld(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not a synthworld folder"):
        generate(out, scale="tiny")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args):
        raise RuntimeError("power cut")

    monkeypatch.setattr(synthworld, "_fsd50k", fail)  # after clotho and audiocaps are written
    with pytest.raises(RuntimeError, match="power cut"):
        generate(tmp_path / "world", scale="tiny")
    assert list(tmp_path.iterdir()) == []


def test_every_dataset_loads_through_the_adapters(world):
    datasets = pytest.importorskip("clapsweep.data.datasets")
    root, summary = world
    for name, stats in summary["datasets"].items():
        manifest = datasets.load_dataset(name, root)
        assert len(manifest.records) == stats["records"], name
        reasons = {}
        for _, reason in manifest.skipped:
            kind = reason.split(":")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
        assert reasons == stats.get("skipped", {}), name
        if "captions" in stats:
            assert sum(len(r.captions) for r in manifest.records) == stats["captions"], name
        if "classes" in stats:
            assert len(datasets.task_classes(manifest)) == stats["classes"], name
    us8k = datasets.load_dataset("us8k", root)
    assert {r.sample_rate for r in us8k.records} == {48000, 44100, 22050, 16000}
