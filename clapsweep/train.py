"""One trainer for teacher and student CLAP models.

Teacher: contrastive loss (eq. 3) on caption pairs. Student: the same model initialised from the
teacher, trained on an Improvement-Set with replay and, when beta > 0, soft labels (eq. 5-8)
from teacher embeddings precomputed by the embed stage. A checkpoint is written after every
epoch (and every `checkpoint_every` steps when set); training resumes from it with model,
optimizer, scheduler, RNG and data position restored, so a resumed run ends with the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from clapsweep.config import TrainConfig, to_dict
from clapsweep.data.cache import AudioCache
from clapsweep.errors import UserError
from clapsweep.loader import MAIN, PairDataset, epoch_batches, make_loader
from clapsweep.losses import clap_loss, soft_clap_loss
from clapsweep.seeds import derive_seed

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.pt"


@dataclass
class TrainData:
    """What one training run reads. Teacher embeddings are (audio, text) rows per pair."""

    main: Sequence  # pairs with .path and .caption
    replay: Sequence = ()
    main_teacher: tuple[torch.Tensor, torch.Tensor] | None = None
    replay_teacher: tuple[torch.Tensor, torch.Tensor] | None = None


def pick_device(device: str | None = None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_for(cfg: TrainConfig, device: torch.device):
    """bf16 autocast on CUDA by default; fp32 on CPU unless bf16 is asked for."""
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device):
    params = [p for p in model.parameters() if p.requires_grad]
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    # Fused: one kernel per step instead of one per tensor (4x faster on CPU too, measured).
    return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def make_scheduler(optimizer, cfg: TrainConfig, total_steps: int):
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "cosine":
            progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


# caption -> pooled text feature, per text-tower fingerprint; shared by the stages of one
# process (a sweep's students all start from the same frozen tower).
_TEXT_FEATURES: dict[str, dict[str, torch.Tensor]] = {}


def _fingerprint(module: torch.nn.Module) -> str:
    """A cheap identity of a module's weights (name, shape and sum of every tensor)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(f"{name}{tuple(t.shape)}{t.double().sum().item():.10e}".encode())
    return h.hexdigest()


class FrozenText:
    """Pooled text-tower outputs per caption, computed once: a frozen tower gives the same
    output every epoch (and to every student of the same teacher), so only the projection
    runs per step."""

    def __init__(self, model, captions: list[str], device: torch.device, batch_size: int = 256):
        model.caption_encoder.base.eval()
        known = _TEXT_FEATURES.setdefault(_fingerprint(model.caption_encoder.base), {})
        todo = sorted(set(captions) - set(known))
        with torch.no_grad():
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                tokens = {k: v.to(device) for k, v in model.tokenize(chunk).items()}
                feats = model.text_features(tokens["input_ids"], tokens["attention_mask"])
                known.update(zip(chunk, feats.cpu(), strict=True))
        unique = sorted(set(captions))
        self.row = {c: i for i, c in enumerate(unique)}
        self.table = torch.stack([known[c] for c in unique]).to(device)

    def __call__(self, captions: list[str]) -> torch.Tensor:
        return self.table[torch.tensor([self.row[c] for c in captions], device=self.table.device)]


def _batch_loss(model, forward, frozen, batch, data: TrainData, cfg: TrainConfig, device, autocast):
    audio = batch["audio"].to(device, non_blocking=True)
    with autocast:
        if frozen is not None:
            logits = model.logits_from_text_features(audio, frozen(batch["captions"]))
        else:
            tokens = {k: v.to(device) for k, v in model.tokenize(batch["captions"]).items()}
            logits = forward(audio, tokens["input_ids"], tokens["attention_mask"])
    if cfg.beta == 0:
        return clap_loss(logits.float())
    teacher = data.main_teacher if batch["source"] == MAIN else data.replay_teacher
    if teacher is None:
        raise ValueError("beta > 0 needs teacher embeddings for every source")
    idx = batch["index"]
    return soft_clap_loss(
        logits.float(),
        teacher[0][idx].to(device).float(),
        teacher[1][idx].to(device).float(),
        beta=cfg.beta,
        soft_target=cfg.soft_target,
        teacher_temperature=cfg.teacher_temperature,
    )


def train(
    model: torch.nn.Module,
    data: TrainData,
    cfg: TrainConfig,
    out_dir: str | Path,
    cache: AudioCache,
    clip_samples: int,
    report: Callable[[dict], None] | None = None,
    device: str | None = None,
    checkpoint_every: int = 0,
) -> dict:
    """Train `model` in place; writes `checkpoint.pt` as it goes and `model.pt` at the end."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    model.to(dev)
    model.caption_encoder.base.requires_grad_(not cfg.freeze_text)
    if cfg.channels_last and dev.type == "cuda":  # on CPU it measured slower (docs/benchmarks.md)
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg, dev)
    steps_per_epoch = len(epoch_batches(len(data.main), 0, cfg.batch_size, 0.0, cfg.seed, 0))
    if steps_per_epoch == 0:
        raise ValueError(f"training needs at least 2 pairs, got {len(data.main)}")
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    scheduler = make_scheduler(optimizer, cfg, total)
    torch.manual_seed(derive_seed(cfg.seed, "train"))  # dropout and anything else global
    state = {"epoch": 0, "batch": 0, "step": 0, "skipped": 0, "seconds": 0.0}
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists():
        state = _restore(ckpt_path, model, optimizer, scheduler, dev)

    # Text is padded per batch, so let the compiler treat sequence length as dynamic.
    forward = torch.compile(model, dynamic=True) if cfg.compile else model
    frozen = None
    if cfg.freeze_text:
        frozen = FrozenText(model, [p.caption for p in (*data.main, *data.replay)], dev)
    dataset = PairDataset(data.main, data.replay, cache, clip_samples)
    autocast = autocast_for(cfg, dev)
    model.train()
    if cfg.freeze_text:
        model.caption_encoder.base.eval()  # no dropout in a frozen tower
    last = {}
    while state["epoch"] < cfg.epochs and state["step"] < total:
        batches = epoch_batches(
            len(data.main), len(data.replay), cfg.batch_size, cfg.replay, cfg.seed, state["epoch"]
        )
        loader = make_loader(
            dataset, batches[state["batch"] :], cfg.num_workers, dev.type == "cuda"
        )
        t0, seen = time.perf_counter(), 0
        for batch in loader:
            state["batch"] += 1
            state["skipped"] += batch["skipped"]
            if batch["audio"] is None or len(batch["captions"]) < 2:
                continue
            loss = _batch_loss(model, forward, frozen, batch, data, cfg, dev, autocast)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            seen += len(batch["captions"])
            if state["step"] % cfg.log_every == 0 or state["step"] == total:
                elapsed = time.perf_counter() - t0
                last = {
                    "step": state["step"],
                    "epoch": state["epoch"],
                    "loss": loss.item(),
                    "lr": scheduler.get_last_lr()[0],
                    "logit_scale": model.scale().item(),
                    "samples_per_s": seen / elapsed if elapsed > 0 else 0.0,
                    "total_steps": total,
                }
                if report:
                    report(last)
            if checkpoint_every and state["step"] % checkpoint_every == 0:
                _checkpoint(ckpt_path, model, optimizer, scheduler, state, cfg)
            if state["step"] >= total:
                break
        state["seconds"] += time.perf_counter() - t0
        if state["batch"] >= len(batches):
            state["epoch"], state["batch"] = state["epoch"] + 1, 0
        _checkpoint(ckpt_path, model, optimizer, scheduler, state, cfg)
    _save_atomic({"model": model.state_dict()}, out_dir / WEIGHTS)
    return {
        "steps": state["step"],
        "epochs": state["epoch"],
        "final_loss": last.get("loss"),
        "train_seconds": state["seconds"],
        "skipped_clips": state["skipped"],
    }


def _checkpoint(path: Path, model, optimizer, scheduler, state: dict, cfg: TrainConfig) -> None:
    obj = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "state": dict(state),
        "torch_rng": torch.get_rng_state(),
        "config": to_dict(cfg),
    }
    if torch.cuda.is_available():
        obj["cuda_rng"] = torch.cuda.get_rng_state_all()
    _save_atomic(obj, path)


def _restore(path: Path, model, optimizer, scheduler, device) -> dict:
    obj = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(obj["model"])
    optimizer.load_state_dict(obj["optimizer"])
    scheduler.load_state_dict(obj["scheduler"])
    torch.set_rng_state(obj["torch_rng"].cpu())
    if "cuda_rng" in obj and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in obj["cuda_rng"]])
    return dict(obj["state"])


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load `model.pt` (or a training checkpoint) written by this trainer."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(obj["model"])
    except (RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as e:
        first = str(e).strip().splitlines()[0][:300]
        raise UserError(f"{path}: not a clapsweep checkpoint for this model ({first})") from None
