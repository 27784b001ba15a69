"""`summarize` and `render` on a small data root with real audio files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clapsweep.data.manifest import DatasetError
from clapsweep.data.summary import render, summarize


def write_audio(path: Path, seconds: float, rate: int = 44100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(round(seconds * rate)), rate)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


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
    assert result["esc50"] == {
        "role": "task",
        "clips": 3,
        "captions": 0,
        "classes": 2,
        "folds": ["1", "2"],
        "hours": pytest.approx(2.25 / 3600),
        "skipped": {"missing": 1, "unreadable": 1},
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
    }


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


def test_broken_dataset_folder_names_the_file(tmp_path):
    (tmp_path / "us8k").mkdir()
    with pytest.raises(DatasetError, match="us8k: .*UrbanSound8K.csv not found"):
        summarize(tmp_path)
