"""Performance benchmarks: training, data pipeline, DU curation and embedding throughput.

Every benchmark returns one plain dict (JSON-ready) holding its figures, the machine (device
name, torch version) and the exact configuration it ran, so a figure can be repeated.

- `bench_train`: samples/s of (a) the model alone on on-device random inputs with our training
  settings, (b) the real `train()` fed by the real data pipeline from WAV files on disk (AudioCache
  cold and/or warm), (c) a plain fp32 eager step with text padded to 100 tokens; ratios b/a, a/c,
  b/c. `profile_train` writes where one demo training spends its time.
- `bench_data`: clips/s of decode + resample + crop per worker count and source rate, with no
  cache, a cold cache and a warm cache.
- `bench_curate`: `build_du` / `threshold_pairs` time against the bare chunked products of the
  same sizes, and peak memory against the size of the full similarity matrix.
- `bench_eval`: `evaluate.embed_audio` throughput against training throughput.

Warm-up steps are never timed; on CUDA every timing ends with torch.cuda.synchronize.

WAV files are written with the stdlib `wave` module. When soundfile cannot be imported (the GPU
machines lack it), a stdlib decoder for 16-bit PCM WAV stands in for it so the real pipeline
still runs; `machine.audio_decoder` in every result says which one decoded.
"""

from __future__ import annotations

import contextlib
import copy
import cProfile
import dataclasses
import importlib.machinery
import io
import os
import platform
import pstats
import sys
import tempfile
import threading
import time
import types
import warnings
import wave
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch


def _wave_soundfile() -> types.ModuleType:
    """A stand-in for the parts of soundfile that clapsweep.audio uses, for 16-bit PCM WAV."""
    mod = types.ModuleType("soundfile")
    # A spec, as imported modules have: transformers looks soundfile up with find_spec.
    mod.__spec__ = importlib.machinery.ModuleSpec("soundfile", None)

    class SoundFileError(Exception):
        pass

    def info(path):
        try:
            with wave.open(str(path), "rb") as w:
                return types.SimpleNamespace(
                    frames=w.getnframes(),
                    samplerate=w.getframerate(),
                    channels=w.getnchannels(),
                    format="WAV",
                )
        except (wave.Error, EOFError) as e:
            raise SoundFileError(f"{path}: {e}") from None

    def read(path, dtype="float32", always_2d=False):
        try:
            with wave.open(str(path), "rb") as w:
                width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
                raw = w.readframes(w.getnframes())
        except (wave.Error, EOFError) as e:
            raise SoundFileError(f"{path}: {e}") from None
        if width != 2:
            raise SoundFileError(f"{path}: the stdlib decoder reads 16-bit PCM only")
        data = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(dtype) / 32768
        return (data if always_2d or channels > 1 else data[:, 0]), rate

    mod.SoundFileError, mod.info, mod.read = SoundFileError, info, read
    return mod


try:
    import soundfile  # noqa: F401

    AUDIO_DECODER = "soundfile"
except (ImportError, OSError):
    # Only this process is affected, and only where clapsweep.audio could not import at all.
    sys.modules["soundfile"] = _wave_soundfile()
    AUDIO_DECODER = "stdlib wave (soundfile missing)"

from clapsweep import curate, evaluate  # noqa: E402
from clapsweep.config import (  # noqa: E402
    FrontendConfig,
    ModelConfig,
    TrainConfig,
    from_dict,
    load_yaml,
    to_dict,
)
from clapsweep.data.cache import AudioCache  # noqa: E402
from clapsweep.data.datasets import Pair  # noqa: E402
from clapsweep.errors import UserError  # noqa: E402
from clapsweep.loader import PairDataset, epoch_batches, make_loader  # noqa: E402
from clapsweep.losses import clap_loss  # noqa: E402
from clapsweep.models.clap import CLAP  # noqa: E402
from clapsweep.train import (  # noqa: E402
    FrozenText,
    TrainData,
    autocast_for,
    make_optimizer,
    train,
)

FILE_RATE = 48000  # the benchmark's audio files, like most AudioSet downloads
PLAIN_TOKENS = 100  # the fixed text padding of the plain baseline (c)
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
        "audio_decoder": AUDIO_DECODER,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ratio(x: float | None, y: float | None) -> float | None:
    return None if not x or not y else round(x / y, 3)


def _log(message: str) -> None:
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


def _pairs(paths: Sequence[str], seed: int = 0) -> list[Pair]:
    texts = captions(len(paths), seed)
    return [Pair(f"bench{i}#0", f"bench{i}", p, texts[i]) for i, p in enumerate(paths)]


def build_model(frontend: FrontendConfig, model_cfg: ModelConfig, seed: int = 0) -> CLAP:
    """The CLAP model on the CPU with random weights, every tower built from its config.

    Speed does not depend on the weights, and this needs only the text model's config and
    tokenizer (no weights file), which is all scripts/gpu_bench.sh carries to a GPU machine.
    """
    torch.manual_seed(seed)
    return CLAP(model_cfg, frontend, pretrained_text=False)


# ----------------------------------------------------------------------------- train


def _tokens(model: CLAP, texts: list[str], pad_to: int | None) -> dict[str, torch.Tensor]:
    """Token ids and mask: padded to the batch's longest caption, or to `pad_to` tokens."""
    if pad_to is None:
        return model.tokenize(texts)
    enc = model.caption_encoder.tokenizer(
        texts, padding="max_length", truncation=True, max_length=pad_to, return_tensors="pt"
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def step_rate(
    model: CLAP,
    device: torch.device,
    clip_samples: int,
    cfg: TrainConfig,
    warmup: int,
    steps: int,
    *,
    plain: bool = False,
) -> dict:
    """Samples/s of optimizer steps (batch cfg.batch_size) on random on-device audio and
    caption tokens.

    Default: the training settings of `cfg`, applied by the trainer's own functions
    (autocast_for, make_optimizer: bf16 autocast and fused Adam on CUDA; channels_last;
    per-batch text padding; cfg.compile; cfg.freeze_text with the trainer's FrozenText;
    gradient clipping). `plain`: fp32, no channels_last, default (non-fused) Adam, text padded
    to 100 tokens, both towers trained, eager; the same clipping.
    """
    batch = cfg.batch_size
    model = copy.deepcopy(model).to(device).train()
    frozen = cfg.freeze_text and not plain
    if plain:
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        autocast = contextlib.nullcontext()
    else:
        model.caption_encoder.base.requires_grad_(not frozen)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = make_optimizer(model, cfg, device)
        autocast = autocast_for(cfg, device)
    compiled = cfg.compile and not plain and not frozen  # as the trainer: frozen runs eager
    forward = torch.compile(model, dynamic=True) if compiled else model
    n_batches = min(warmup + steps, 4)
    texts = [captions(batch, seed=1000 + b) for b in range(n_batches)]
    tokens = [
        {k: v.to(device) for k, v in _tokens(model, t, PLAIN_TOKENS if plain else None).items()}
        for t in texts
    ]
    features = []
    if frozen:
        table = FrozenText(model, [c for t in texts for c in t], device)
        features = [table(t) for t in texts]
        model.caption_encoder.base.eval()  # as the trainer: no dropout in a frozen tower
    g = torch.Generator(device=device).manual_seed(0)
    audio = [
        0.1 * torch.randn(batch, clip_samples, generator=g, device=device) for _ in range(n_batches)
    ]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        k = i % n_batches
        with autocast:
            if frozen:
                logits = model.logits_from_text_features(audio[k], features[k])
            else:
                logits = forward(audio[k], tokens[k]["input_ids"], tokens[k]["attention_mask"])
        loss = clap_loss(logits.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
    _sync(device)
    seconds = time.perf_counter() - t0
    result = {
        "samples_per_s": round(batch * steps / seconds, 3),
        "timed_steps": steps,
        "seconds": round(seconds, 3),
        "padded_tokens_mean": round(float(np.mean([t["input_ids"].shape[1] for t in tokens])), 2),
        "settings": _settings(plain, compiled, frozen, cfg, device),
    }
    if device.type == "cuda":
        result["peak_memory_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
    return result


def _settings(
    plain: bool, compiled: bool, frozen: bool, cfg: TrainConfig, device: torch.device
) -> dict:
    if plain:
        return {
            "autocast": "off (fp32)",
            "channels_last": False,
            "optimizer": "torch.optim.Adam defaults (not fused)",
            "text_padding": f"fixed {PLAIN_TOKENS} tokens",
            "text_tower": "trained",
            "compile": False,
            "grad_clip": cfg.grad_clip,
        }
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    return {
        "autocast": "bf16" if bf16 else "off (fp32)",
        "channels_last": cfg.channels_last,
        "optimizer": f"{cfg.optimizer} "
        + ("fused" if device.type == "cuda" else "(CPU: not fused)"),
        "text_padding": "per batch (longest caption)",
        "text_tower": "frozen (features computed once)" if frozen else "trained",
        "compile": compiled,
        "grad_clip": cfg.grad_clip,
    }


def trainer_rate(
    model: CLAP,
    pairs: Sequence[Pair],
    cache: AudioCache,
    clip_samples: int,
    cfg: TrainConfig,
    device: torch.device,
    warmup: int,
    out_dir: str | Path,
    profiler: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> dict:
    """Samples/s of the real `train()` after `warmup` steps (cfg.log_every must be `warmup`).

    The step times come from the trainer's own reports, which call loss.item() and so
    synchronise the GPU.
    """
    stamps: dict[int, float] = {}

    def report(row: dict) -> None:
        stamps[row["step"]] = time.perf_counter()

    model = copy.deepcopy(model)
    with profiler() if profiler else contextlib.nullcontext():
        result = train(
            model, TrainData(main=pairs), cfg, out_dir, cache, clip_samples, report, str(device)
        )
    last = result["steps"]
    if warmup not in stamps or last <= warmup:
        raise ValueError(f"the trainer ran {last} steps; need more than the {warmup} warm-up")
    seconds = stamps[last] - stamps[warmup]
    out = {
        "samples_per_s": round(cfg.batch_size * (last - warmup) / seconds, 3),
        "timed_steps": last - warmup,
        "seconds": round(seconds, 3),
        "num_workers": cfg.num_workers,
    }
    if cfg.num_workers == 0:  # with workers, each holds its own counters
        out["cache_hits"], out["cache_misses"] = cache.hits, cache.misses
    return out


def _gpu_workers() -> int:
    """DataLoader workers on a GPU machine: most cores, two left for the main process."""
    return max(1, min(8, (os.cpu_count() or 2) - 2))


def _train_defaults(name: str, device: torch.device, batch: int) -> tuple[int, int, int]:
    """(batch size, warm-up, timed steps) small enough for a shared CPU."""
    if device.type == "cuda":
        return batch, 5, 20
    if name == "paper":
        return 2, 1, 1  # about 20 s a step on 2 shared cores
    return min(batch, 16), 1, 3  # about 4 s a step on 2 shared cores


def bench_train(
    config: str = "paper",
    batch_size: int | None = None,
    steps: int | None = None,
    warmup: int | None = None,
    device: str | None = None,
    compile: bool = False,
    workers: int | None = None,
    cache: str | None = None,
    frontend: FrontendConfig | None = None,
    model_cfg: ModelConfig | None = None,
    profile_path: str | Path | None = None,
    freeze_text: bool | None = None,
) -> dict:
    """Training throughput (a) model alone, (b) real trainer + pipeline, (c) plain fp32 step.

    `cache`: `cold`, `warm` or `both` (default: both, except warm only for the paper config
    on CPU). `frontend`/`model_cfg` replace the named config (tests use tiny ones).
    `profile_path`: also profile the real trainer and write the summary there.
    `freeze_text`: override the config's (the demo sweep may freeze the text tower).
    """
    began = time.perf_counter()
    dev = resolve_device(device)
    front, mcfg, base_cfg, source = named_configs(config)
    front, mcfg = frontend or front, model_cfg or mcfg
    if freeze_text is not None:
        base_cfg = dataclasses.replace(base_cfg, freeze_text=freeze_text)
    b_def, w_def, s_def = _train_defaults(config, dev, base_cfg.batch_size)
    batch = batch_size or b_def
    warm = warmup if warmup is not None else w_def
    if warm < 1:
        raise UserError("--warmup: at least one warm-up step is needed")
    steps = steps or s_def
    steps = -(-steps // warm) * warm  # the trainer reports every `warm` steps
    if workers is None:
        workers = _gpu_workers() if dev.type == "cuda" else 0
    if cache is None:
        cache = "warm" if (config == "paper" and dev.type == "cpu") else "both"
    if cache not in ("cold", "warm", "both"):
        raise UserError(f"--cache: expected cold, warm or both, got {cache!r}")
    total = warm + steps
    file_seconds = front.clip_seconds + 1.0
    _log(f"train {config}: building the model")
    model = build_model(front, mcfg)
    clip = front.clip_samples
    result: dict = {
        "benchmark": "train",
        "machine": machine(dev),
        "config": {
            "name": config,
            "source": source,
            "frontend": to_dict(front),
            "model": to_dict(mcfg),
            "freeze_text": base_cfg.freeze_text,
            "weights": "random, built from config (speed does not depend on them)",
            "batch_size": batch,
            "warmup_steps": warm,
            "timed_steps": steps,
            "compile": compile,
            "num_workers": workers,
            "cache": cache,
            "files": batch * total,
            "file_rate": FILE_RATE,
            "file_seconds": file_seconds,
        },
    }
    cfg = dataclasses.replace(
        base_cfg,
        batch_size=batch,
        epochs=1,
        max_steps=total,
        log_every=warm,
        num_workers=workers,
        compile=compile,
        seed=0,
    )
    result["config"]["train"] = to_dict(cfg)
    _log("(a) model alone")
    a = step_rate(model, dev, clip, cfg, warm, steps)
    result["a_model_alone"] = a
    _log("(c) plain fp32 step")
    c = step_rate(model, dev, clip, cfg, warm, steps, plain=True)
    result["c_plain_fp32"] = c
    ratios = {"a_over_c": _ratio(a["samples_per_s"], c["samples_per_s"])}
    with tempfile.TemporaryDirectory(prefix="clapsweep-bench-") as tmp:
        _log(f"writing {batch * total} WAV files")
        pairs = _pairs(write_clips(Path(tmp) / "wav", batch * total, file_seconds, FILE_RATE))
        audio_cache = AudioCache(Path(tmp) / "cache", front.sample_rate)
        if cache == "warm":
            t0 = time.perf_counter()
            for p in pairs:
                audio_cache.load(p.path)
            result["cache_fill_clips_per_s"] = round(len(pairs) / (time.perf_counter() - t0), 2)
        runs = ["cold", "warm"] if cache == "both" else ["warm"] if cache == "warm" else ["cold"]
        for run in runs:  # the cold run fills the cache the warm run reads
            _log(f"(b) real trainer, {run} cache")
            audio_cache.hits = audio_cache.misses = 0
            b = trainer_rate(model, pairs, audio_cache, clip, cfg, dev, warm, Path(tmp) / run)
            result[f"b_trainer_{run}"] = b
            ratios[f"b_{run}_over_a"] = _ratio(b["samples_per_s"], a["samples_per_s"])
            ratios[f"b_{run}_over_c"] = _ratio(b["samples_per_s"], c["samples_per_s"])
        if profile_path:
            _log("profiling the real trainer")
            result["profile"] = profile_train(
                model,
                pairs,
                audio_cache,
                clip,
                cfg,
                dev,
                profile_path,
                Path(tmp) / "profile",
            )
    result["ratios"] = ratios
    result["targets"] = {"b_over_a": ">= 0.9 (GPU)", "b_over_c": ">= 4 (GPU)"}
    result["seconds_total"] = round(time.perf_counter() - began, 1)
    return result


def default_profile_path() -> Path:
    """$OUT/bench-profile.txt when $OUT is set (device machines), else ./bench-profile.txt."""
    out = os.environ.get("OUT")
    return Path(out) / "bench-profile.txt" if out else Path("bench-profile.txt")


def profile_train(
    model: CLAP,
    pairs: Sequence[Pair],
    cache: AudioCache,
    clip_samples: int,
    cfg: TrainConfig,
    device: torch.device,
    path: str | Path,
    out_dir: str | Path,
) -> dict:
    """Run the real trainer under torch.profiler and cProfile; write both summaries to `path`."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    holder: dict = {}
    python = cProfile.Profile()

    @contextlib.contextmanager
    def both() -> Iterator[None]:
        with warnings.catch_warnings():
            # One profiling cycle is all we record, which torch warns about.
            warnings.filterwarnings("ignore", message=".*Profiler clears events")
            with profile(activities=activities) as prof:
                python.enable()
                try:
                    yield
                finally:
                    python.disable()
        holder["prof"] = prof

    warm = cfg.log_every
    rate = trainer_rate(model, pairs, cache, clip_samples, cfg, device, warm, out_dir, both)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = holder["prof"].key_averages()
    table = events.table(sort_by=sort, row_limit=15)
    stream = io.StringIO()
    pstats.Stats(python, stream=stream).sort_stats("cumulative").print_stats(25)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"clapsweep bench: profile of the real trainer ({cfg.max_steps} steps, batch "
        f"{cfg.batch_size}, workers {cfg.num_workers}, {device.type}), {rate['samples_per_s']} "
        f"samples/s under the profilers\n\n== torch.profiler: top 15 ops by {sort} ==\n{table}\n"
        f"== cProfile: top 25 functions by cumulative time (main process) ==\n{stream.getvalue()}"
    )
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    top = sorted(events, key=lambda e: getattr(e, attr, 0), reverse=True)[:15]
    return {
        "path": str(path),
        "samples_per_s_profiled": rate["samples_per_s"],
        "top_ops_ms": [[e.key, round(getattr(e, attr, 0) / 1000, 2)] for e in top],
    }


# ----------------------------------------------------------------------------- data


def _one_pass(dataset: PairDataset, n: int, batch: int, workers: int) -> tuple[float, int]:
    """Seconds for one epoch through the real loader (worker start-up included), and clips."""
    batches = epoch_batches(n, 0, batch, 0.0, 0, 0)
    t0 = time.perf_counter()
    clips = 0
    for b in make_loader(dataset, batches, workers, pin_memory=False):
        clips += 0 if b["audio"] is None else len(b["audio"])
    return time.perf_counter() - t0, clips


def bench_data(
    seconds: float = 5.0,
    files: int = 64,
    workers: Sequence[int] = (0, 2),
    rates: Sequence[int] = (48000, 44100, 16000),
    target_rate: int = 44100,
    file_seconds: float = 10.0,
    batch_size: int = 16,
) -> dict:
    """Clips/s of decode + resample to `target_rate` + random crop of `seconds`, through the
    real PairDataset and DataLoader, per source rate, worker count and cache state:
    `none` (no cache: decode every time), `cold` (empty cache: decode and store), `warm`
    (a second pass over the same cache). Files are in the OS page cache (just written)."""
    began = time.perf_counter()
    clip = round(target_rate * seconds)
    rows = []
    with tempfile.TemporaryDirectory(prefix="clapsweep-bench-") as tmp:
        for rate in rates:
            _log(f"data: {files} files at {rate} Hz")
            pairs = _pairs(write_clips(Path(tmp) / f"wav{rate}", files, file_seconds, rate))
            for w in workers:
                caches = {
                    "none": AudioCache(None, target_rate),
                    "cold": AudioCache(Path(tmp) / f"cache{rate}-{w}", target_rate),
                }
                caches["warm"] = caches["cold"]  # the cold pass fills it
                for mode, audio_cache in caches.items():
                    dataset = PairDataset(pairs, (), audio_cache, clip)
                    secs, clips = _one_pass(dataset, files, batch_size, w)
                    rows.append(
                        {
                            "source_rate": rate,
                            "workers": w,
                            "cache": mode,
                            "clips": clips,
                            "seconds": round(secs, 6),
                            "clips_per_s": round(clips / secs, 2),
                        }
                    )
    return {
        "benchmark": "data",
        "machine": machine(torch.device("cpu")),
        "config": {
            "crop_seconds": seconds,
            "target_rate": target_rate,
            "files": files,
            "file_seconds": file_seconds,
            "workers": list(workers),
            "rates": list(rates),
            "batch_size": batch_size,
            "file_format": "16-bit PCM mono WAV",
        },
        "rows": rows,
        "seconds_total": round(time.perf_counter() - began, 1),
    }


# ----------------------------------------------------------------------------- curate


class _PeakRSS:
    """Peak resident memory above the starting level, sampled every 2 ms from /proc."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.peak = 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss() - self.base)
            time.sleep(0.002)

    def __enter__(self) -> _PeakRSS:
        self.base = self._rss()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss() - self.base)


def _measure(fn: Callable[[], object], device: torch.device) -> tuple[float, int, object]:
    """(seconds, peak extra bytes, result) of fn(); GPU: allocator peak, CPU: RSS peak."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        return time.perf_counter() - t0, torch.cuda.max_memory_allocated(device) - base, out
    with _PeakRSS() as peak:
        t0 = time.perf_counter()
        out = fn()
        secs = time.perf_counter() - t0
    return secs, peak.peak, out


def bare_products(text: torch.Tensor, audio: torch.Tensor, chunk: int) -> int:
    """The chunked products of curation alone (same blocks, no thresholding); blocks done."""
    blocks = 0
    for a0 in range(0, audio.shape[0], chunk):
        a_blk = audio[a0 : a0 + chunk]
        for t0 in range(0, text.shape[0], chunk):
            text[t0 : t0 + chunk] @ a_blk.T
            blocks += 1
    return blocks


def bench_curate(
    clips: int | None = None,
    captions_n: int | None = None,
    dim: int | None = None,
    device: str | None = None,
    sigma: float | None = None,
    chunk: int = curate.DEFAULT_CHUNK,
    extrapolate_to: tuple[int, int] = (1_900_000, 128_000),
    seed: int = 0,
) -> dict:
    """DU curation (`build_du`, `threshold_pairs`) against the bare chunked products.

    Random unit embeddings, bf16 on CUDA (what curation computes in there), float32 on CPU.
    `sigma` defaults to 4.5 / sqrt(dim), a few pairs per million. Times scale with
    clips x captions, so they are extrapolated to `extrapolate_to` (AudioSet x teacher captions).
    """
    began = time.perf_counter()
    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    clips = clips or (200_000 if gpu else 32_768)
    m = captions_n or (128_000 if gpu else 8_192)
    dim = dim or (1024 if gpu else 512)
    sigma = sigma if sigma is not None else round(4.5 / dim**0.5, 4)
    dtype = torch.bfloat16 if gpu else torch.float32
    g = torch.Generator(device=dev).manual_seed(seed)

    def unit(n: int) -> torch.Tensor:
        x = torch.randn(n, dim, generator=g, device=dev)
        return torch.nn.functional.normalize(x, dim=1).to(dtype)

    text, audio = unit(m), unit(clips)
    names = [f"caption {i}" for i in range(m)]
    ids = [f"audioset/clip{i}" for i in range(clips)]
    small = min(chunk, m, clips)  # warm-up: kernels, allocator, thread pools
    bare_products(text[:small], audio[:small], chunk)
    curate.threshold_pairs(text[:small], audio[:small], sigma, chunk=chunk, device=dev)
    _log(f"curate: {clips} clips x {m} captions x {dim}")
    bare_s, bare_mem, blocks = _measure(lambda: bare_products(text, audio, chunk), dev)
    tp_s, tp_mem, found = _measure(
        lambda: curate.threshold_pairs(text, audio, sigma, chunk=chunk, device=dev), dev
    )
    du_s, du_mem, imp = _measure(
        lambda: curate.build_du(text, audio, sigma, names, ids, chunk=chunk, device=dev), dev
    )
    full_bytes = m * clips * 4
    scale = extrapolate_to[0] * extrapolate_to[1] / (clips * m)
    flops = 2.0 * clips * m * dim
    return {
        "benchmark": "curate",
        "machine": machine(dev),
        "config": {
            "clips": clips,
            "captions": m,
            "dim": dim,
            "sigma": sigma,
            "chunk": chunk,
            "dtype": str(dtype).replace("torch.", ""),
            "blocks": blocks,
            "seed": seed,
        },
        "pairs_found": len(imp),
        "bare_products_s": round(bare_s, 6),
        "bare_tflops": round(flops / bare_s / 1e12, 3),
        "threshold_pairs_s": round(tp_s, 6),
        "build_du_s": round(du_s, 6),
        "ratio_threshold_pairs_over_bare": _ratio(tp_s, bare_s),
        "ratio_build_du_over_bare": _ratio(du_s, bare_s),
        "target": "build_du <= 1.5 x bare products (GPU)",
        "memory": {
            "measured_as": "torch.cuda.max_memory_allocated above the inputs"
            if gpu
            else "peak RSS above the start, sampled every 2 ms",
            "full_matrix_fp32_bytes": full_bytes,
            "bare_peak_bytes": int(bare_mem),
            "threshold_pairs_peak_bytes": int(tp_mem),
            "build_du_peak_bytes": int(du_mem),
            "build_du_peak_over_full_matrix": round(du_mem / full_bytes, 4),
        },
        "extrapolated": {
            "to": {"clips": extrapolate_to[0], "captions": extrapolate_to[1]},
            "note": "linear in clips x captions; measured at the sizes above",
            "bare_products_s": round(bare_s * scale, 2),
            "build_du_s": round(du_s * scale, 2),
        },
        "threshold_pairs_found": len(found[0]),
        "seconds_total": round(time.perf_counter() - began, 1),
    }


# ----------------------------------------------------------------------------- eval


def encode_rate(
    model: CLAP, device: torch.device, clip_samples: int, batch: int, warmup: int, steps: int
) -> float:
    """Clips/s of `encode_audio` alone on random on-device audio, as embed_audio runs it."""
    model = copy.deepcopy(model).to(device).eval()
    model.to(memory_format=torch.channels_last)
    audio = 0.1 * torch.randn(batch, clip_samples, device=device)
    with torch.inference_mode(), evaluate._autocast(device):
        for i in range(warmup + steps):
            if i == warmup:
                _sync(device)
                t0 = time.perf_counter()
            model.encode_audio(audio)
    _sync(device)
    return round(batch * steps / (time.perf_counter() - t0), 2)


def bench_eval(
    config: str | None = None,
    files: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    train_batch_size: int | None = None,
    device: str | None = None,
    frontend: FrontendConfig | None = None,
    model_cfg: ModelConfig | None = None,
) -> dict:
    """Embedding throughput (evaluate.embed_audio, inference mode) against training
    throughput ((a) of bench_train), both in clips of clip_seconds per second.

    embed_audio runs tuned (`batch_size`, `workers`, channels_last) on a cold cache (which
    fills it), tuned on the warm cache, and as the pipeline calls it (batch_size 64, no
    workers, weights as loaded) on the warm cache. Files are one window long.
    """
    began = time.perf_counter()
    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    config = config or ("paper" if gpu else "demo")
    front, mcfg, base_cfg, source = named_configs(config)
    front, mcfg = frontend or front, model_cfg or mcfg
    paper_cpu = config == "paper" and not gpu
    files = files or (4096 if gpu else 8 if paper_cpu else 256)
    batch = batch_size or (512 if gpu else 8 if paper_cpu else 64)
    if workers is None:
        workers = _gpu_workers() if gpu else 0
    t_batch, t_warm, t_steps = _train_defaults(config, dev, base_cfg.batch_size)
    t_batch = train_batch_size or t_batch
    _log(f"eval {config}: building the model")
    model = build_model(front, mcfg)
    tuned = copy.deepcopy(model).to(memory_format=torch.channels_last)
    clip = front.clip_samples
    result: dict = {
        "benchmark": "eval",
        "machine": machine(dev),
        "config": {
            "name": config,
            "source": source,
            "frontend": to_dict(front),
            "model": to_dict(mcfg),
            "files": files,
            "file_rate": FILE_RATE,
            "file_seconds": front.clip_seconds,
            "windows_per_clip": 1,
            "embed_batch_size": batch,
            "embed_workers": workers,
            "train_batch_size": t_batch,
        },
    }
    runs = [
        ("embed_audio_tuned_cold", tuned, batch, workers),
        ("embed_audio_tuned_warm", tuned, batch, workers),
        ("embed_audio_pipeline_defaults_warm", model, 64, 0),
    ]
    with tempfile.TemporaryDirectory(prefix="clapsweep-bench-") as tmp:
        paths = write_clips(Path(tmp) / "wav", files, front.clip_seconds, FILE_RATE)
        warmup_paths = write_clips(Path(tmp) / "warmup", 4, front.clip_seconds, FILE_RATE, 1)
        audio_cache = AudioCache(Path(tmp) / "cache", front.sample_rate)
        for name, m, b, w in runs:
            _log(name)
            m.to(dev)
            evaluate.embed_audio(m, warmup_paths, audio_cache, clip, b, 0)  # kernels, autotune
            _sync(dev)
            t0 = time.perf_counter()
            evaluate.embed_audio(m, paths, audio_cache, clip, b, w)
            _sync(dev)
            secs = time.perf_counter() - t0
            result[name] = {
                "clips_per_s": round(files / secs, 2),
                "seconds": round(secs, 3),
                "batch_size": b,
                "clips_per_batch": max(1, b // 2),
                "num_workers": w,
            }
    model.cpu()
    tuned.cpu()
    enc_batch = max(1, batch // 2)
    result["encode_audio_on_device"] = {
        "clips_per_s": encode_rate(model, dev, clip, enc_batch, 2 if gpu else 1, 10 if gpu else 2),
        "batch": enc_batch,
        "channels_last": True,
    }
    _log("training step rate (a)")
    train_cfg = dataclasses.replace(base_cfg, batch_size=t_batch)
    train_a = step_rate(model, dev, clip, train_cfg, t_warm, t_steps)
    result["train_a_model_alone"] = train_a
    rate = train_a["samples_per_s"]
    result["ratios"] = {
        f"{name}_over_train": _ratio(result[name]["clips_per_s"], rate) for name, *_ in runs
    }
    result["ratios"]["encode_on_device_over_train"] = _ratio(
        result["encode_audio_on_device"]["clips_per_s"], rate
    )
    result["target"] = "embed_audio >= 3 x training samples/s (GPU)"
    result["seconds_total"] = round(time.perf_counter() - began, 1)
    return result
