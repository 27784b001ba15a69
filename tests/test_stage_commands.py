"""The method's stages run by hand from the command line on the tiny synthworld:
train (teacher) -> embed -> curate -> train (student) -> eval, and their user errors."""

import json

import pytest
import torch
import yaml

from clapsweep.cli import main
from clapsweep.errors import UserError
from clapsweep.train import load_weights

TINY = {
    "frontend": {
        "sample_rate": 16000, "clip_seconds": 1.0, "n_fft": 512, "win_length": 512,
        "hop_length": 320, "n_mels": 32, "f_max": 8000,
    },
    "model": {"audio": "small_cnn", "audio_width": 8, "text": "minilm", "text_pooling": "mean", "dim": 32},
    "train": {"epochs": 1, "batch_size": 16, "lr": 1.0e-3, "freeze_text": True},
}  # fmt: skip


def _job(path, **extra):
    path.write_text(yaml.safe_dump(TINY | extra))
    return str(path)


@pytest.mark.slow
def test_teacher_embed_curate_student_by_hand(tmp_path, capsys):
    data = {"root": str(tmp_path / "world"), "synth": {"scale": "tiny"}, "tasks": ["esc50"]}
    teacher = tmp_path / "teacher"
    assert main(["train", "--config", _job(tmp_path / "t.yaml", out=str(teacher), data=data)]) == 0
    assert json.loads(capsys.readouterr().out)["eval"]["esc50"]["n"] == 15
    assert main(["embed", "--teacher", str(teacher), "--out", str(tmp_path / "emb")]) == 0
    assert json.loads(capsys.readouterr().out)["wild_clips"] > 0
    imp = tmp_path / "du"
    args = ["curate", "--embed", str(tmp_path / "emb"), "--strategy", "du", "--sigma", "0.0"]
    assert main([*args, "--top-k", "1", "--out", str(imp)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["n_pairs"] == counts["n_unique_clips"] > 0  # top-1: one caption per clip
    student = {"teacher": str(teacher), "embed": str(tmp_path / "emb"), "improvement": str(imp)}
    train = TINY["train"] | {"beta": 0.3, "replay": 0.5}
    job = _job(
        tmp_path / "s.yaml", out=str(tmp_path / "s"), data=data, student=student, train=train
    )
    assert main(["train", "--config", job]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train"]["pairs"] == counts["n_pairs"] and out["train"]["steps"] >= 1
    assert main(["eval", "--checkpoint", str(tmp_path / "s"), "--tasks", "esc50"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["esc50"]["accuracy"] <= 1.0


def test_user_errors_exit_2_with_one_message(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("out: x\ntrain: {beta: 2.0}\n")
    assert main(["train", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"clapsweep: error: {bad}: train.beta: expected a value in [0.0, 1.0], got 2.0"
    )
    student = {"teacher": str(tmp_path / "t"), "embed": str(tmp_path), "improvement": str(tmp_path)}
    job = _job(tmp_path / "s.yaml", out=str(tmp_path / "s"), student=student)
    assert main(["train", "--config", job]) == 2
    assert "student.teacher: " in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert main(["eval", "--checkpoint", str(tmp_path / "nothing")]) == 2
    assert f"--checkpoint: {tmp_path / 'nothing'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["eval", "--checkpoint", str(tmp_path / "empty")]) == 2
    assert "empty/config.json: not found" in capsys.readouterr().err
    args = ["curate", "--embed", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*args, "--strategy", "ads", "--task", "esc50", "--sigma", "0.5"]) == 2
    assert "--sigma-ds: required by --strategy ads" in capsys.readouterr().err
    assert main([*args, "--strategy", "du", "--sigma", "0.5"]) == 2
    assert "holds no embeddings; run `clapsweep embed` first" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    assert main([*args, "--strategy", "dss"]) == 2
    assert "--strategy: expected du, ds or ads, got 'dss'" in capsys.readouterr().err
    assert main([*args, "--strategy", "du", "--sigma", "1.4"]) == 2
    assert "--sigma: expected a value in [0, 1], got 1.4" in capsys.readouterr().err
    assert main([*args, "--strategy", "ds", "--task", "dcase", "--sigma-ds", "0.5"]) == 2
    assert "--task: expected esc50, us8k or tut17, got 'dcase'" in capsys.readouterr().err
    job = tmp_path / "job"
    job.mkdir()
    (job / "config.json").write_text("{}")
    assert main(["eval", "--checkpoint", str(job)]) == 2
    assert "config.json: has no 'data' section" in capsys.readouterr().err
    (job / "config.json").write_text('{"data": {}, "frontend": {}, "model": {}}')
    assert main(["eval", "--checkpoint", str(job), "--tasks", "esc50", "dcase"]) == 2
    assert "--tasks: unknown task dcase" in capsys.readouterr().err
    (job / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="model.pt: .*not a PyTorch checkpoint file"):
        load_weights(torch.nn.Linear(1, 1), job / "model.pt")
    nodata = {"root": str(tmp_path / "none")}
    assert main(["train", "--config", _job(tmp_path / "n.yaml", out=str(job), data=nodata)]) == 2
    assert "data.root: " in capsys.readouterr().err


def test_version_flag_prints_the_installed_version(capsys, monkeypatch):
    import importlib.metadata

    from clapsweep import __version__, cli, version

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"clapsweep {importlib.metadata.version('clapsweep')}\n"

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert version() == __version__
