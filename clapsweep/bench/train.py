"""Training throughput: samples/s of (a) the model alone on on-device random inputs with our
training settings, (b) the real `train()` fed by the real data pipeline from WAV files on disk
(AudioCache cold and/or warm), (c) a plain fp32 eager step with text padded to 100 tokens;
ratios b/a, a/c, b/c. (b) and its profile are in `clapsweep.bench.real_trainer`.

Warm-up steps are never timed; on CUDA every timing ends with torch.cuda.synchronize.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from clapsweep.bench.common import (
    FILE_RATE,
    build_model,
    captions,
    gpu_workers,
    log,
    machine,
    named_configs,
    pairs_for,
    ratio,
    resolve_device,
    sync,
    write_clips,
)
from clapsweep.bench.real_trainer import profile_train, trainer_rate
from clapsweep.config import FrontendConfig, ModelConfig, TrainConfig, to_dict
from clapsweep.data.cache import AudioCache
from clapsweep.data.datasets import Pair
from clapsweep.errors import UserError
from clapsweep.losses import clap_loss
from clapsweep.models.clap import CLAP
from clapsweep.train import FrozenText, autocast_for, make_optimizer

PLAIN_TOKENS = 100  # the fixed text padding of the plain baseline (c)


# ----------------------------------------------------------------------------- (a) and (c)


@dataclasses.dataclass
class _Step:
    """A model copy on the device, set up as (a) or (c) trains it."""

    model: CLAP
    optimizer: torch.optim.Optimizer
    autocast: contextlib.AbstractContextManager
    forward: Callable
    frozen: bool
    compiled: bool


@dataclasses.dataclass
class _Inputs:
    """The few batches a timed loop cycles through, all on the device."""

    audio: list[torch.Tensor]
    tokens: list[dict[str, torch.Tensor]]
    features: list[torch.Tensor]


def _tokens(model: CLAP, texts: list[str], pad_to: int | None) -> dict[str, torch.Tensor]:
    """Token ids and mask: padded to the batch's longest caption, or to `pad_to` tokens."""
    if pad_to is None:
        return model.tokenize(texts)
    enc = model.caption_encoder.tokenizer(
        texts, padding="max_length", truncation=True, max_length=pad_to, return_tensors="pt"
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _prepare_step(model: CLAP, device: torch.device, cfg: TrainConfig, plain: bool) -> _Step:
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
    return _Step(model, optimizer, autocast, forward, frozen, compiled)


def _step_inputs(
    step: _Step, device: torch.device, batch: int, clip_samples: int, n_batches: int, plain: bool
) -> _Inputs:
    texts = [captions(batch, seed=1000 + b) for b in range(n_batches)]
    pad_to = PLAIN_TOKENS if plain else None
    tokens = [{k: v.to(device) for k, v in _tokens(step.model, t, pad_to).items()} for t in texts]
    features = []
    if step.frozen:
        table = FrozenText(step.model, [c for t in texts for c in t], device)
        features = [table(t) for t in texts]
        step.model.caption_encoder.base.eval()  # as the trainer: no dropout in a frozen tower
    g = torch.Generator(device=device).manual_seed(0)
    audio = [
        0.1 * torch.randn(batch, clip_samples, generator=g, device=device) for _ in range(n_batches)
    ]
    return _Inputs(audio, tokens, features)


def _one_step(step: _Step, inputs: _Inputs, k: int, cfg: TrainConfig) -> None:
    with step.autocast:
        if step.frozen:
            logits = step.model.logits_from_text_features(inputs.audio[k], inputs.features[k])
        else:
            tokens = inputs.tokens[k]
            logits = step.forward(inputs.audio[k], tokens["input_ids"], tokens["attention_mask"])
    loss = clap_loss(logits.float())
    step.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(step.model.parameters(), cfg.grad_clip)
    step.optimizer.step()


def _timed_steps(
    step: _Step, inputs: _Inputs, cfg: TrainConfig, device: torch.device, warmup: int, steps: int
) -> float:
    """Seconds of `steps` optimizer steps after `warmup` untimed ones."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        _one_step(step, inputs, i % len(inputs.audio), cfg)
    sync(device)
    return time.perf_counter() - t0


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
    step = _prepare_step(model, device, cfg, plain)
    inputs = _step_inputs(step, device, batch, clip_samples, min(warmup + steps, 4), plain)
    seconds = _timed_steps(step, inputs, cfg, device, warmup, steps)
    padded = [t["input_ids"].shape[1] for t in inputs.tokens]
    result = {
        "samples_per_s": round(batch * steps / seconds, 3),
        "timed_steps": steps,
        "seconds": round(seconds, 3),
        "padded_tokens_mean": round(float(np.mean(padded)), 2),
        "settings": _settings(plain, step.compiled, step.frozen, cfg, device),
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


# ----------------------------------------------------------------------------- bench_train


def train_defaults(name: str, device: torch.device, batch: int) -> tuple[int, int, int]:
    """(batch size, warm-up, timed steps) small enough for a shared CPU."""
    if device.type == "cuda":
        return batch, 5, 20
    if name == "paper":
        return 2, 1, 1  # about 20 s a step on 2 shared cores
    return min(batch, 16), 1, 3  # about 4 s a step on 2 shared cores


@dataclasses.dataclass
class _TrainPlan:
    """What bench_train runs, every default resolved."""

    config: str
    dev: torch.device
    front: FrontendConfig
    mcfg: ModelConfig
    base_cfg: TrainConfig
    source: str
    batch: int
    warm: int
    steps: int
    workers: int
    cache: str

    @property
    def total(self) -> int:
        return self.warm + self.steps

    @property
    def file_seconds(self) -> float:
        return self.front.clip_seconds + 1.0


def _train_plan(
    config: str,
    batch_size: int | None,
    steps: int | None,
    warmup: int | None,
    device: str | None,
    workers: int | None,
    cache: str | None,
    frontend: FrontendConfig | None,
    model_cfg: ModelConfig | None,
    freeze_text: bool | None,
) -> _TrainPlan:
    dev = resolve_device(device)
    front, mcfg, base_cfg, source = named_configs(config)
    front, mcfg = frontend or front, model_cfg or mcfg
    if freeze_text is not None:
        base_cfg = dataclasses.replace(base_cfg, freeze_text=freeze_text)
    b_def, w_def, s_def = train_defaults(config, dev, base_cfg.batch_size)
    batch = batch_size or b_def
    warm = warmup if warmup is not None else w_def
    if warm < 1:
        raise UserError("--warmup: at least one warm-up step is needed")
    steps = steps or s_def
    steps = -(-steps // warm) * warm  # the trainer reports every `warm` steps
    if workers is None:
        workers = gpu_workers() if dev.type == "cuda" else 0
    if cache is None:
        cache = "warm" if (config == "paper" and dev.type == "cpu") else "both"
    if cache not in ("cold", "warm", "both"):
        raise UserError(f"--cache: expected cold, warm or both, got {cache!r}")
    return _TrainPlan(
        config, dev, front, mcfg, base_cfg, source, batch, warm, steps, workers, cache
    )


def _train_config(plan: _TrainPlan, compile: bool) -> dict:
    return {
        "name": plan.config,
        "source": plan.source,
        "frontend": to_dict(plan.front),
        "model": to_dict(plan.mcfg),
        "freeze_text": plan.base_cfg.freeze_text,
        "weights": "random, built from config (speed does not depend on them)",
        "batch_size": plan.batch,
        "warmup_steps": plan.warm,
        "timed_steps": plan.steps,
        "compile": compile,
        "num_workers": plan.workers,
        "cache": plan.cache,
        "files": plan.batch * plan.total,
        "file_rate": FILE_RATE,
        "file_seconds": plan.file_seconds,
    }


def _fill(cache: AudioCache, pairs: Sequence[Pair]) -> float:
    """Clips/s of filling `cache` with every pair's audio."""
    t0 = time.perf_counter()
    for p in pairs:
        cache.load(p.path)
    return round(len(pairs) / (time.perf_counter() - t0), 2)


def _real_trainer(
    result: dict,
    ratios: dict,
    model: CLAP,
    plan: _TrainPlan,
    cfg: TrainConfig,
    profile_path: str | Path | None,
) -> None:
    """(b) per cache state, and the profile, into `result` and `ratios`."""
    a, c = result["a_model_alone"]["samples_per_s"], result["c_plain_fp32"]["samples_per_s"]
    clip, n = plan.front.clip_samples, plan.batch * plan.total
    with tempfile.TemporaryDirectory(prefix="clapsweep-bench-") as tmp:
        log(f"writing {n} WAV files")
        pairs = pairs_for(write_clips(Path(tmp) / "wav", n, plan.file_seconds, FILE_RATE))
        audio_cache = AudioCache(Path(tmp) / "cache", plan.front.sample_rate)
        if plan.cache == "warm":
            result["cache_fill_clips_per_s"] = _fill(audio_cache, pairs)
        runs = {"both": ["cold", "warm"], "warm": ["warm"], "cold": ["cold"]}[plan.cache]
        for run in runs:  # the cold run fills the cache the warm run reads
            log(f"(b) real trainer, {run} cache")
            audio_cache.hits = audio_cache.misses = 0
            b = trainer_rate(
                model, pairs, audio_cache, clip, cfg, plan.dev, plan.warm, Path(tmp) / run
            )
            result[f"b_trainer_{run}"] = b
            ratios[f"b_{run}_over_a"] = ratio(b["samples_per_s"], a)
            ratios[f"b_{run}_over_c"] = ratio(b["samples_per_s"], c)
        if profile_path:
            log("profiling the real trainer")
            result["profile"] = profile_train(
                model, pairs, audio_cache, clip, cfg, plan.dev, profile_path, Path(tmp) / "profile"
            )


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
    plan = _train_plan(
        config, batch_size, steps, warmup, device, workers, cache, frontend, model_cfg,
        freeze_text,
    )  # fmt: skip
    log(f"train {config}: building the model")
    model = build_model(plan.front, plan.mcfg)
    result: dict = {
        "benchmark": "train",
        "machine": machine(plan.dev),
        "config": _train_config(plan, compile),
    }
    cfg = dataclasses.replace(
        plan.base_cfg,
        batch_size=plan.batch,
        epochs=1,
        max_steps=plan.total,
        log_every=plan.warm,
        num_workers=plan.workers,
        compile=compile,
        seed=0,
    )
    result["config"]["train"] = to_dict(cfg)
    clip = plan.front.clip_samples
    log("(a) model alone")
    a = step_rate(model, plan.dev, clip, cfg, plan.warm, plan.steps)
    result["a_model_alone"] = a
    log("(c) plain fp32 step")
    c = step_rate(model, plan.dev, clip, cfg, plan.warm, plan.steps, plain=True)
    result["c_plain_fp32"] = c
    ratios = {"a_over_c": ratio(a["samples_per_s"], c["samples_per_s"])}
    _real_trainer(result, ratios, model, plan, cfg, profile_path)
    result["ratios"] = ratios
    result["targets"] = {"b_over_a": ">= 0.9 (GPU)", "b_over_c": ">= 4 (GPU)"}
    result["seconds_total"] = round(time.perf_counter() - began, 1)
    return result
