"""Audio front-end: decode, resample, crop/pad, window, and log-mel features.

Files are read with soundfile (wav, flac, ogg, mp3, ...), down-mixed to mono by the channel
mean and resampled with torchaudio. A file that cannot give trustworthy samples (unreadable,
truncated, empty, non-finite) raises AudioError; the data layer skips and counts such files.

Clip policies:
- training: `random_crop` (random crop when longer, zero-pad at the end when shorter);
- everything else (evaluation, embedding, curation): `eval_windows`, deterministic.

`LogMel` follows the PANNs / MS-CLAP convention (power mel spectrogram, slaney mel scale and
norm, 10*log10 with amin 1e-10).
"""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from clapsweep.config import FrontendConfig
from clapsweep.errors import ConfigError

# Formats whose declared length is only an estimate. MPEG audio has no length field: the count
# comes from a Xing/LAME tag or is guessed from file size and bitrate, so a valid file without a
# Xing frame or with an APE tag declares more frames than it holds. The other libsndfile formats
# store exact lengths (PCM data size, FLAC STREAMINFO, Ogg granule position): only there does a
# shortfall mean a cut file.
_ESTIMATED_LENGTH = frozenset({"MP3"})


class AudioError(Exception):
    """An audio file that cannot be decoded into trustworthy samples; names file and reason."""


def audio_info(path: str | Path) -> tuple[float, int, int]:
    """(duration in seconds, native sample rate, channels), read from the header only.

    Raises AudioError for an unreadable or zero-length file. A cut WAV reports the length
    still present; load_audio is what detects truncation.
    """
    info = _info(path)
    return info.frames / info.samplerate, int(info.samplerate), int(info.channels)


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Decode `path` into a mono float32 tensor of shape (samples,) at `sample_rate`.

    Channels are averaged. Raises AudioError, naming the file, for an unreadable, truncated,
    empty or non-finite file. Truncation is judged only for formats with exact lengths (WAV,
    FLAC, AIFF, Ogg, ...); an MP3 gives the frames that decode, so a cut MP3 loads as shorter.
    """
    info = _info(path)
    if info.format in ("WAV", "WAVEX"):
        _check_wav_data_chunk(path)
    try:
        data, native_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(f"{path}: cannot decode: {e}") from e
    if info.format not in _ESTIMATED_LENGTH and len(data) < info.frames:
        raise AudioError(
            f"{path}: truncated: the header declares {info.frames} frames "
            f"but only {len(data)} could be decoded"
        )
    if len(data) == 0:
        raise AudioError(f"{path}: empty: the file holds no audio frames")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: corrupt: the audio holds NaN or infinite samples")
    wave = torch.from_numpy(data.mean(axis=1, dtype=np.float32))
    if native_rate != sample_rate:
        with torch.no_grad():
            wave = _resampler(int(native_rate), int(sample_rate))(wave)
    return wave.contiguous()


def random_crop(wave: torch.Tensor, num_samples: int, generator: torch.Generator) -> torch.Tensor:
    """Training policy: a random `num_samples` crop when longer, zero-padded at the end when
    shorter. The only randomness comes from `generator`."""
    length = wave.shape[-1]
    if length > num_samples:
        start = int(torch.randint(0, length - num_samples + 1, (1,), generator=generator))
        return wave[start : start + num_samples]
    return torch.nn.functional.pad(wave, (0, num_samples - length))


def eval_windows(wave: torch.Tensor, num_samples: int) -> torch.Tensor:
    """The deterministic clip policy used everywhere outside training.

    Cuts `wave` (samples,) into non-overlapping windows of `num_samples` starting at
    0, n, 2n, ... and returns them as (W, num_samples). A final partial window is kept,
    zero-padded at the end, only if it is at least half a window long or if it is the only
    window (a clip shorter than one window gives one padded window; an empty one gives one
    window of zeros). Callers embed each window and average the W embeddings.
    """
    length = wave.shape[-1]
    full, rest = divmod(length, num_samples)
    windows = full + (1 if rest > 0 and (2 * rest >= num_samples or full == 0) else 0)
    windows = max(windows, 1)
    padded = torch.nn.functional.pad(wave, (0, max(0, windows * num_samples - length)))
    return padded[: windows * num_samples].reshape(windows, num_samples)


class LogMel(torch.nn.Module):
    """Waveforms (B, samples) -> log-mel (B, 1, frames, n_mels), frames = 1 + samples // hop.

    Centered STFT with reflect padding and a periodic Hann window, power 2, a librosa-style
    mel filterbank (slaney scale, slaney norm) from f_min to f_max, then 10*log10(max(S, 1e-10)).
    The window and filterbank are non-persistent buffers: they never enter a state_dict.
    The math runs in float32 even under autocast.
    """

    def __init__(self, cfg: FrontendConfig) -> None:
        super().__init__()
        _check_frontend(cfg)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate,
            n_fft=cfg.n_fft,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            n_mels=cfg.n_mels,
            window_fn=torch.hann_window,
            power=2.0,
            center=True,
            pad_mode="reflect",
            norm="slaney",
            mel_scale="slaney",
        )
        # Derived from the config, so they do not belong in checkpoints.
        for module in self.mel.modules():
            for name, buf in list(module.named_buffers(recurse=False)):
                module.register_buffer(name, buf, persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() != 2:
            raise ValueError(f"LogMel expects waveforms of shape (B, samples), got {wave.shape}")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            power = self.mel(wave.float())  # (B, n_mels, frames)
            logmel = 10.0 * torch.log10(torch.clamp(power, min=1e-10))
        return logmel.transpose(1, 2).unsqueeze(1)


# ----------------------------------------------------------------------------- helpers


def _info(path: str | Path) -> sf._SoundFileInfo:
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, OSError) as e:
        raise AudioError(f"{path}: unreadable: {e}") from e
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: empty: the file holds no audio frames")
    return info


def _check_wav_data_chunk(path: str | Path) -> None:
    """Raise AudioError when the WAV data chunk declares more bytes than the file holds.

    libsndfile silently shortens such files, so a cut download would pass as a shorter clip.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(12)[:4] != b"RIFF":
            return  # RF64 / RIFX: leave the check to libsndfile
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF are placeholders written by streaming recorders.
                available = size - pos - 8
                if chunk_size not in (0, 0xFFFFFFFF) and chunk_size > available:
                    raise AudioError(
                        f"{path}: truncated: the WAV header declares {chunk_size} data bytes "
                        f"but only {available} are present"
                    )
                return
            pos += 8 + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    # The same sinc kernel as torchaudio.functional.resample, built once per rate pair.
    return torchaudio.transforms.Resample(orig, new)


def _check_frontend(cfg: FrontendConfig) -> None:
    nyquist = cfg.sample_rate / 2
    if cfg.f_max > nyquist:
        raise ConfigError(
            f"frontend.f_max: {cfg.f_max} Hz is above the Nyquist frequency {nyquist:g} Hz of "
            f"frontend.sample_rate {cfg.sample_rate}; lower f_max or raise sample_rate"
        )
    if cfg.f_min >= cfg.f_max:
        raise ConfigError(f"frontend.f_min: {cfg.f_min} must be below f_max {cfg.f_max}")
    if cfg.win_length > cfg.n_fft:
        raise ConfigError(
            f"frontend.win_length: {cfg.win_length} must not exceed n_fft {cfg.n_fft}"
        )
