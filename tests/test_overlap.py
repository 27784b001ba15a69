"""Leakage report and data.exclude_overlap: task clips cut from a teacher clip's recording."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from test_adapters import make_audiocaps, make_audioset, make_esc50, write_audio, write_text

from clapsweep.config import DataConfig, from_dict
from clapsweep.data.datasets import load_dataset
from clapsweep.data.manifest import Manifest, Record
from clapsweep.data.overlap import overlap, teacher_overlap_ids
from clapsweep.errors import ConfigError
from clapsweep.pipeline import pair_counts, stream_id, training_pairs
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.spec import parse_spec
from clapsweep.recipe.stage_config import key_config
from clapsweep.sweep.plan import stage_key


def make_fsd50k_sharing_esc50(root: Path) -> None:
    """FSD50K with one clip, 100032, that is ESC-50's src_file of 1-100032-A-0."""
    d = root / "fsd50k"
    write_text(
        d / "FSD50K.ground_truth" / "dev.csv",
        "fname,labels,mids,split\n100032,Bark,/m/05tny_,train\n64760,Guitar,/m/0342h,train\n",
    )
    info = {f: {"title": f"clip {f}", "description": ""} for f in ("100032", "64760")}
    write_text(d / "FSD50K.metadata" / "dev_clips_info_FSD50K.json", json.dumps(info))
    for fname in info:
        write_audio(d / "FSD50K.dev_audio" / f"{fname}.wav", 0.1)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("overlap")
    for make in (make_esc50, make_fsd50k_sharing_esc50, make_audiocaps, make_audioset):
        make(root)
    return root


def manifests_of(root: Path, names: list[str]) -> dict[str, Manifest]:
    return {n: load_dataset(n, root) for n in names}


def test_an_esc50_src_file_equal_to_an_fsd50k_fname_counts_once(root):
    manifests = manifests_of(root, ["fsd50k", "audiocaps", "audioset", "esc50"])
    report = overlap(manifests, ["fsd50k", "audiocaps"], "audioset", ["esc50"])
    assert report == {
        "esc50": {
            "clips": 3,
            "with_source": 3,
            "teacher": 1,
            "by_teacher": {"fsd50k": 1, "audiocaps": 0},
            "wild": 0,
        }
    }
    assert teacher_overlap_ids(manifests, ["fsd50k", "audiocaps"], ["esc50"]) == {"fsd50k/100032"}


def test_exclude_overlap_drops_exactly_that_teacher_pair(root):
    data = {"root": str(root), "teacher": ["fsd50k", "audiocaps"], "tasks": ["esc50"]}
    kept = {p.id for p in training_pairs(data, seed=0)}
    without = {p.id for p in training_pairs(data | {"exclude_overlap": True}, seed=0)}
    assert kept - without == {"fsd50k/100032#0"} and without < kept
    assert {p.id for p in training_pairs(data | {"exclude_overlap": False}, seed=0)} == kept
    counts = pair_counts(data | {"exclude_overlap": True})
    assert counts["fsd50k"] == pair_counts(data)["fsd50k"] - 1 == 1


def test_exclusion_comes_before_the_fraction(root):
    data = {"root": str(root), "teacher": ["fsd50k"], "tasks": ["esc50"], "fraction": 0.5}
    pairs = training_pairs(data | {"exclude_overlap": True}, seed=0)
    # One pair is left after the exclusion; half of it rounds to the one pair kept.
    assert [p.id for p in pairs] == ["fsd50k/64760#0"]


def record(dataset: str, clip: str, source: str) -> Record:
    return Record(f"{dataset}/{clip}", dataset, f"/a/{clip}.wav", source=source)


def test_wild_overlap_and_clips_without_source():
    manifests = {
        "clotho": Manifest("clotho", "/a", [record("clotho", "c", "freesound:7")]),
        "audioset": Manifest("audioset", "/a", [record("audioset", "y", "youtube:y")]),
        "us8k": Manifest(
            "us8k",
            "/a",
            [
                record("us8k", "1", "freesound:7"),
                record("us8k", "2", "youtube:y"),
                record("us8k", "3", ""),
            ],
        ),
    }
    report = overlap(manifests, ["clotho", "macs"], "audioset", ["us8k", "tut17"])
    assert report == {
        "us8k": {
            "clips": 3,
            "with_source": 2,
            "teacher": 1,
            "by_teacher": {"clotho": 1},
            "wild": 1,
        }
    }
    assert teacher_overlap_ids(manifests, ["clotho"], ["us8k"]) == {"clotho/c"}
    assert teacher_overlap_ids(manifests, ["clotho"], []) == set()


# --- the option and the stage keys --------------------------------------------------------------

SPEC = {
    "name": "overlap",
    "workdir": "/runs/overlap",
    "data": {"root": "/data", "tasks": ["esc50", "us8k"]},
    "grid": {"seed": [0], "rows": [{"name": "DU", "strategy": "du", "sigma": 0.7}]},
}


def plan_with(**data) -> dict:
    spec = copy.deepcopy(SPEC)
    spec["data"].update(data)
    return build_plan(parse_spec(spec)).stages


def test_exclude_overlap_false_leaves_every_stage_key_unchanged():
    assert set(plan_with()) == set(plan_with(exclude_overlap=False))
    teacher = next(s for s in plan_with().values() if s.kind == "teacher")
    assert "exclude_overlap" not in teacher.config["data"]
    flagged = copy.deepcopy(teacher.config)
    flagged["data"]["exclude_overlap"] = False
    assert stage_key("teacher", key_config("teacher", flagged), {}) == teacher.key
    assert stream_id(flagged) == stream_id(teacher.config)


def test_exclude_overlap_true_changes_the_teacher_and_what_reads_it():
    off, on = plan_with(), plan_with(exclude_overlap=True)
    teacher = next(s for s in on.values() if s.kind == "teacher")
    assert teacher.name not in off
    data = teacher.config["data"]
    assert data["exclude_overlap"] is True and data["tasks"] == ["esc50", "us8k"]
    assert set(data["fingerprint"]) == {"clotho", "audiocaps", "fsd50k", "macs", "esc50", "us8k"}
    # Every stage downstream of the teacher changes with it; the MS-CLAP-free plan has no
    # stage that does not read the teacher.
    assert not set(on) & set(off)


def test_data_config_accepts_only_a_boolean():
    assert from_dict(DataConfig, {"exclude_overlap": True}).exclude_overlap is True
    assert DataConfig().exclude_overlap is False
    with pytest.raises(ConfigError, match="data.exclude_overlap: expected true or false"):
        from_dict(DataConfig, {"exclude_overlap": "yes"}, "data")


def test_data_summary_shows_each_tasks_leakage(root, capsys):
    from clapsweep.cli import main
    from clapsweep.data.summary import summarize

    result = summarize(root)
    assert result["esc50"]["overlap"]["teacher"] == 1
    assert "overlap" not in result["fsd50k"]  # only tasks are checked
    main(["data", "summary", str(root)])
    out = capsys.readouterr().out
    assert (
        "esc50: leakage: 1 of 3 clips share a source recording with teacher data (fsd50k 1) "
        "and 0 with the wild pool; data.exclude_overlap: true drops those teacher clips"
    ) in " ".join(out.split())
