"""What every benchmark shares: the machine, the device, timing helpers, named configs,
captions, WAV files and the model.

WAV files are written with the stdlib `wave` module (16-bit PCM mono), which the stand-in
decoder of `clapsweep.bench.wave_soundfile` reads where soundfile is missing.
"""

from __future__ import annotations

import os
import platform
import sys
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from clapsweep.bench.wave_soundfile import audio_decoder
from clapsweep.config import FrontendConfig, ModelConfig, TrainConfig, from_dict, load_yaml
from clapsweep.data.datasets import Pair
from clapsweep.errors import UserError
from clapsweep.models.clap import CLAP

FILE_RATE = 48000  # the benchmark's audio files, like most AudioSet downloads
DEMO_SWEEP = Path("sweeps/demo.yaml")
# Used when sweeps/demo.yaml does not exist.
DEMO_FRONTEND = FrontendConfig(
    sample_rate=16000,
    clip_seconds=2.0,
    n_fft=512,
    win_length=512,
    hop_length=160,
    n_mels=64,
    f_max=8000.0,
)
DEMO_MODEL = ModelConfig(
    audio="small_cnn", audio_width=16, text="minilm", text_pooling="mean", dim=256
)


# ----------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def resolve_device(name: str | None) -> torch.device:
    """`cuda` when available unless `name` says otherwise; asking for a missing GPU is an error."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise UserError(f"--device: expected cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; use --device cpu")
    return torch.device(name)


def machine(device: torch.device) -> dict:
    import torchaudio

    on_gpu = device.type == "cuda"
    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if on_gpu else cpu_model(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "python": platform.python_version(),
        "audio_decoder": audio_decoder(),
    }


def gpu_workers() -> int:
    """DataLoader workers on a GPU machine: most cores, two left for the main process."""
    return max(1, min(8, (os.cpu_count() or 2) - 2))


# ----------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    """Wait for the GPU (nothing on the CPU): every timing ends with this."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ratio(x: float | None, y: float | None) -> float | None:
    return None if not x or not y else round(x / y, 3)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- inputs


def named_configs(name: str) -> tuple[FrontendConfig, ModelConfig, TrainConfig, str]:
    """(frontend, model, training settings, where they come from) of `paper` or `demo`.

    `paper` is CNN14 + BERT-base (built from its config, no download) at 44.1 kHz, 5 s,
    batch 64, both towers trained. `demo` reads the frontend, model and train sections of
    sweeps/demo.yaml when it exists (its freeze_text included), else 16 kHz 2 s small_cnn
    width 16 + minilm dim 256, batch 32.
    """
    if name == "paper":
        return FrontendConfig(), ModelConfig(), TrainConfig(batch_size=64), "paper defaults"
    if name != "demo":
        raise UserError(f"--config: expected paper or demo, got {name!r}")
    if DEMO_SWEEP.is_file():
        data = load_yaml(DEMO_SWEEP)
        try:
            frontend = from_dict(FrontendConfig, data.get("frontend"), "frontend")
            model = from_dict(ModelConfig, data.get("model"), "model")
            train_cfg = from_dict(TrainConfig, data.get("train"), "train")
        except UserError as e:
            raise UserError(f"{DEMO_SWEEP}: {e}") from None
        return frontend, model, train_cfg, str(DEMO_SWEEP)
    return DEMO_FRONTEND, DEMO_MODEL, TrainConfig(batch_size=32), "built-in demo defaults"


# Caption parts: one or two clauses, 3-21 words (12 on average), like AudioCaps and Clotho.
_SUBJECTS = (
    "a dog|a man|a woman|several birds|a car engine|heavy rain|a small child|a crowd of people|"
    "a passing train|running water|the wind|an old wooden door|a telephone|a motorcycle|"
    "footsteps on gravel|a large bell|an electric drill"
).split("|")
_VERBS = (
    "barks|speaks softly|sings|idles|falls|laughs|cheers|passes by|flows steadily|howls|"
    "creaks open|rings twice|accelerates|echoes|hums"
).split("|")
_TAILS = (
    "in the distance|on a busy street|while traffic hums in the background|and then stops|"
    "near a crowded market|as a door slams shut|inside a large hall|"
    "with loud music playing nearby|over a steady rumble of machinery|"
).split("|")


def captions(n: int, seed: int = 0) -> list[str]:
    """`n` seeded captions of AudioCaps/Clotho length."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_TAILS)]
        if rng.random() < 0.5:
            words += ["while", rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_TAILS)]
        out.append(" ".join(w for w in words if w))
    return out


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Mono 16-bit PCM WAV from float samples in [-1, 1], with the stdlib only."""
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def write_clips(folder: str | Path, n: int, seconds: float, rate: int, seed: int = 0) -> list[str]:
    """`n` distinct WAV files of `seconds` at `rate` (two tones plus noise); their paths.

    Files differ by a circular shift and gain of one signal, which is quick to write even
    for thousands of files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    base = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1234 * t)
    base = base + 0.05 * rng.standard_normal(t.size)
    paths = []
    for i in range(n):
        path = folder / f"clip{i:06d}.wav"
        write_wav(path, rng.uniform(0.5, 1.0) * np.roll(base, int(rng.integers(t.size))), rate)
        paths.append(str(path))
    return paths


def pairs_for(paths: Sequence[str], seed: int = 0) -> list[Pair]:
    """One captioned pair per file, as the training data holds them."""
    texts = captions(len(paths), seed)
    return [Pair(f"bench{i}#0", f"bench{i}", p, texts[i]) for i, p in enumerate(paths)]


def build_model(frontend: FrontendConfig, model_cfg: ModelConfig, seed: int = 0) -> CLAP:
    """The CLAP model on the CPU with random weights, every tower built from its config.

    Speed does not depend on the weights, and this needs only the text model's config and
    tokenizer (no weights file), which is all scripts/gpu_bench.sh carries to a GPU machine.
    """
    torch.manual_seed(seed)
    return CLAP(model_cfg, frontend, pretrained_text=False)
