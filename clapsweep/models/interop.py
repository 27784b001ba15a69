"""Load PANNs CNN14 and MS-CLAP 2022 checkpoints into our models, strictly.

Both file formats are `{"model": state_dict}`; a bare state dict is accepted too.

PANNs (`Cnn14_mAP=0.431.pth`, qiuqiangkong/audioset_tagging_cnn) stores CNN14 with its
torchlibrosa front-end inside:
    spectrogram_extractor.stft.conv_real.weight   (n_fft // 2 + 1, 1, n_fft)
    spectrogram_extractor.stft.conv_imag.weight   (n_fft // 2 + 1, 1, n_fft)
    logmel_extractor.melW                         (n_fft // 2 + 1, n_mels)
Our front-end is `clapsweep.audio.LogMel`, computed from the config, so these keys are
recognised and dropped; given a FrontendConfig, their shapes must agree with its n_fft and
n_mels. (Sample rate, hop and f_min/f_max cannot be read from shapes: PANNs' AudioSet model
is 32 kHz, hop 320, 50-14000 Hz; MS-CLAP 2022 is 44.1 kHz with the same others.)

MS-CLAP 2022 (`CLAP_weights_2022.pth`, microsoft/CLAP, config_2022.yml: Cnn14 with
out_emb 2048, bert-base-uncased, d_proj 1024) stores `audio_encoder.base.*` (CNN14 with the
same front-end keys), `audio_encoder.projection.*` (2048 -> 1024), `caption_encoder.base.*`
(BertModel with pooler), `caption_encoder.projection.*` (768 -> 1024) and `logit_scale`.
MS-CLAP itself loads with strict=False; here every other key must match in name and shape,
and only keys ending in `position_ids` (a buffer older transformers saved) are tolerated.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from clapsweep.config import FrontendConfig
from clapsweep.errors import UserError
from clapsweep.models.clap import CLAP
from clapsweep.models.cnn14 import Cnn14

FRONTEND_KEYS = (
    "spectrogram_extractor.stft.conv_real.weight",
    "spectrogram_extractor.stft.conv_imag.weight",
    "logmel_extractor.melW",
)
TOLERATED_SUFFIX = "position_ids"
SHOW = 5  # key names shown in an error message


class CheckpointError(UserError):
    """A checkpoint file that is missing, unreadable or does not fit the model."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a `{"model": state_dict}` file (or of a bare state dict file)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({e})") from None
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
    state = read_state_dict(path)
    state = _drop_frontend(state, "", path, frontend_cfg)
    _load_strict(cnn14, state, path)


def load_msclap(clap: CLAP, path: str | Path, frontend_cfg: FrontendConfig | None = None) -> None:
    """Load an MS-CLAP 2022 checkpoint into `clap` (CNN14 + BERT-base), strictly."""
    if not isinstance(clap.audio_encoder.base, Cnn14):
        raise CheckpointError(
            f"{path}: an MS-CLAP 2022 checkpoint holds CNN14 audio weights; set model.audio: cnn14"
        )
    state = read_state_dict(path)
    state = _drop_frontend(state, "audio_encoder.base.", path, frontend_cfg)
    _load_strict(clap, state, path)


# ----------------------------------------------------------------------------- helpers


def _drop_frontend(
    state: dict[str, torch.Tensor],
    prefix: str,
    path: str | Path,
    frontend_cfg: FrontendConfig | None,
) -> dict[str, torch.Tensor]:
    """Remove the torchlibrosa front-end keys, checking their shapes against the config."""
    state = dict(state)
    found = {key: state.pop(prefix + key) for key in FRONTEND_KEYS if prefix + key in state}
    if frontend_cfg is None:
        return state
    n_fft, n_mels = frontend_cfg.n_fft, frontend_cfg.n_mels
    bins = n_fft // 2 + 1
    expected = {
        FRONTEND_KEYS[0]: (bins, 1, n_fft),
        FRONTEND_KEYS[1]: (bins, 1, n_fft),
        FRONTEND_KEYS[2]: (bins, n_mels),
    }
    for key, tensor in found.items():
        if tuple(tensor.shape) != expected[key]:
            raise CheckpointError(
                f"{path}: front-end key {prefix + key} has shape {tuple(tensor.shape)} but the "
                f"frontend config (n_fft {n_fft}, n_mels {n_mels}) gives {expected[key]}; "
                "set frontend.n_fft and frontend.n_mels to the checkpoint's values"
            )
    return state


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
