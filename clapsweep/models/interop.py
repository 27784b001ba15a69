"""Load PANNs CNN14 and MS-CLAP 2022 checkpoints into our models, strictly.

Both file formats are `{"model": state_dict}`; a bare state dict is accepted too. Files are
read with `clapsweep.torchload.load_trusted_weights` (weights-only, never arbitrary pickle).

PANNs (`Cnn14_mAP=0.431.pth`, qiuqiangkong/audioset_tagging_cnn) stores CNN14 with its
torchlibrosa front-end inside:
    spectrogram_extractor.stft.conv_real.weight   (n_fft // 2 + 1, 1, n_fft)
    spectrogram_extractor.stft.conv_imag.weight   (n_fft // 2 + 1, 1, n_fft)
    logmel_extractor.melW                         (n_fft // 2 + 1, n_mels)
conv_real / conv_imag are a periodic Hann window of win_length, centred in n_fft, times the
DFT basis (cos, -sin); melW is librosa's slaney mel filterbank for (sample_rate, n_fft, n_mels,
f_min, f_max), transposed. Our front-end is `clapsweep.audio.LogMel`, computed from the
config, so these keys are dropped; given a FrontendConfig, they must first agree with it in
shape and in value: the expected tensors are taken from LogMel's own window and filterbank.
A filterbank for other settings (PANNs' AudioSet CNN14 is 32 kHz, 50-14000 Hz; MS-CLAP 2022
is 44.1 kHz, 50-14000 Hz) is refused with the settings it was built for, found by trying
common sample rates and f_min/f_max pairs. The hop length is not stored and cannot be checked.

MS-CLAP 2022 (`CLAP_weights_2022.pth`, microsoft/CLAP, config_2022.yml: Cnn14 with
out_emb 2048, bert-base-uncased, d_proj 1024) stores `audio_encoder.base.*` (CNN14 with the
same front-end keys), `audio_encoder.projection.*` (2048 -> 1024), `caption_encoder.base.*`
(BertModel with pooler), `caption_encoder.projection.*` (768 -> 1024) and `logit_scale`.
MS-CLAP itself loads with strict=False; here every other key must match in name and shape,
and only keys ending in `position_ids` (a buffer older transformers saved) are tolerated.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch
import torchaudio
from torch import nn

from clapsweep.audio import LogMel
from clapsweep.config import FrontendConfig
from clapsweep.models.clap import CLAP
from clapsweep.models.cnn14 import Cnn14
from clapsweep.torchload import CheckpointError, load_trusted_weights

__all__ = ["CheckpointError", "load_msclap", "load_panns_cnn14", "read_state_dict"]

FRONTEND_KEYS = (
    "spectrogram_extractor.stft.conv_real.weight",
    "spectrogram_extractor.stft.conv_imag.weight",
    "logmel_extractor.melW",
)
REAL, IMAG, MELW = FRONTEND_KEYS
TOLERATED_SUFFIX = "position_ids"
SHOW = 5  # key names shown in an error message

# A stored front-end tensor matches when max |stored - expected| <= FRONTEND_RTOL * max
# |expected|. Exact matches computed independently (librosa / torchlibrosa formulas in float64,
# stored as float32 the way PANNs does, against torchaudio's float32 filterbank) differ by at
# most 5e-6 relative for the filterbank (2.2e-7 for the STFT kernels) over 8-48 kHz, n_fft
# 256-2048; a 32 kHz filterbank under a 44.1 kHz config differs by 1.0 relative (1.8e-2
# absolute) and f_max 13000 instead of 14000 by 0.39. 1e-4 leaves 20x room for rounding and
# refuses every real settings mismatch by a factor of over 1000.
FRONTEND_RTOL = 1e-4
# Settings tried to name what a mismatching filterbank was built for (n_fft and n_mels come
# from its shape); f_min/f_max pairs of PANNs (50-14000, 16 kHz: 50-8000, 8 kHz: 50-4000) and
# full-band filterbanks.
CANDIDATE_RATES = (8000, 16000, 22050, 32000, 44100, 48000)
CANDIDATE_BANDS = ((50, 14000), (50, 8000), (50, 4000), (0, 8000), (0, None), (50, None))


def read_state_dict(path: str | Path, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The state dict of a `{"model": state_dict}` file (or of a bare state dict file)."""
    obj = load_trusted_weights(path, what)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    ):
        raise CheckpointError(
            f"{path}: not a model checkpoint: expected a state dict or {{'model': state_dict}}"
        )
    return dict(obj)


def load_panns_cnn14(
    cnn14: Cnn14, path: str | Path, frontend_cfg: FrontendConfig | None = None
) -> None:
    """Load a PANNs CNN14 checkpoint into `cnn14`, strictly (see the module docstring)."""
    state = read_state_dict(path, "PANNs CNN14 checkpoint")
    state = _drop_frontend(state, "", path, frontend_cfg)
    _load_strict(cnn14, state, path)


def load_msclap(clap: CLAP, path: str | Path, frontend_cfg: FrontendConfig | None = None) -> None:
    """Load an MS-CLAP 2022 checkpoint into `clap` (CNN14 + BERT-base), strictly."""
    if not isinstance(clap.audio_encoder.base, Cnn14):
        raise CheckpointError(
            f"{path}: an MS-CLAP 2022 checkpoint holds CNN14 audio weights; set model.audio: cnn14"
        )
    state = read_state_dict(path, "MS-CLAP checkpoint")
    state = _drop_frontend(state, "audio_encoder.base.", path, frontend_cfg)
    _load_strict(clap, state, path)


# ----------------------------------------------------------------------------- front-end


def _drop_frontend(
    state: dict[str, torch.Tensor],
    prefix: str,
    path: str | Path,
    frontend_cfg: FrontendConfig | None,
) -> dict[str, torch.Tensor]:
    """Remove the torchlibrosa front-end keys, checking their shapes and values against the
    config (without a config they are dropped unchecked)."""
    state = dict(state)
    found = {key: state.pop(prefix + key) for key in FRONTEND_KEYS if prefix + key in state}
    if frontend_cfg is None or not found:
        return state
    n_fft, n_mels = frontend_cfg.n_fft, frontend_cfg.n_mels
    bins = n_fft // 2 + 1
    shapes = {REAL: (bins, 1, n_fft), IMAG: (bins, 1, n_fft), MELW: (bins, n_mels)}
    for key, tensor in found.items():
        if tuple(tensor.shape) != shapes[key]:
            raise CheckpointError(
                f"{path}: front-end key {prefix + key} has shape {tuple(tensor.shape)} but the "
                f"frontend config (n_fft {n_fft}, n_mels {n_mels}) gives {shapes[key]}; "
                "set frontend.n_fft and frontend.n_mels to the checkpoint's values"
            )
    expected = _frontend_tensors(frontend_cfg)
    problems = []
    if any(not _matches(found[k], expected[k], k) for k in (REAL, IMAG) if k in found):
        problems.append(_stft_problem(found, frontend_cfg, prefix, expected))
    if MELW in found and not _matches(found[MELW], expected[MELW], MELW):
        problems.append(_mel_problem(found[MELW], frontend_cfg, prefix, expected[MELW]))
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(problems))
    return state


def _frontend_tensors(cfg: FrontendConfig) -> dict[str, torch.Tensor]:
    """The torchlibrosa tensors equivalent to our LogMel for `cfg`, from LogMel's own window
    and filterbank (float64): torch.stft centres the win_length window in n_fft like
    torchlibrosa's pad_center, and its imaginary part is the -sin one."""
    mel = LogMel(cfg).mel
    window = mel.spectrogram.window.double()
    n_fft, win = cfg.n_fft, window.numel()
    left = (n_fft - win) // 2
    window = torch.nn.functional.pad(window, (left, n_fft - win - left))
    k = torch.arange(n_fft // 2 + 1)[:, None]
    t = torch.arange(n_fft)[None, :]
    angle = (2 * torch.pi / n_fft) * ((k * t) % n_fft).double()  # exact phase, no big arguments
    return {
        REAL: (torch.cos(angle) * window)[:, None, :],
        IMAG: (-torch.sin(angle) * window)[:, None, :],
        MELW: mel.mel_scale.fb.double(),  # (n_fft // 2 + 1, n_mels), like melW
    }


def _max_diff(stored: torch.Tensor, expected: torch.Tensor, key: str = "") -> float:
    diff = (stored.double() - expected).abs().max().item()
    if key == IMAG:  # either sign of the imaginary part gives the same power spectrum
        diff = min(diff, (stored.double() + expected).abs().max().item())
    return diff


def _tolerance(expected: torch.Tensor) -> float:
    return FRONTEND_RTOL * expected.abs().max().item()


def _matches(stored: torch.Tensor, expected: torch.Tensor, key: str = "") -> bool:
    return _max_diff(stored, expected, key) <= _tolerance(expected)


def _stft_problem(
    found: dict[str, torch.Tensor],
    cfg: FrontendConfig,
    prefix: str,
    expected: dict[str, torch.Tensor],
) -> str:
    keys = [k for k in (REAL, IMAG) if k in found]
    diff = max(_max_diff(found[k], expected[k], k) for k in keys)
    names = " and ".join(prefix + k for k in keys)
    win = _identify_win_length(found, cfg)
    if win is not None and win != cfg.win_length:
        return (
            f"the checkpoint's STFT kernels ({names}) were built for win_length {win} "
            f"(frontend config: n_fft {cfg.n_fft}, win_length {cfg.win_length}); "
            f"set frontend.win_length: {win} or use a checkpoint for win_length {cfg.win_length}"
        )
    return (
        f"the checkpoint's STFT kernels ({names}) differ by up to {diff:.3g} (tolerance "
        f"{_tolerance(expected[keys[0]]):.3g}) from a periodic Hann window of win_length "
        f"{cfg.win_length} centred in n_fft {cfg.n_fft} times the DFT basis, and no Hann "
        "window length explains them: the checkpoint's front-end cannot be reproduced here"
    )


def _identify_win_length(found: dict[str, torch.Tensor], cfg: FrontendConfig) -> int | None:
    """The Hann window length whose kernels match the stored ones, if any. Row 0 of conv_real
    (frequency 0) is the padded window itself."""
    if REAL not in found:
        return None
    row, n_fft = found[REAL][0, 0].double(), cfg.n_fft
    for win in range(1, n_fft + 1):
        window = torch.hann_window(win, periodic=True, dtype=torch.float64)
        left = (n_fft - win) // 2
        window = torch.nn.functional.pad(window, (left, n_fft - win - left))
        if _matches(row, window):
            other = dataclasses.replace(cfg, win_length=win)
            expected = _frontend_tensors(other)
            if all(_matches(found[k], expected[k], k) for k in (REAL, IMAG) if k in found):
                return win
    return None


def _settings(cfg: FrontendConfig) -> str:
    return f"sample_rate {cfg.sample_rate}, f_min {cfg.f_min:g}, f_max {cfg.f_max:g}"


def _mel_problem(
    stored: torch.Tensor, cfg: FrontendConfig, prefix: str, expected: torch.Tensor
) -> str:
    key = prefix + MELW
    built_for = _identify_mel(stored, cfg)
    config = f"frontend config: {_settings(cfg)}, n_fft {cfg.n_fft}, n_mels {cfg.n_mels}"
    if built_for is not None:
        changes = ", ".join(
            f"frontend.{name}: {getattr(built_for, name):g}"
            for name in ("sample_rate", "f_min", "f_max")
            if getattr(built_for, name) != getattr(cfg, name)
        )
        return (
            f"the checkpoint's mel filterbank ({key}) was built for {_settings(built_for)} "
            f"({config}); set {changes} or use a checkpoint for {_settings(cfg)}"
        )
    rates = ", ".join(str(r) for r in CANDIDATE_RATES)
    return (
        f"the checkpoint's mel filterbank ({key}) differs from the one the frontend config "
        f"gives by up to {_max_diff(stored, expected):.3g} (tolerance "
        f"{_tolerance(expected):.3g}; {config}), and the settings it was built for could not "
        f"be identified (tried sample rates {rates} with f_min/f_max 50-14000, 50-8000, "
        "50-4000, 0-8000, 0 or 50 to Nyquist); set frontend.sample_rate, f_min and f_max "
        "to the checkpoint's or use a checkpoint built for this front-end"
    )


def _identify_mel(stored: torch.Tensor, cfg: FrontendConfig) -> FrontendConfig | None:
    """The first candidate front-end (cfg with another sample rate / band) whose filterbank
    matches `stored`, or None. Candidates use LogMel's own filterbank function, mel scale and
    norm (building a LogMel per candidate would cost 45 ms each)."""
    ours = LogMel(cfg).mel.mel_scale
    seen = {(cfg.sample_rate, cfg.f_min, cfg.f_max)}
    for rate in dict.fromkeys((cfg.sample_rate, *CANDIDATE_RATES)):
        nyquist = rate / 2
        for f_min, f_max in ((cfg.f_min, cfg.f_max), *CANDIDATE_BANDS):
            f_max = nyquist if f_max is None else f_max
            if (rate, f_min, f_max) in seen or not f_min < f_max <= nyquist:
                continue
            seen.add((rate, f_min, f_max))
            other = dataclasses.replace(
                cfg, sample_rate=rate, f_min=float(f_min), f_max=float(f_max)
            )
            with warnings.catch_warnings():  # empty filters at small n_fft are expected here
                warnings.simplefilter("ignore")
                fb = torchaudio.functional.melscale_fbanks(
                    ours.fb.shape[0],
                    other.f_min,
                    other.f_max,
                    ours.n_mels,
                    rate,
                    ours.norm,
                    ours.mel_scale,
                ).double()
            if _matches(stored, fb):
                return other
    return None


# ----------------------------------------------------------------------------- helpers


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOW])
    more = f", ... ({len(keys) - SHOW} more)" if len(keys) > SHOW else ""
    return f"{shown}{more}"


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], path: str | Path) -> None:
    """Copy `state` into `model`; any key or shape difference (bar position_ids) is an error."""
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith(TOLERATED_SUFFIX))
    unexpected = sorted(k for k in state if k not in own and not k.endswith(TOLERATED_SUFFIX))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_names(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_names(unexpected)}")
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(state)
        if k in own and state[k].shape != own[k].shape
    ]
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {_names(shapes)}")
    if problems:
        raise CheckpointError(
            f"{path}: checkpoint does not match the model: " + "; ".join(problems)
        )
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
