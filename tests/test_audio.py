"""Audio decoding, clip policies and the log-mel front-end, on real files written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from clapsweep.audio import AudioError, LogMel, audio_info, eval_windows, load_audio, random_crop
from clapsweep.config import FrontendConfig
from clapsweep.errors import ConfigError


def _tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    mono = 0.3 * np.sin(2 * math.pi * freq * t)
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32)


def _can_write_mp3(tmp_path) -> bool:
    try:
        sf.write(tmp_path / "probe.mp3", _tone(0.1, 16000), 16000)
    except (sf.SoundFileError, RuntimeError, TypeError, ValueError):
        return False
    return True


# ----------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
@pytest.mark.parametrize("rate", [48000, 44100, 22050, 16000])
def test_load_any_format_and_rate_gives_target_length(tmp_path, ext, rate):
    if ext == "mp3" and not _can_write_mp3(tmp_path):
        pytest.skip("this libsndfile cannot write mp3")
    path = tmp_path / f"clip.{ext}"
    sf.write(path, _tone(1.5, rate, channels=2), rate)

    duration, native, channels = audio_info(path)
    assert native == rate and channels == 2
    assert duration == pytest.approx(1.5, abs=1e-6)

    wave = load_audio(path, 44100)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(wave.shape[0] - 1.5 * 44100) <= 1
    # The tone survives decoding and resampling: RMS of a 0.3 sine is 0.3 / sqrt(2).
    middle = wave[2000:-2000]
    assert middle.pow(2).mean().sqrt().item() == pytest.approx(0.3 / math.sqrt(2), rel=0.05)


def test_stereo_downmix_is_channel_mean(tmp_path):
    path = tmp_path / "lr.wav"
    data = np.stack([np.full(800, 0.5), np.full(800, -0.1)], axis=1).astype(np.float32)
    sf.write(path, data, 16000, subtype="FLOAT")
    wave = load_audio(path, 16000)
    assert wave.shape == (800,)
    assert torch.allclose(wave, torch.full((800,), 0.2), atol=1e-7)


def test_more_channels_and_no_resample_keep_samples(tmp_path):
    path = tmp_path / "four.wav"
    data = np.random.default_rng(0).uniform(-0.5, 0.5, (1000, 4)).astype(np.float32)
    sf.write(path, data, 44100, subtype="FLOAT")
    wave = load_audio(path, 44100)
    assert torch.allclose(wave, torch.from_numpy(data.mean(axis=1)), atol=1e-7)


def test_very_short_clip(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, np.full((10, 1), 0.25, np.float32), 48000, subtype="FLOAT")
    assert load_audio(path, 48000).shape == (10,)
    # ceil(10 * 44100 / 48000) = 10 samples after resampling.
    resampled = load_audio(path, 44100)
    assert resampled.shape == (10,) and torch.isfinite(resampled).all()


def _assert_audio_error(path, reason: str) -> None:
    with pytest.raises(AudioError) as info:
        load_audio(path, 16000)
    assert str(path) in str(info.value)
    assert reason in str(info.value)


def test_empty_files_raise(tmp_path):
    no_frames = tmp_path / "no_frames.wav"
    sf.write(no_frames, np.zeros((0, 1), np.float32), 16000)
    _assert_audio_error(no_frames, "empty")
    with pytest.raises(AudioError, match="empty"):
        audio_info(no_frames)

    zero_bytes = tmp_path / "zero_bytes.wav"
    zero_bytes.write_bytes(b"")
    _assert_audio_error(zero_bytes, "unreadable")
    with pytest.raises(AudioError, match="unreadable"):
        audio_info(zero_bytes)


def test_garbage_and_missing_files_raise(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(1).bytes(4000))
    _assert_audio_error(garbage, "unreadable")
    _assert_audio_error(tmp_path / "missing.flac", "unreadable")


def test_truncated_wav_raises(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, _tone(1.0, 16000), 16000)
    path.write_bytes(path.read_bytes()[:20000])  # header says 32000 data bytes
    _assert_audio_error(path, "truncated")


def test_truncated_flac_raises(tmp_path):
    path = tmp_path / "cut.flac"
    rng = np.random.default_rng(2)
    sf.write(path, rng.uniform(-0.5, 0.5, (48000, 1)).astype(np.float32), 48000)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AudioError) as info:
        load_audio(path, 16000)
    assert str(path) in str(info.value)


def test_cut_mp3_loads_the_part_present(tmp_path):
    # An MP3 declares only an estimated length, so a shortfall is not evidence of a cut file:
    # the frames that decode are what the clip holds.
    if not _can_write_mp3(tmp_path):
        pytest.skip("this libsndfile cannot write mp3")
    path = tmp_path / "cut.mp3"
    sf.write(path, _tone(1.0, 48000), 48000)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    wave = load_audio(path, 48000)
    assert 0.3 * 48000 < wave.shape[0] < 0.7 * 48000


_MPEG1_LAYER3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)


def _mp3_with_estimated_length(path, seconds: float, rate: int = 44100) -> None:
    """A constant-bitrate MP3 as many encoders and taggers leave it: no Xing/Info frame, so the
    decoder guesses the length from file size and bitrate, and an APE tag at the end that the
    guess counts as audio. (Over 1 KB of tag and mpg123 gives up instead.)"""
    rng = np.random.default_rng(3)
    audio = _tone(seconds, rate) + 0.05 * rng.standard_normal((round(seconds * rate), 1))
    # libsndfile applies the bitrate mode only together with a compression level.
    options = {"bitrate_mode": "CONSTANT", "compression_level": 0.9}  # 56 kbit/s
    sf.write(path, audio.astype(np.float32), rate, format="MP3", **options)
    data = path.read_bytes()
    header = int.from_bytes(data[:4], "big")
    assert (header >> 19) & 3 == 3 and (header >> 10) & 3 == 0  # MPEG-1 at 44.1 kHz
    kbps = _MPEG1_LAYER3_KBPS[(header >> 12) & 15]
    first = 144 * kbps * 1000 // rate + ((header >> 9) & 1)  # the Info frame's length
    assert b"Info" in data[:first] or b"Xing" in data[:first]
    path.write_bytes(data[first:] + b"APETAGEX" + bytes(900))


def test_mp3_whose_header_overestimates_its_length_loads(tmp_path):
    if not _can_write_mp3(tmp_path):
        pytest.skip("this libsndfile cannot write mp3")
    path = tmp_path / "recording.mp3"
    try:
        _mp3_with_estimated_length(path, 2.4)
    except TypeError:  # soundfile < 0.13 has no bitrate_mode
        pytest.skip("this soundfile cannot choose a constant MP3 bitrate")
    declared = sf.info(str(path)).frames
    decoded = len(sf.read(path)[0])
    assert declared > decoded + 2 * 1152  # the header promises more than two frames extra
    wave = load_audio(path, 44100)
    assert wave.shape[0] == decoded
    assert abs(decoded - 2.4 * 44100) < 3 * 1152  # the whole recording, give or take frames


def test_non_finite_samples_raise(tmp_path):
    path = tmp_path / "nan.wav"
    data = np.zeros((100, 1), np.float32)
    data[50] = np.nan
    sf.write(path, data, 16000, subtype="FLOAT")
    _assert_audio_error(path, "NaN")


# ----------------------------------------------------------------------------- clip policies


def test_random_crop_is_seeded_and_in_range():
    wave = torch.arange(100, dtype=torch.float32)
    crops = [random_crop(wave, 30, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(crops[0], crops[1])
    start = int(crops[0][0])
    assert 0 <= start <= 70
    assert torch.equal(crops[0], torch.arange(start, start + 30, dtype=torch.float32))
    starts = {int(random_crop(wave, 30, torch.Generator().manual_seed(s))[0]) for s in range(20)}
    assert len(starts) > 5  # different seeds give different crops


def test_random_crop_pads_at_end_and_keeps_exact_length():
    wave = torch.ones(10)
    out = random_crop(wave, 16, torch.Generator().manual_seed(0))
    assert torch.equal(out, torch.cat([torch.ones(10), torch.zeros(6)]))
    assert torch.equal(random_crop(wave, 10, torch.Generator()), wave)


@pytest.mark.parametrize(
    ("length", "expected"),
    [(40, 1), (100, 1), (140, 1), (150, 2), (160, 2), (300, 3), (0, 1)],
)
def test_eval_windows_counts(length, expected):
    windows = eval_windows(torch.ones(length), 100)
    assert windows.shape == (expected, 100)
    # Every real sample appears once, in order; the rest is padding.
    assert windows.sum().item() == min(length, expected * 100)


def test_eval_windows_layout():
    wave = torch.arange(1, 161, dtype=torch.float32)
    windows = eval_windows(wave, 100)
    assert torch.equal(windows[0], wave[:100])
    assert torch.equal(windows[1, :60], wave[100:])
    assert torch.equal(windows[1, 60:], torch.zeros(40))
    short = eval_windows(torch.ones(40), 100)
    assert torch.equal(short[0], torch.cat([torch.ones(40), torch.zeros(60)]))


# ----------------------------------------------------------------------------- log-mel


def test_logmel_shape_paper_defaults():
    cfg = FrontendConfig()
    wave = torch.randn(2, cfg.clip_samples) * 0.1
    out = LogMel(cfg)(wave)
    assert cfg.clip_samples == 220500
    assert out.shape == (2, 1, 1 + 220500 // 320, 64) == (2, 1, 690, 64)
    assert out.dtype == torch.float32


def test_logmel_silence_is_minus_100_db():
    out = LogMel(FrontendConfig())(torch.zeros(1, 44100))
    assert torch.equal(out, torch.full_like(out, -100.0))


def _slaney_mel(hz: float) -> float:
    # librosa's slaney scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above.
    if hz < 1000:
        return 3 * hz / 200
    return 15 + 27 * math.log(hz / 1000) / math.log(6.4)


def test_logmel_sine_peaks_in_its_mel_bin():
    cfg = FrontendConfig()
    low, high = _slaney_mel(cfg.f_min), _slaney_mel(cfg.f_max)
    for freq in (440.0, 3000.0):
        wave = torch.sin(2 * math.pi * freq * torch.arange(44100) / 44100)[None]
        out = LogMel(cfg)(wave)[0, 0]  # (frames, n_mels)
        # Filter m has its peak at mel point m + 1 of n_mels + 2 equally spaced points.
        position = (_slaney_mel(freq) - low) / (high - low) * (cfg.n_mels + 1) - 1
        peak = int(out[10:-10].mean(dim=0).argmax())
        assert abs(peak - position) <= 1, (freq, peak, position)


def _slaney_hz(mel: float) -> float:
    if mel < 15:
        return 200 * mel / 3
    return 1000 * math.exp((mel - 15) * math.log(6.4) / 27)


def test_logmel_values_match_hand_computed_spectrum():
    # A sine of amplitude a at an exact FFT bin k, under a periodic Hann window of N samples,
    # has |X[k]| = a*N/4 and |X[k±1]| = a*N/8 and nothing else. Each mel value is then
    # 10*log10 of those powers weighted by librosa's slaney filters, computed here by hand.
    sr, n_fft, n_mels = 16000, 512, 8
    cfg = FrontendConfig(sample_rate=sr, n_fft=n_fft, win_length=n_fft, hop_length=160,
                         n_mels=n_mels, f_min=0.0, f_max=8000.0)  # fmt: skip
    k, a = 32, 0.5  # 32 * 16000 / 512 = 1000 Hz
    wave = a * torch.sin(2 * math.pi * k * torch.arange(sr, dtype=torch.float64) / n_fft)
    out = LogMel(cfg)(wave.float()[None])[0, 0]
    assert out.shape == (1 + sr // 160, n_mels)

    power = {k - 1: (a * n_fft / 8) ** 2, k: (a * n_fft / 4) ** 2, k + 1: (a * n_fft / 8) ** 2}
    top = _slaney_mel(8000.0)
    edges = [_slaney_hz(top * i / (n_mels + 1)) for i in range(n_mels + 2)]
    for m in range(n_mels):
        lo, mid, hi = edges[m : m + 3]
        energy = 0.0
        for j, p in power.items():
            f = j * sr / n_fft
            rise, fall = (f - lo) / (mid - lo), (hi - f) / (hi - mid)
            energy += p * max(0.0, min(rise, fall)) * 2 / (hi - lo)
        if energy > 1e-3:  # bins the sine reaches; the others hold only rounding noise
            expected = 10 * math.log10(energy)
            assert out[50, m].item() == pytest.approx(expected, abs=0.01), m


def test_logmel_has_no_state_and_survives_autocast():
    cfg = FrontendConfig()
    module = LogMel(cfg)
    assert module.state_dict() == {}
    assert {name for name, _ in module.named_buffers()} == {
        "mel.spectrogram.window",
        "mel.mel_scale.fb",
    }
    wave = torch.randn(1, 8000) * 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(wave)
    assert out.dtype == torch.float32
    assert torch.allclose(out, module(wave))


def test_logmel_rejects_f_max_above_nyquist():
    with pytest.raises(ConfigError, match="frontend.f_max"):
        LogMel(FrontendConfig(sample_rate=16000))
