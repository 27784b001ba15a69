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
import errno
import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from clapsweep.config import TrainConfig, to_dict
from clapsweep.data.cache import AudioCache
from clapsweep.errors import UserError
from clapsweep.loader import MAIN, PairDataset, batches_per_pass, epoch_batches, make_loader
from clapsweep.losses import clap_loss, soft_clap_loss, soft_targets, target_stats
from clapsweep.seeds import derive_seed
from clapsweep.store import atomic_file, write_json
from clapsweep.torchload import load_trusted_weights

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "model.pt"
RESULT = "train_result.json"  # written last: training is over, the checkpoint is gone
TEXT_FEATURES = "text_features.pt"  # a frozen text tower's pooled output per caption
FROZEN_TEXT = "caption_encoder.base."  # stored once, by content hash, when frozen
MAX_LOG_SCALE = math.log(100.0)
MAX_LISTED = 20  # unreadable clips named in a result; the count covers them all  # the logit scale parameter is clamped to [0, log 100]


@dataclass
class TrainData:
    """What one training run reads. Teacher embeddings are (audio, text) rows per pair."""

    main: Sequence  # pairs with .path and .caption
    replay: Sequence = ()
    main_teacher: tuple[torch.Tensor, torch.Tensor] | None = None
    replay_teacher: tuple[torch.Tensor, torch.Tensor] | None = None
    teacher_pairs: int = 0  # size of the teacher's training set (0: the main set is it)


def steps_per_epoch(cfg: TrainConfig, n_main: int, n_teacher: int = 0) -> int:
    """Optimizer steps in one epoch (see TrainConfig.epoch)."""
    if cfg.steps_per_epoch:
        return cfg.steps_per_epoch
    n = n_teacher if cfg.epoch == "teacher" and n_teacher else n_main
    return batches_per_pass(n, cfg.batch_size) if n_main >= 2 else 0


def planned_steps(cfg: TrainConfig, n_main: int, n_teacher: int = 0) -> int:
    total = steps_per_epoch(cfg, n_main, n_teacher) * cfg.epochs
    return min(total, cfg.max_steps) if cfg.max_steps else total


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
    with atomic_file(path, "wb") as f:
        torch.save(obj, f)


class FrozenText:
    """Pooled text-tower outputs per caption, computed once per stage: a frozen tower gives
    the same output every epoch, so only the projection runs per step. `known` holds
    features computed before by the same tower (a student reads its teacher's table, which
    covers every caption a student can see); the rest are computed in sorted order, in
    batches of fixed size, so the table depends only on the stage's captions."""

    def __init__(
        self,
        model,
        captions: list[str],
        device: torch.device,
        known: dict[str, torch.Tensor] | None = None,
        batch_size: int = 256,
    ):
        model.caption_encoder.base.eval()
        unique = sorted(set(captions))
        known = dict(known or {})
        todo = [c for c in unique if c not in known]
        with torch.no_grad():
            for start in range(0, len(todo), batch_size):
                chunk = todo[start : start + batch_size]
                tokens = {k: v.to(device) for k, v in model.tokenize(chunk).items()}
                feats = model.text_features(tokens["input_ids"], tokens["attention_mask"])
                known.update(zip(chunk, feats.float().cpu(), strict=True))
        self.captions = unique
        self.row = {c: i for i, c in enumerate(unique)}
        self.table = torch.stack([known[c] for c in unique]).to(device)

    def __call__(self, captions: list[str]) -> torch.Tensor:
        return self.table[torch.tensor([self.row[c] for c in captions], device=self.table.device)]

    def save(self, path: Path) -> None:
        _save_atomic({"captions": self.captions, "features": self.table.cpu()}, path)

    @staticmethod
    def load(path: Path) -> dict[str, torch.Tensor]:
        """A saved table as {caption: feature}; empty when there is none."""
        if not Path(path).is_file():
            return {}
        obj = load_trusted_weights(path, "text features")
        return dict(zip(obj["captions"], obj["features"], strict=True))


def _batch_teacher(batch, data: TrainData) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's (audio, text) embeddings of a batch's pairs, from the batch's source."""
    teacher = data.main_teacher if batch["source"] == MAIN else data.replay_teacher
    if teacher is None:
        raise ValueError("beta > 0 needs teacher embeddings for every source")
    idx = batch["index"]
    return teacher[0][idx].float(), teacher[1][idx].float()


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
    audio_t, text_t = _batch_teacher(batch, data)
    return soft_clap_loss(
        logits.float(),
        audio_t.to(device),
        text_t.to(device),
        beta=cfg.beta,
        soft_target=cfg.soft_target,
        teacher_temperature=cfg.teacher_temperature,
    )


class SoftLabelStats:
    """Per epoch, how much target mass the soft labels put off the diagonal (audio rows and
    text rows) and the mean row sum (which scales the `paper` targets' gradient)."""

    FIELDS = ("off_diagonal_audio", "off_diagonal_text", "row_sum_audio", "row_sum_text")

    def __init__(self) -> None:
        self.sums, self.batches = dict.fromkeys(self.FIELDS, 0.0), 0

    def add(self, batch, data: TrainData, cfg: TrainConfig) -> None:
        audio_t, text_t = _batch_teacher(batch, data)
        targets = soft_targets(audio_t, text_t, cfg.beta, cfg.soft_target, cfg.teacher_temperature)
        for side, target in zip(("audio", "text"), targets, strict=True):
            stats = target_stats(target)
            self.sums[f"off_diagonal_{side}"] += stats["off_diagonal"]
            self.sums[f"row_sum_{side}"] += stats["row_sum"]
        self.batches += 1

    def epoch(self, epoch: int) -> dict:
        out = {k: v / max(1, self.batches) for k, v in self.sums.items()}
        self.__init__()
        return {"epoch": epoch, **out}


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
    stream: str = "",
    text_features: dict[str, torch.Tensor] | None = None,
    keep_text_features: bool = False,
    on_epoch: Callable[[int, torch.nn.Module], None] | None = None,
) -> dict:
    """Train `model` in place; writes `checkpoint.pt` as it goes, then `model.pt` and
    `train_result.json`, and deletes the checkpoint. Every random stream (order, replay
    draws, crops, dropout) derives from (cfg.seed, stream): the caller passes its stage key,
    so two stages never share a stream and nothing depends on what ran before in the process.
    `text_features` are known pooled outputs of a frozen text tower (see FrozenText);
    `keep_text_features` saves this run's table beside the weights (a teacher's, which its
    students read). `on_epoch(epochs_done, model)` runs after each epoch's checkpoint (a
    search's validation); it cannot change the training (see _after_epoch)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / RESULT).is_file() and (out_dir / WEIGHTS).is_file():
        return json.loads((out_dir / RESULT).read_text())  # finished before an interruption
    seed = derive_seed(cfg.seed, stream)
    dev = pick_device(device)
    with torch.random.fork_rng(devices=devices_of(dev)):  # the process RNG stays as it was
        torch.manual_seed(derive_seed(seed, "train"))  # dropout and anything else global
        result = _train(model, data, cfg, out_dir, cache, clip_samples, report, dev, seed,
                        checkpoint_every, text_features, keep_text_features,
                        on_epoch)  # fmt: skip
    _save_weights(model, cfg, out_dir / WEIGHTS)
    # Without the wall-clock seconds: the stage's files are a function of its key alone.
    write_json(out_dir / RESULT, {k: v for k, v in result.items() if k != "train_seconds"})
    (out_dir / CHECKPOINT).unlink(missing_ok=True)  # only an unfinished stage needs it
    return result


def _train(
    model, data, cfg, out_dir, cache, clip_samples, report, dev, seed, every, known, keep, on_epoch
):
    model.to(dev)
    model.caption_encoder.base.requires_grad_(not cfg.freeze_text)
    if cfg.channels_last and dev.type == "cuda":  # on CPU it measured slower (docs/benchmarks.md)
        model.to(memory_format=torch.channels_last)
    check_space(model, out_dir)
    optimizer = make_optimizer(model, cfg, dev)
    per_epoch = steps_per_epoch(cfg, len(data.main), data.teacher_pairs)
    if per_epoch == 0:
        raise UserError(
            f"training needs at least 2 pairs (a contrastive batch needs a negative), got "
            f"{len(data.main)}; for a student, lower its curation threshold"
        )
    total = planned_steps(cfg, len(data.main), data.teacher_pairs)
    scheduler = make_scheduler(optimizer, cfg, total)
    state = {"epoch": 0, "batch": 0, "step": 0, "skipped": 0, "seconds": 0.0, "last": {}}
    state["soft_labels"], state["unreadable"] = [], []
    ckpt_path = out_dir / CHECKPOINT
    if ckpt_path.exists():
        state |= _restore(ckpt_path, model, optimizer, scheduler, dev)

    # Text is padded per batch, so let the compiler treat sequence length as dynamic.
    forward = torch.compile(model, dynamic=True) if cfg.compile else model
    frozen = None
    if cfg.freeze_text:
        captions = [p.caption for p in (*data.main, *data.replay)]
        frozen = FrozenText(model, captions, dev, known)
        if keep:
            frozen.save(out_dir / TEXT_FEATURES)
    dataset = PairDataset(data.main, data.replay, cache, clip_samples)
    autocast = autocast_for(cfg, dev)
    soft = SoftLabelStats() if cfg.beta > 0 else None
    model.train()
    if cfg.freeze_text:
        model.caption_encoder.base.eval()  # no dropout in a frozen tower
    while state["epoch"] < cfg.epochs and state["step"] < total:
        batches = epoch_batches(
            len(data.main), len(data.replay), cfg.batch_size, cfg.replay, seed, state["epoch"],
            per_epoch,
        )  # fmt: skip
        loader = make_loader(
            dataset, batches[state["batch"] :], cfg.num_workers, dev.type == "cuda"
        )
        t0, seen = time.perf_counter(), 0
        for batch in loader:
            state["batch"] += 1
            state["skipped"] += batch["skipped"]
            if batch["unreadable"]:  # rare: no set work on the common path
                state["unreadable"] = sorted({*state["unreadable"], *batch["unreadable"]})
            if batch["audio"] is None or len(batch["captions"]) < 2:
                continue
            loss = _batch_loss(model, forward, frozen, batch, data, cfg, dev, autocast)
            if soft is not None:
                soft.add(batch, data, cfg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            with torch.no_grad():  # CLIP's clamp: on the parameter, so tau keeps its gradient
                model.logit_scale.clamp_(0.0, MAX_LOG_SCALE)
            scheduler.step()
            state["step"] += 1
            seen += len(batch["captions"])
            state["last"] = {"step": state["step"], "loss": loss.item()}
            if state["step"] % cfg.log_every == 0 or state["step"] == total:
                elapsed = time.perf_counter() - t0
                if report:
                    report(
                        {
                            "step": state["step"],
                            "epoch": state["epoch"],
                            "loss": state["last"]["loss"],
                            "lr": scheduler.get_last_lr()[0],
                            "logit_scale": model.scale().item(),
                            "samples_per_s": seen / elapsed if elapsed > 0 else 0.0,
                            "total_steps": total,
                        }
                    )
            if every and state["step"] % every == 0:
                _checkpoint(ckpt_path, model, optimizer, scheduler, state, cfg)
            if state["step"] >= total:
                break
        state["seconds"] += time.perf_counter() - t0
        if state["batch"] >= len(batches) or state["step"] >= total:
            if soft is not None:
                # Of the batches since the last restart; a resumed epoch counts its rest.
                state["soft_labels"].append(soft.epoch(state["epoch"]))
                if report:
                    report({f"soft/{k}": v for k, v in state["soft_labels"][-1].items()})
            state["epoch"], state["batch"] = state["epoch"] + 1, 0
            _checkpoint(ckpt_path, model, optimizer, scheduler, state, cfg)
            if on_epoch is not None:
                _after_epoch(on_epoch, state["epoch"], model, cfg, devices_of(dev))
        else:
            _checkpoint(ckpt_path, model, optimizer, scheduler, state, cfg)
    result = {
        "steps": state["step"],
        "epochs": state["epoch"],
        "steps_per_epoch": per_epoch,
        "final_loss": state["last"].get("loss"),
        "train_seconds": state["seconds"],
        "skipped_clips": state["skipped"],  # draws of an unreadable clip
        "unreadable_clips": state["unreadable"][:MAX_LISTED],  # which (the first ones)
        "logit_scale": model.scale().item(),
    }
    if soft is not None:
        result["soft_labels"] = state["soft_labels"]
    return result


def devices_of(dev: torch.device) -> list[int]:
    return [dev.index or 0] if dev.type == "cuda" else []


def _after_epoch(on_epoch, epochs_done: int, model, cfg: TrainConfig, devices: list[int]) -> None:
    """Run the epoch hook without touching the training: under a forked RNG (dropout and
    crops draw the same numbers as without it), in eval mode, and back to train mode after
    (a frozen text tower stays in eval mode)."""
    with torch.random.fork_rng(devices=devices):
        model.eval()
        try:
            with torch.no_grad():
                on_epoch(epochs_done, model)
        finally:
            model.train()
            if cfg.freeze_text:
                model.caption_encoder.base.eval()


def check_space(model: torch.nn.Module, out_dir: Path) -> None:
    """Fail before the first step, not at the first checkpoint: a checkpoint holds the
    trainable weights and AdamW's two moments (3x), written beside the one before it, and
    model.pt adds the weights once more. A raised ENOSPC stops the sweep with the free space
    and the fix, as a full disk met later does."""
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    ckpt = out_dir / CHECKPOINT
    need = 7 * trainable - (ckpt.stat().st_size if ckpt.is_file() else 0)
    if shutil.disk_usage(out_dir).free < need:
        raise OSError(
            errno.ENOSPC, f"Not enough space for training: about {need / 1e6:.0f} MB is needed",
            str(ckpt),
        )  # fmt: skip


def _frozen_prefixes(cfg: TrainConfig) -> list[str]:
    return [FROZEN_TEXT] if cfg.freeze_text else []


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of tensors' names, dtypes, shapes and bytes: a frozen tower's identity."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(state[name].shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _split_frozen(model, prefixes: list[str]) -> tuple[dict, dict]:
    """(state without the frozen parts, {prefix: digest of that part})."""
    state = model.state_dict()
    frozen = {}
    for prefix in prefixes:
        part = {k: v for k, v in state.items() if k.startswith(prefix)}
        frozen[prefix] = state_digest(part)
        state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    return state, frozen


def _save_weights(model, cfg: TrainConfig, path: Path) -> None:
    """model.pt: the trained weights; a frozen tower is referenced by its content hash, not
    stored again (it is rebuilt from model.text and checked against the hash on load)."""
    state, frozen = _split_frozen(model, _frozen_prefixes(cfg))
    _save_atomic({"model": state, "frozen": frozen}, path)


def _checkpoint(path: Path, model, optimizer, scheduler, state: dict, cfg: TrainConfig) -> None:
    obj = {
        "model": _split_frozen(model, _frozen_prefixes(cfg))[0],
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
    obj = load_trusted_weights(path, "training checkpoint")
    model.load_state_dict(obj["model"], strict=False)  # a frozen tower is not in it
    optimizer.load_state_dict(obj["optimizer"])
    scheduler.load_state_dict(obj["scheduler"])
    torch.set_rng_state(obj["torch_rng"].cpu())
    if "cuda_rng" in obj and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in obj["cuda_rng"]])
    return dict(obj["state"])


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load `model.pt` written by this trainer (or an older full state dict)."""
    path = Path(path)
    obj = load_trusted_weights(path, "clapsweep checkpoint")
    try:
        state, frozen = obj["model"], obj.get("frozen") or {}
        own = model.state_dict()
        for prefix, digest in frozen.items():
            part = {k: v for k, v in own.items() if k.startswith(prefix)}
            if state_digest(part) != digest:
                raise UserError(
                    f"{path}: the frozen weights {prefix}* it was trained with differ from the "
                    "ones built now from model.text (the text model folder or package changed); "
                    "point model.text at the original model"
                )
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not any(k.startswith(p) for p in frozen)]
        if missing or unexpected:
            raise RuntimeError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        first = str(e).strip().splitlines()[0][:300]
        raise UserError(f"{path}: not a clapsweep checkpoint for this model ({first})") from None
