"""`summarize`, `render` and `clapsweep data summary` on small data roots with real audio files.

The exit codes and the closed-pipe case run the real command in a subprocess.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clapsweep.cli import main
from clapsweep.data.adapters import LAYOUTS
from clapsweep.data.datasets import load_dataset
from clapsweep.data.manifest import DatasetError
from clapsweep.data.summary import render, summarize, unusable

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}


def write_audio(path: Path, seconds: float, rate: int = 44100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(round(seconds * rate)), rate)


def write_tone(path: Path, seconds: float, rate: int = 16000, amplitude: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * rate)) / rate
    # 32-bit float WAV keeps a quiet tone's exact level; FLAC stores integers only.
    subtype = "FLOAT" if path.suffix == ".wav" else None
    sf.write(path, amplitude * np.sin(2 * np.pi * 440 * t), rate, subtype=subtype)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


ESC50_HEADER = "filename,fold,target,category,esc10,src_file,take\n"


def write_esc50(folder: Path, names: list[str]) -> None:
    """esc50 metadata listing `names` (class dog, fold 1); the audio is up to the caller."""
    rows = "".join(f"{name},1,0,dog,True,1,A\n" for name in names)
    write_text(folder / "meta" / "esc50.csv", ESC50_HEADER + rows)


def write_us8k(folder: Path) -> None:
    """A readable us8k folder with one clip."""
    write_text(
        folder / "metadata" / "UrbanSound8K.csv",
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "1-0-0-0.wav,1,0,1,1,1,0,air_conditioner\n",
    )
    write_tone(folder / "audio" / "fold1" / "1-0-0-0.wav", 0.5)


def cli(*args: object) -> subprocess.CompletedProcess:
    """`clapsweep data summary ARGS` in a fresh interpreter."""
    command = [sys.executable, "-m", "clapsweep", "data", "summary", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300)


def fix_command(hint: str) -> str:
    """The shell command in a hint's closing parentheses."""
    return re.search(r"\((mv .*|mkdir .*)\)$", hint).group(1)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    esc = root / "esc50"
    write_text(
        esc / "meta" / "esc50.csv",
        "filename,fold,target,category,esc10,src_file,take\n"
        "1-1-A-0.wav,1,0,dog,True,1,A\n"
        "2-2-A-1.wav,2,1,rooster,False,2,A\n"
        "2-3-A-0.wav,2,0,dog,True,3,A\n"
        "3-4-A-1.wav,3,1,rooster,False,4,A\n"
        "4-5-A-1.wav,4,1,rooster,False,5,A\n",
    )
    write_audio(esc / "audio" / "1-1-A-0.wav", 1.0)
    write_audio(esc / "audio" / "2-2-A-1.wav", 0.5)
    write_audio(esc / "audio" / "2-3-A-0.wav", 0.75)
    write_text(esc / "audio" / "3-4-A-1.wav", "garbage bytes, not audio")
    # 4-5-A-1.wav is missing.
    us8k = root / "us8k"
    write_text(
        us8k / "metadata" / "UrbanSound8K.csv",
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "1-0-0-0.wav,1,0,1,1,10,0,air_conditioner\n"
        "2-3-0-0.wav,2,0,1,1,2,3,dog_bark\n",
    )
    write_audio(us8k / "audio" / "fold10" / "1-0-0-0.wav", 0.25, 48000)
    write_audio(us8k / "audio" / "fold2" / "2-3-0-0.wav", 0.2, 22050)
    clotho = root / "clotho"
    write_text(
        clotho / "clotho_captions_development.csv",
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        "a.wav,one,two,three,four,five\n"
        "b.wav,one,two,three,four,five\n",
    )
    write_audio(clotho / "development" / "a.wav", 2.0)
    write_audio(clotho / "development" / "b.wav", 0.1)
    (root / "not-a-dataset").mkdir()
    return root


def test_summary_numbers(root):
    result = summarize(root)
    assert list(result) == ["clotho", "esc50", "us8k"]  # registry order
    for row in result.values():
        row.pop("convention")  # the adapters' business; absent from older adapters
    assert result["esc50"].pop("overlap")["teacher"] == 0  # tests/test_overlap.py
    assert result["esc50"] == {
        "role": "task",
        "clips": 3,
        "captions": 0,
        "classes": 2,
        "folds": ["1", "2"],
        "hours": pytest.approx(2.25 / 3600),
        "skipped": {"missing": 1, "unreadable": 1},
        "errors": [],
        "notes": [],
    }
    assert result["us8k"]["folds"] == ["2", "10"]  # numeric order, not "10" < "2"
    assert result["us8k"]["hours"] == pytest.approx(0.45 / 3600)
    assert result["clotho"] == {
        "role": "teacher",
        "clips": 2,
        "captions": 10,
        "classes": 0,
        "folds": ["development"],
        "hours": pytest.approx(2.1 / 3600),
        "skipped": {},
        "errors": [],
        "notes": [],
    }
    assert unusable(summarize(root)) == []


def test_render_lists_every_dataset(root):
    text = render(summarize(root))
    lines = text.splitlines()
    esc_line = next(line for line in lines if "esc50" in line)
    assert "task" in esc_line and "missing 1, unreadable 1" in esc_line
    assert "0.000625" in esc_line  # hours: 2.25 s / 3600
    clotho_line = next(line for line in lines if "clotho" in line)
    assert " 10 " in clotho_line and "development" in clotho_line
    assert any("us8k" in line and "2 10" in line for line in lines)
    assert "\x1b[" not in text  # plain text, no terminal colour codes


def test_root_without_datasets(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match=f"{tmp_path}: no dataset folder found; expected"):
        summarize(tmp_path)
    with pytest.raises(DatasetError, match="no dataset folder found.*fsd50k, clotho"):
        summarize(tmp_path / "missing")


# ----------------------------------------------------------------------------- broken datasets


def test_a_broken_dataset_is_a_row_and_the_others_still_count(tmp_path):
    write_esc50(tmp_path / "esc50", ["a.wav"])
    write_tone(tmp_path / "esc50" / "audio" / "a.wav", 1.0)
    (tmp_path / "us8k").mkdir()  # no metadata: unusable
    result = summarize(tmp_path)
    assert list(result) == ["esc50", "us8k"]
    assert result["esc50"]["clips"] == 1 and result["esc50"]["errors"] == []
    (error,) = result["us8k"]["errors"]
    assert re.match(r"us8k: .*UrbanSound8K\.csv not found", error)
    assert unusable(result) == ["us8k"]
    text = render(result)
    assert re.search(r"esc50 .* 1 .*\bok\b", text)
    assert re.search(r"us8k .* ERROR", text)
    assert f"us8k: error: {error}" in text


def test_nested_folder_gets_a_move_up_hint_that_works(tmp_path):
    write_us8k(tmp_path / "us8k" / "UrbanSound8K")  # unpacked one level too deep
    not_found, hint = summarize(tmp_path)["us8k"]["errors"]
    assert "UrbanSound8K.csv not found" in not_found
    assert "move the contents of us8k/UrbanSound8K up one level" in hint
    subprocess.run(fix_command(hint), shell=True, check=True)
    result = summarize(tmp_path)
    assert result["us8k"]["clips"] == 1 and unusable(result) == []


def test_archive_folder_names_get_rename_and_move_hints(tmp_path):
    write_us8k(tmp_path / "UrbanSound8K")
    (tmp_path / "ESC-50-master").mkdir()
    (tmp_path / "TUT-acoustic-scenes-2017-development").mkdir()
    (tmp_path / "FSD50K.dev_audio").mkdir()
    (tmp_path / "FSD50K.ground_truth").mkdir()
    (tmp_path / "clotho_audio_development").mkdir()
    write_text(tmp_path / "clotho_captions_development.csv", "file_name,caption_1\n")
    result = summarize(tmp_path)
    assert list(result) == ["fsd50k", "clotho", "esc50", "us8k", "tut17"]
    assert unusable(result) == list(result)
    us8k = result["us8k"]["errors"]
    assert us8k == [
        f"UrbanSound8K/ looks like us8k: rename it to us8k "
        f"(mv {tmp_path}/UrbanSound8K {tmp_path}/us8k)"
    ]
    assert result["esc50"]["errors"][0].startswith("ESC-50-master/ looks like esc50: rename")
    assert result["fsd50k"]["errors"] == [
        f"FSD50K.dev_audio/, FSD50K.ground_truth/ look like part of fsd50k: move them into "
        f"fsd50k/ (mkdir -p {tmp_path}/fsd50k && mv {tmp_path}/FSD50K.dev_audio "
        f"{tmp_path}/FSD50K.ground_truth {tmp_path}/fsd50k/)"
    ]
    (clotho,) = result["clotho"]["errors"]
    assert "clotho_audio_development/, clotho_captions_development.csv look like" in clotho
    (tut17,) = result["tut17"]["errors"]
    assert "TUT-acoustic-scenes-2017-development/ looks like part of tut17: move it" in tut17
    subprocess.run(fix_command(us8k[0]), shell=True, check=True)
    assert summarize(tmp_path)["us8k"]["clips"] == 1


def test_archive_folder_next_to_a_usable_dataset_is_a_note(tmp_path):
    write_us8k(tmp_path / "us8k")
    (tmp_path / "UrbanSound8K").mkdir()
    row = summarize(tmp_path)["us8k"]
    assert row["clips"] == 1 and row["errors"] == []
    assert row["notes"] == [
        "UrbanSound8K/ looks like us8k, and us8k/ exists too: "
        "merge what us8k/ lacks into it and remove UrbanSound8K/"
    ]


def test_all_audio_missing_is_an_error_naming_where_it_looked(tmp_path):
    write_esc50(tmp_path / "esc50", ["1-1-A-0.wav", "2-2-A-1.wav"])
    (tmp_path / "esc50" / "audio").mkdir()
    row = summarize(tmp_path)["esc50"]
    assert row["clips"] == 0 and row["skipped"] == {"missing": 2}
    (error,) = row["errors"]
    assert error.startswith(
        f"esc50: no readable clip (missing 2, e.g. {tmp_path}/esc50/audio/1-1-A-0.wav)"
    )
    manifest = load_dataset("esc50", tmp_path)
    assert f"looked for {getattr(manifest, 'looked_for', '') or LAYOUTS['esc50']}" in error


def _broken_dataset(root: Path) -> None:
    write_esc50(root / "esc50", ["a.wav"])
    write_tone(root / "esc50" / "audio" / "a.wav", 1.0)
    (root / "us8k").mkdir()


def _archive_names(root: Path) -> None:
    write_us8k(root / "UrbanSound8K")


def _nested(root: Path) -> None:
    write_us8k(root / "us8k" / "UrbanSound8K")


def _no_audio(root: Path) -> None:
    write_esc50(root / "esc50", ["a.wav"])


@pytest.mark.parametrize("build", [_broken_dataset, _archive_names, _nested, _no_audio])
def test_cli_prints_the_table_then_exits_2(tmp_path, build):
    build(tmp_path)
    run = cli(tmp_path)
    assert run.returncode == 2, run.stderr
    assert "datasets" in run.stdout and ": error: " in run.stdout  # the table, then the why
    assert run.stderr.startswith("clapsweep: error: unusable: ")
    assert "Traceback" not in run.stderr


def test_cli_json_has_errors_per_dataset_and_exits_2(tmp_path):
    _broken_dataset(tmp_path)
    run = cli(tmp_path, "--json")
    assert run.returncode == 2, run.stderr
    result = json.loads(run.stdout)
    assert result["esc50"]["errors"] == [] and result["esc50"]["clips"] == 1
    assert "UrbanSound8K.csv not found" in result["us8k"]["errors"][0]


def test_cli_on_a_good_root_exits_0(root):
    run = cli("--root", root)
    assert run.returncode == 0, run.stderr
    assert "esc50" in run.stdout and run.stderr == ""


# ----------------------------------------------------------------------------- --deep


@pytest.fixture
def damaged(tmp_path) -> Path:
    """esc50 with a good clip, a soft one, and three that only look fine from their headers."""
    root = tmp_path / "data"
    audio = root / "esc50" / "audio"
    write_esc50(root / "esc50", ["good.wav", "soft.wav", "cut.wav", "tiny.flac", "quiet.wav"])
    write_tone(audio / "good.wav", 1.0)
    write_tone(audio / "soft.wav", 1.0, amplitude=1e-3)  # quiet, but above the threshold
    write_tone(audio / "cut.wav", 1.0)
    (audio / "cut.wav").write_bytes((audio / "cut.wav").read_bytes()[:20000])
    write_tone(audio / "tiny.flac", 3.0)
    (audio / "tiny.flac").write_bytes((audio / "tiny.flac").read_bytes()[:100])
    write_tone(audio / "quiet.wav", 1.0, amplitude=5e-5)  # peak below 1e-4: silent
    return root


def test_header_only_summary_calls_damaged_files_healthy(damaged):
    row = summarize(damaged)["esc50"]
    assert row["clips"] == 5 and row["skipped"] == {}
    assert "truncated" not in row and row["errors"] == []


def test_deep_counts_truncated_corrupt_and_silent_files(damaged, tmp_path):
    bad_csv = tmp_path / "bad.csv"
    result = summarize(damaged, deep=True, jobs=1, bad_files=bad_csv)
    row = result["esc50"]
    assert (row["truncated"], row["corrupt"], row["silent"]) == (1, 1, 1)
    assert row["errors"] == []  # bad files are skipped in sweeps, not fatal
    with open(bad_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(Path(r["path"]).name, r["dataset"], r["problem"]) for r in rows] == [
        ("cut.wav", "esc50", "truncated"),
        ("quiet.wav", "esc50", "silent"),
        ("tiny.flac", "esc50", "corrupt"),
    ]
    assert all(r["path"] in r["detail"] for r in rows)
    assert all(Path(r["path"]).is_absolute() for r in rows)
    text = render(result)
    assert re.search(r"truncated .* corrupt .* silent", text)


def test_deep_on_processes_matches_and_exits_0(damaged, tmp_path):
    bad_csv = tmp_path / "bad.csv"
    run = cli(damaged, "--deep", "--jobs", "2", "--bad-files", bad_csv, "--json")
    assert run.returncode == 0, run.stderr
    row = json.loads(run.stdout)["esc50"]
    assert (row["truncated"], row["corrupt"], row["silent"]) == (1, 1, 1)
    assert len(bad_csv.read_text().splitlines()) == 1 + 3
    assert "5 files in" in run.stderr and "Traceback" not in run.stderr


def test_deep_dataset_where_nothing_decodes_is_unusable(damaged):
    write_esc50(damaged / "esc50", ["cut.wav", "tiny.flac"])
    result = summarize(damaged, deep=True)
    assert result["esc50"]["errors"] == ["esc50: none of the 2 clips decodes"]
    assert unusable(result) == ["esc50"]


def test_bad_files_needs_deep(root, capsys):
    assert main(["data", "summary", str(root), "--bad-files", "x.csv"]) == 2
    assert "add --deep" in capsys.readouterr().err


# ----------------------------------------------------------------------------- closed pipe


def test_closed_stdout_exits_quietly(root):
    command = [sys.executable, "-m", "clapsweep", "data", "summary", str(root)]
    child = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO
    )
    child.stdout.close()  # the reader is gone before the table is printed
    stderr = child.stderr.read().decode()
    assert child.wait(timeout=300) == 141  # 128 + SIGPIPE, as a shell reports it
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_piped_into_head_prints_no_traceback(root):
    command = f"{sys.executable} -m clapsweep data summary {root} | head -1"
    run = subprocess.run(
        command, shell=True, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=300
    )
    assert len(run.stdout.splitlines()) == 1
    assert "Traceback" not in run.stderr
