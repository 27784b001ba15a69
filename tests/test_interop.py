"""PANNs CNN14 and MS-CLAP 2022 checkpoints load strictly into our models.

The checkpoints are built here from key lists written down from the public code
(qiuqiangkong/audioset_tagging_cnn `pytorch/models.py` with torchlibrosa's `Spectrogram` and
`LogmelFilterBank`; microsoft/CLAP `msclap/models/clap.py`, `audio.py`, `configs/config_2022.yml`
with bert-base-uncased), not from our modules, with random values. The stored front-end tensors are computed here from the formulas of
librosa 0.10 (`filters.mel`: slaney scale and norm) and torchlibrosa (`STFT`: periodic Hann
window centred in n_fft times the DFT matrix), in numpy, independently of our torchaudio
front-end.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import shlex
import shutil

import numpy as np
import pytest
import torch

from clapsweep.config import FrontendConfig, ModelConfig
from clapsweep.models import CLAP, CheckpointError, Cnn14, load_msclap, load_panns_cnn14
from clapsweep.models.interop import read_state_dict
from clapsweep.torchload import load_trusted_weights

Shapes = dict[str, tuple[int, ...]]


def bn(prefix: str, n: int) -> Shapes:
    stats = {f"{prefix}.{k}": (n,) for k in ("weight", "bias", "running_mean", "running_var")}
    return stats | {f"{prefix}.num_batches_tracked": ()}


def panns_cnn14_keys(n_fft: int = 1024, n_mels: int = 64, classes: int = 527) -> Shapes:
    """PANNs `Cnn14` state dict: torchlibrosa front-end, bn0, six conv blocks, fc1, fc_audioset."""
    bins = n_fft // 2 + 1
    keys: Shapes = {
        "spectrogram_extractor.stft.conv_real.weight": (bins, 1, n_fft),
        "spectrogram_extractor.stft.conv_imag.weight": (bins, 1, n_fft),
        "logmel_extractor.melW": (bins, n_mels),
        **bn("bn0", n_mels),
    }
    channels = [1, 64, 128, 256, 512, 1024, 2048]
    for i in range(1, 7):
        cin, cout = channels[i - 1], channels[i]
        keys[f"conv_block{i}.conv1.weight"] = (cout, cin, 3, 3)
        keys[f"conv_block{i}.conv2.weight"] = (cout, cout, 3, 3)
        keys |= bn(f"conv_block{i}.bn1", cout) | bn(f"conv_block{i}.bn2", cout)
    keys |= {
        "fc1.weight": (2048, 2048),
        "fc1.bias": (2048,),
        "fc_audioset.weight": (classes, 2048),
        "fc_audioset.bias": (classes,),
    }
    return keys


def bert_keys(hidden: int, layers: int, intermediate: int, vocab: int = 30522) -> Shapes:
    """transformers BertModel (with pooler) as saved in 2022, `position_ids` buffer included."""
    keys: Shapes = {
        "embeddings.position_ids": (1, 512),
        "embeddings.word_embeddings.weight": (vocab, hidden),
        "embeddings.position_embeddings.weight": (512, hidden),
        "embeddings.token_type_embeddings.weight": (2, hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
        "pooler.dense.weight": (hidden, hidden),
        "pooler.dense.bias": (hidden,),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}"
        for name in ("self.query", "self.key", "self.value", "output.dense"):
            keys[f"{p}.attention.{name}.weight"] = (hidden, hidden)
            keys[f"{p}.attention.{name}.bias"] = (hidden,)
        keys |= {
            f"{p}.attention.output.LayerNorm.weight": (hidden,),
            f"{p}.attention.output.LayerNorm.bias": (hidden,),
            f"{p}.intermediate.dense.weight": (intermediate, hidden),
            f"{p}.intermediate.dense.bias": (intermediate,),
            f"{p}.output.dense.weight": (hidden, intermediate),
            f"{p}.output.dense.bias": (hidden,),
            f"{p}.output.LayerNorm.weight": (hidden,),
            f"{p}.output.LayerNorm.bias": (hidden,),
        }
    return keys


def projection(prefix: str, d_in: int, d_out: int) -> Shapes:
    return {
        f"{prefix}.linear1.weight": (d_out, d_in),
        f"{prefix}.linear2.weight": (d_out, d_out),
        f"{prefix}.layer_norm.weight": (d_out,),
        f"{prefix}.layer_norm.bias": (d_out,),
    }


def msclap_2022_keys(hidden=768, layers=12, intermediate=3072, d_proj=1024) -> Shapes:
    """MS-CLAP 2022: Cnn14 (out_emb 2048) + bert-base-uncased, projections to d_proj."""
    keys = {f"audio_encoder.base.{k}": s for k, s in panns_cnn14_keys().items()}
    keys |= projection("audio_encoder.projection", 2048, d_proj)
    keys |= {
        f"caption_encoder.base.{k}": s for k, s in bert_keys(hidden, layers, intermediate).items()
    }
    keys |= projection("caption_encoder.projection", hidden, d_proj)
    return keys | {"logit_scale": ()}


def random_state(shapes: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith(("num_batches_tracked", "position_ids")):
            state[key] = torch.randint(0, 1000, shape, generator=g)
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


def save(state: dict, path) -> str:
    torch.save({"model": state}, path)
    return str(path)


# ----------------------------------------------------------------------------- front-end


def _hz_to_mel(f: np.ndarray) -> np.ndarray:  # librosa, htk=False (slaney)
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    safe = np.maximum(f, min_log_hz)
    return np.where(
        f >= min_log_hz, min_log_hz / f_sp + np.log(safe / min_log_hz) / logstep, f / f_sp
    )


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def librosa_mel(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa.filters.mel(sr=, n_fft=, n_mels=, fmin=, fmax=): (n_mels, 1 + n_fft // 2)."""
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(
        np.linspace(_hz_to_mel(np.float64(fmin)), _hz_to_mel(np.float64(fmax)), n_mels + 2)
    )
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


def torchlibrosa_stft(n_fft: int, win_length: int, window: str = "hann") -> tuple:
    """torchlibrosa STFT(n_fft, win_length, window).conv_real/conv_imag weights."""
    n = np.arange(win_length)
    if window == "hann":  # librosa get_window('hann', fftbins=True): periodic
        w = 0.5 - 0.5 * np.cos(2 * np.pi * n / win_length)
    else:  # periodic hamming
        w = 0.54 - 0.46 * np.cos(2 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2  # librosa.util.pad_center
    w = np.pad(w, (left, n_fft - win_length - left))
    x, y = np.meshgrid(np.arange(n_fft), np.arange(n_fft))
    dft = np.power(np.exp(-2 * np.pi * 1j / n_fft), x * y)
    kernels = dft[:, : n_fft // 2 + 1] * w[:, None]
    real = torch.Tensor(np.real(kernels).T)[:, None, :]
    imag = torch.Tensor(np.imag(kernels).T)[:, None, :]
    return real, imag


def panns_frontend(
    sample_rate=44100,
    n_fft=1024,
    win_length=None,
    n_mels=64,
    fmin=50.0,
    fmax=14000.0,
    window="hann",
) -> dict[str, torch.Tensor]:
    """The three torchlibrosa tensors a PANNs Cnn14(sample_rate, window_size=n_fft, ...) stores."""
    real, imag = torchlibrosa_stft(n_fft, win_length or n_fft, window)
    return {
        "spectrogram_extractor.stft.conv_real.weight": real,
        "spectrogram_extractor.stft.conv_imag.weight": imag,
        "logmel_extractor.melW": torch.Tensor(
            librosa_mel(sample_rate, n_fft, n_mels, fmin, fmax).T
        ),
    }


def prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


# ----------------------------------------------------------------------------- PANNs


@pytest.fixture(autouse=True)
def _no_checkpoints_left(tmp_path):
    """Full-size CNN14 / MS-CLAP files are 0.3-0.6 GB each: none outlives its test."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope="module")
def panns(tmp_path_factory):
    # Random weights with the front-end of a 44.1 kHz, 50-14000 Hz PANNs Cnn14 (our defaults).
    state = random_state(panns_cnn14_keys()) | panns_frontend()
    folder = tmp_path_factory.mktemp("panns")
    yield state, save(state, folder / "Cnn14_mAP=0.431.pth")
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def cnn14() -> Cnn14:
    return Cnn14(n_mels=64)


def test_panns_checkpoint_loads_strictly(panns, cnn14):
    state, path = panns
    load_panns_cnn14(cnn14, path, FrontendConfig())  # shapes and front-end values agree
    loaded = cnn14.state_dict()
    for key in ("bn0.running_mean", "conv_block6.conv2.weight", "fc1.bias", "fc_audioset.weight"):
        assert torch.equal(loaded[key], state[key])
    assert (
        loaded["conv_block3.bn2.num_batches_tracked"]
        == state["conv_block3.bn2.num_batches_tracked"]
    )
    # Every key of our model came from the file; only the three front-end keys were dropped.
    assert set(state) - set(loaded) == {
        "spectrogram_extractor.stft.conv_real.weight",
        "spectrogram_extractor.stft.conv_imag.weight",
        "logmel_extractor.melW",
    }
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())


def test_panns_frontend_shape_mismatch(panns, cnn14):
    _, path = panns
    with pytest.raises(CheckpointError, match=r"logmel_extractor\.melW.*\(513, 64\).*n_mels 128"):
        load_panns_cnn14(cnn14, path, FrontendConfig(n_mels=128))
    with pytest.raises(CheckpointError, match=r"conv_real\.weight.*n_fft 2048"):
        load_panns_cnn14(cnn14, path, FrontendConfig(n_fft=2048, win_length=2048))


def frontend_error(cnn14, tmp_path, frontend: dict, cfg: FrontendConfig, name="fe.pth") -> str:
    """The message for a file holding only front-end keys: the front-end is checked before the
    other keys, so a refusal here is the front-end's and an accepted front-end gets as far as
    the missing-keys error."""
    path = save(frontend, tmp_path / name)
    with pytest.raises(CheckpointError) as err:
        load_panns_cnn14(cnn14, path, cfg)
    return str(err.value)


def test_panns_32k_frontend_refused_under_44k(cnn14, tmp_path):
    # PANNs' AudioSet Cnn14_mAP=0.431: 32 kHz, window 1024, 64 mels, 50-14000 Hz. Same shapes.
    before = cnn14.bn0.running_mean.clone()
    message = frontend_error(cnn14, tmp_path, panns_frontend(sample_rate=32000), FrontendConfig())
    assert (
        "fe.pth: the checkpoint's mel filterbank (logmel_extractor.melW) was built for "
        + (
            "sample_rate 32000, f_min 50, f_max 14000 (frontend config: sample_rate 44100, f_min 50, "
            "f_max 14000, n_fft 1024, n_mels 64)"
        )
        in message
    )
    assert "set frontend.sample_rate: 32000 or use a checkpoint for sample_rate 44100" in message
    assert "STFT" not in message  # the STFT kernels do not depend on the sample rate
    assert "\n" not in message and "missing key" not in message
    assert torch.equal(cnn14.bn0.running_mean, before)
    # Under a 32 kHz front-end the same front-end is accepted (the load goes on to the keys).
    message = frontend_error(
        cnn14, tmp_path, panns_frontend(sample_rate=32000), FrontendConfig(sample_rate=32000)
    )
    assert "missing key(s)" in message and "melW" not in message


def test_panns_frontend_for_another_band_or_window_refused(cnn14, tmp_path):
    cfg = FrontendConfig()
    message = frontend_error(cnn14, tmp_path, panns_frontend(fmax=8000), cfg)
    assert "was built for sample_rate 44100, f_min 50, f_max 8000" in message
    assert "set frontend.f_max: 8000 or use a checkpoint for" in message
    # PANNs Cnn14_16k: 16 kHz, window 512, 50-8000 Hz, read with only n_fft changed.
    small = FrontendConfig(n_fft=512, win_length=512)
    message = frontend_error(
        cnn14, tmp_path, panns_frontend(16000, n_fft=512, fmax=8000), small, "16k.pth"
    )
    assert "built for sample_rate 16000, f_min 50, f_max 8000" in message
    assert "set frontend.sample_rate: 16000, frontend.f_max: 8000 or" in message
    # A band that is no candidate: refused with the difference, settings not identified.
    message = frontend_error(cnn14, tmp_path, panns_frontend(fmax=13000), cfg)
    assert "mel filterbank (logmel_extractor.melW) differs from the one the frontend" in message
    assert "by up to 0.00" in message and "could not be identified" in message
    # STFT kernels of another window length, or of another window.
    message = frontend_error(cnn14, tmp_path, panns_frontend(win_length=800), cfg)
    assert "STFT kernels (spectrogram_extractor.stft.conv_real.weight and " in message
    assert "were built for win_length 800 (frontend config: n_fft 1024, win_length 1024)" in message
    assert "melW" not in message
    message = frontend_error(cnn14, tmp_path, panns_frontend(window="hamming"), cfg)
    assert "STFT kernels" in message and "no Hann window length explains them" in message


def test_panns_frontend_values_accepted(cnn14, tmp_path):
    # Exact front-ends for other settings pass, and so does the opposite sign of the
    # imaginary kernel (the same power spectrum); the load then stops at the missing keys.
    for cfg, frontend in [
        (
            FrontendConfig(n_fft=512, win_length=400, n_mels=40, f_min=0, f_max=8000),
            panns_frontend(44100, n_fft=512, win_length=400, n_mels=40, fmin=0, fmax=8000),
        ),
        (
            FrontendConfig(sample_rate=48000, f_min=0, f_max=24000),
            panns_frontend(48000, fmin=0, fmax=24000),
        ),
    ]:
        assert "missing key(s)" in frontend_error(cnn14, tmp_path, frontend, cfg)
    flipped = panns_frontend()
    flipped["spectrogram_extractor.stft.conv_imag.weight"] *= -1
    assert "missing key(s)" in frontend_error(cnn14, tmp_path, flipped, FrontendConfig())


def test_panns_missing_key_fails_and_leaves_model_untouched(panns, cnn14, tmp_path):
    state, _ = panns
    broken = {k: v for k, v in state.items() if k != "fc1.bias"}
    broken["fc1.weight"] = torch.zeros(2048, 2048)
    path = save(broken, tmp_path / "missing.pth")
    before = cnn14.fc1.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"missing\.pth.*1 missing key\(s\): fc1\.bias"):
        load_panns_cnn14(cnn14, path)
    assert torch.equal(cnn14.fc1.weight, before)


def test_panns_unexpected_key_fails(panns, cnn14, tmp_path):
    state, _ = panns
    path = save(state | {"spec_augmenter.extra": torch.ones(3)}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): spec_augmenter\.extra"):
        load_panns_cnn14(cnn14, path)


def test_panns_shape_mismatch_fails(panns, cnn14, tmp_path):
    state, _ = panns
    path = save(state | {"fc_audioset.weight": torch.ones(10, 2048)}, tmp_path / "shape.pth")
    with pytest.raises(
        CheckpointError, match=r"fc_audioset\.weight \(10, 2048\) vs model \(527, 2048\)"
    ):
        load_panns_cnn14(cnn14, path)


def test_position_ids_tolerated_and_bare_state_dict_accepted(panns, cnn14, tmp_path):
    state, _ = panns
    path = tmp_path / "bare.pth"
    torch.save(state | {"embeddings.position_ids": torch.arange(512)[None]}, path)
    load_panns_cnn14(cnn14, path)
    assert torch.equal(cnn14.fc1.weight, state["fc1.weight"])


def test_unreadable_checkpoints(cnn14, tmp_path):
    with pytest.raises(
        CheckpointError, match=r"nowhere\.pth: PANNs CNN14 checkpoint file not found"
    ):
        load_panns_cnn14(cnn14, tmp_path / "nowhere.pth")
    with pytest.raises(CheckpointError, match=r"checkpoint path is a directory, not a file"):
        load_panns_cnn14(cnn14, tmp_path)
    numbers = tmp_path / "numbers.pth"
    torch.save({"model": {"a": 1}}, numbers)
    with pytest.raises(CheckpointError, match=r"numbers\.pth: not a model checkpoint"):
        load_panns_cnn14(cnn14, numbers)


def test_not_a_pytorch_file(cnn14, tmp_path):
    real = tmp_path / "real.pth"
    torch.save({"model": {"w": torch.randn(64, 64)}}, real)
    legacy = tmp_path / "legacy.pth"
    torch.save({"model": {"w": torch.randn(64, 64)}}, legacy, _use_new_zipfile_serialization=False)
    files = {
        "notes.pth": b"not a checkpoint",
        "random.pth": np.random.default_rng(0).bytes(4096),
        "empty.pth": b"",
        "truncated.pth": real.read_bytes()[: real.stat().st_size // 2],
        "truncated_legacy.pth": legacy.read_bytes()[: legacy.stat().st_size // 2],
        "plain_pickle.pth": pickle.dumps({"a": 1}, protocol=2),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            load_panns_cnn14(cnn14, tmp_path / name)
        message = str(err.value)
        assert message.startswith(f"{tmp_path / name}: PANNs CNN14 checkpoint is not a PyTorch ")
        assert "is not a PyTorch checkpoint file (truncated or another format)" in message
        assert "\n" not in message and "weights_only" not in message, message
    assert str(err.value).endswith("(truncated or another format)")
    with pytest.raises(
        CheckpointError, match=r"\(truncated or another format\); the file is empty"
    ):
        load_trusted_weights(tmp_path / "empty.pth")


class Settings:
    """A custom object saved next to the weights, as training scripts do."""

    lr = 1e-3


@pytest.mark.parametrize(
    "extra, named",
    [
        (argparse.Namespace(lr=1e-3), "argparse.Namespace"),
        (Settings(), "Settings"),  # test_interop.Settings or tests.test_interop.Settings
        (np.random.RandomState(0).get_state(), "numpy"),  # a sampler state, as in PANNs' files
    ],
)
def test_pickled_objects_get_the_conversion_message(extra, named, tmp_path):
    path = tmp_path / "Cnn14_16k_mAP=0.438.pth"
    weights = {"fc1.bias": torch.randn(4), "fc1.weight": torch.randn(4, 4)}
    torch.save({"model": weights, "extra": extra}, path)
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path, "PANNs CNN14 checkpoint")
    message = str(err.value)
    assert message.startswith(f"{path}: PANNs CNN14 checkpoint holds Python objects (")
    assert named in message.split(")")[0]
    assert "that a safe load refuses; convert it once, in an environment you trust" in message
    assert "not a PyTorch checkpoint" not in message
    # torch's own advice (re-run with weights_only=False, allowlist globals) is not passed on.
    assert "\n" not in message and "Re-running" not in message
    assert "add_safe_globals" not in message and "`False`" not in message
    # The one-off command it gives converts the file into one the safe load accepts.
    command = shlex.split(message.split(" python -c ", 1)[1])
    code, rest = command[0], command[1:]
    out = tmp_path / "Cnn14_16k_mAP=0.438.state.pth"
    assert rest == ["and", "give", str(out), "instead"]
    exec(code, {})
    state = read_state_dict(out)
    assert state.keys() == weights.keys()
    assert all(torch.equal(state[k], weights[k]) for k in weights)


def test_load_trusted_weights_returns_the_object(tmp_path):
    path = tmp_path / "model.pt"
    obj = {"model": {"w": torch.ones(2)}, "step": 3, "config": {"lr": 1e-4, "name": "x"}}
    torch.save(obj, path)
    loaded = load_trusted_weights(path, "model weights")
    assert loaded["step"] == 3 and loaded["config"] == obj["config"]
    assert torch.equal(loaded["model"]["w"], torch.ones(2))
    with pytest.raises(CheckpointError, match=r"gone\.pt: model weights file not found"):
        load_trusted_weights(tmp_path / "gone.pt", "model weights")
    with pytest.raises(
        CheckpointError, match=r"is a directory, not a file.*\(it holds model\.pt\)"
    ):
        load_trusted_weights(tmp_path, "model weights")


# ----------------------------------------------------------------------------- MS-CLAP


def test_our_clap_has_exactly_the_msclap_2022_keys(monkeypatch):
    """CNN14 + BERT-base (from BertConfig, no download) vs the MS-CLAP 2022 key list."""
    # Built on the meta device (shapes only, not 190 M parameters), where torchaudio cannot
    # build a mel filterbank; the front-end holds no state (test_models checks), so swap it.
    monkeypatch.setattr("clapsweep.models.clap.LogMel", lambda cfg: torch.nn.Identity())
    with torch.device("meta"):
        clap = CLAP(ModelConfig(audio="cnn14", text="bert-base-uncased"), FrontendConfig(), False)
    ours = {k: tuple(v.shape) for k, v in clap.state_dict().items()}
    theirs = {
        k: s
        for k, s in msclap_2022_keys().items()
        if not k.endswith("position_ids") and "_extractor." not in k
    }
    assert ours == theirs
    assert ours["audio_encoder.projection.linear1.weight"] == (1024, 2048)
    assert ours["caption_encoder.projection.linear1.weight"] == (1024, 768)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    from transformers import AutoTokenizer, BertConfig

    from clapsweep.models import resolve_text_model

    folder = tmp_path_factory.mktemp("tiny_bert")
    BertConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24
    ).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_text_model("minilm")).save_pretrained(folder)
    return str(folder)


def test_msclap_checkpoint_loads_strictly(tiny_bert, tmp_path):
    # The MS-CLAP layout with a 2-layer, 16-wide BERT to keep the file small.
    cfg = ModelConfig(audio="cnn14", text=tiny_bert, dim=32)
    clap = CLAP(cfg, FrontendConfig(), pretrained_text=False)
    state = random_state(msclap_2022_keys(hidden=16, layers=2, intermediate=24, d_proj=32), seed=1)
    state |= prefixed(panns_frontend(), "audio_encoder.base.")  # MS-CLAP 2022: 44.1 kHz
    path = save(state, tmp_path / "CLAP_weights_2022.pth")
    load_msclap(clap, path, FrontendConfig())
    loaded = clap.state_dict()
    assert set(loaded) == {
        k for k in state if not k.endswith("position_ids") and "_extractor." not in k
    }
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())
    assert clap.logit_scale.item() == state["logit_scale"].item()

    # A missing and an extra key, each named, with the file.
    del state["caption_encoder.projection.layer_norm.bias"]
    state["caption_encoder.base.embeddings.extra"] = torch.ones(2)
    path = save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as err:
        load_msclap(clap, path)
    message = str(err.value)
    assert "broken.pth" in message
    assert "1 missing key(s): caption_encoder.projection.layer_norm.bias" in message
    assert "1 unexpected key(s): caption_encoder.base.embeddings.extra" in message

    # A 32 kHz front-end under the audio_encoder.base. prefix is refused with its settings.
    path = save(prefixed(panns_frontend(32000), "audio_encoder.base."), tmp_path / "32k.pth")
    with pytest.raises(CheckpointError) as err:
        load_msclap(clap, path, FrontendConfig())
    message = str(err.value)
    assert (
        "mel filterbank (audio_encoder.base.logmel_extractor.melW) was built for sample_rate 32000"
        in message
    )
    assert "set frontend.sample_rate: 32000" in message


def test_msclap_needs_cnn14(tiny_bert, tmp_path):
    cfg = ModelConfig(audio="small_cnn", audio_width=4, text=tiny_bert, dim=32)
    clap = CLAP(cfg, FrontendConfig(), pretrained_text=False)
    with pytest.raises(CheckpointError, match="model.audio: cnn14"):
        load_msclap(clap, tmp_path / "CLAP_weights_2022.pth")


# ----------------------------------------------------------------------------- the teacher


def _teacher_config(path: str, frontend_policy: str = "match", **frontend) -> dict:
    model = ModelConfig(text="minilm", text_pooling="mean", dim=32, audio_checkpoint=path)
    model.audio_checkpoint_frontend = frontend_policy
    front = dataclasses.asdict(FrontendConfig(**frontend))
    return {"model": dataclasses.asdict(model), "frontend": front, "runtime": {"key": "t"}}


def test_teacher_starts_from_the_panns_checkpoint(panns):
    """model.audio_checkpoint initialises the teacher's CNN14 through the strict loader."""
    from clapsweep.pipeline import teacher_model

    state, path = panns
    model = teacher_model(_teacher_config(path))
    own = model.audio_encoder.base.state_dict()
    for key in ("conv_block1.conv1.weight", "fc1.weight", "bn0.running_mean"):
        assert torch.equal(own[key], state[key]), key


def test_teacher_refuses_or_adapts_a_32k_checkpoint(tmp_path):
    """Under the paper's 44.1 kHz front-end a 32 kHz PANNs checkpoint is refused by default;
    `audio_checkpoint_frontend: own` takes its network weights and keeps our front-end."""
    from clapsweep.pipeline import teacher_model

    state = random_state(panns_cnn14_keys()) | panns_frontend(sample_rate=32000)
    path = save(state, tmp_path / "Cnn14_32k.pth")
    with pytest.raises(CheckpointError, match="sample_rate 32000"):
        teacher_model(_teacher_config(path))
    model = teacher_model(_teacher_config(path, "own"))
    assert torch.equal(model.audio_encoder.base.state_dict()["fc1.weight"], state["fc1.weight"])
