"""Embedding throughput: `evaluate.embed_audio` (inference mode) and `encode_audio` alone,
against training throughput ((a) of bench_train), both in clips of clip_seconds per second."""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from clapsweep import evaluate
from clapsweep.bench.common import (
    FILE_RATE,
    build_model,
    gpu_workers,
    log,
    machine,
    named_configs,
    ratio,
    resolve_device,
    sync,
    write_clips,
)
from clapsweep.bench.train import step_rate, train_defaults
from clapsweep.config import FrontendConfig, ModelConfig, to_dict
from clapsweep.data.cache import AudioCache
from clapsweep.models.clap import CLAP


def encode_rate(
    model: CLAP, device: torch.device, clip_samples: int, batch: int, warmup: int, steps: int
) -> float:
    """Clips/s of `encode_audio` alone on random on-device audio, as embed_audio runs it."""
    model = copy.deepcopy(model).to(device).eval()
    model.to(memory_format=torch.channels_last)
    audio = 0.1 * torch.randn(batch, clip_samples, device=device)
    with torch.inference_mode(), evaluate.autocast_for_eval(device):
        for i in range(warmup + steps):
            if i == warmup:
                sync(device)
                t0 = time.perf_counter()
            model.encode_audio(audio)
    sync(device)
    return round(batch * steps / (time.perf_counter() - t0), 2)


def _embed_rates(
    runs: list[tuple[str, CLAP, int, int]], front: FrontendConfig, files: int, dev: torch.device
) -> dict[str, dict]:
    """Per run (name, model, batch, workers): embed_audio over `files` one-window WAV files,
    after a 4-file warm-up (kernels, autotune). The runs share one cache, in order."""
    out = {}
    clip = front.clip_samples
    with tempfile.TemporaryDirectory(prefix="clapsweep-bench-") as tmp:
        paths = write_clips(Path(tmp) / "wav", files, front.clip_seconds, FILE_RATE)
        warmup_paths = write_clips(Path(tmp) / "warmup", 4, front.clip_seconds, FILE_RATE, 1)
        audio_cache = AudioCache(Path(tmp) / "cache", front.sample_rate)
        for name, m, b, w in runs:
            log(name)
            m.to(dev)
            evaluate.embed_audio(m, warmup_paths, audio_cache, clip, b, 0)
            sync(dev)
            t0 = time.perf_counter()
            evaluate.embed_audio(m, paths, audio_cache, clip, b, w)
            sync(dev)
            secs = time.perf_counter() - t0
            out[name] = {
                "clips_per_s": round(files / secs, 2),
                "seconds": round(secs, 3),
                "batch_size": b,
                "clips_per_batch": max(1, b // 2),
                "num_workers": w,
            }
    return out


def _ratios(result: dict, names: list[str]) -> dict:
    rate = result["train_a_model_alone"]["samples_per_s"]
    ratios = {f"{name}_over_train": ratio(result[name]["clips_per_s"], rate) for name in names}
    ratios["encode_on_device_over_train"] = ratio(
        result["encode_audio_on_device"]["clips_per_s"], rate
    )
    return ratios


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
        workers = gpu_workers() if gpu else 0
    t_batch, t_warm, t_steps = train_defaults(config, dev, base_cfg.batch_size)
    t_batch = train_batch_size or t_batch
    log(f"eval {config}: building the model")
    model = build_model(front, mcfg)
    tuned = copy.deepcopy(model).to(memory_format=torch.channels_last)
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
    result.update(_embed_rates(runs, front, files, dev))
    model.cpu()
    tuned.cpu()
    enc_batch = max(1, batch // 2)
    clip = front.clip_samples
    result["encode_audio_on_device"] = {
        "clips_per_s": encode_rate(model, dev, clip, enc_batch, 2 if gpu else 1, 10 if gpu else 2),
        "batch": enc_batch,
        "channels_last": True,
    }
    log("training step rate (a)")
    train_cfg = dataclasses.replace(base_cfg, batch_size=t_batch)
    result["train_a_model_alone"] = step_rate(model, dev, clip, train_cfg, t_warm, t_steps)
    result["ratios"] = _ratios(result, [name for name, *_ in runs])
    result["target"] = "embed_audio >= 3 x training samples/s (GPU)"
    result["seconds_total"] = round(time.perf_counter() - began, 1)
    return result
