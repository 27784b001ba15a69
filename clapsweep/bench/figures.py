"""The bench figures file: the throughputs `clapsweep bench train` and `bench eval` measured,
kept in a small JSON file so that `clapsweep run SWEEP --dry-run` can estimate compute time.

Where: $CLAPSWEEP_BENCH_FIGURES, else runs/bench/figures.json (relative to the current folder,
like the shipped sweeps' project store runs/store); `bench --figures PATH` writes elsewhere.
Shape (docs/benchmarks.md):

    {"version": 1, "figures": [
      {"benchmark": "train", "key": {...}, "samples_per_s": 812.0, "figure": "b_trainer_warm",
       "measured": "2025-05-01T12:00:00Z", "device": "cuda", "device_name": "NVIDIA H100",
       "config": "paper", "batch_size": 64},
      {"benchmark": "eval", "key": {...}, "clips_per_s": 2400.0, ...}]}

`key` holds the settings that decide the speed (the model's towers and size, the front-end's
rate, clip length and STFT, and for training whether the text tower is frozen), so a sweep
finds the figures measured for its own model. One record per (benchmark, key, device): a new
measurement replaces the old one; a sweep uses the newest record of its key.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from clapsweep.errors import UserError

DEFAULT_PATH = "runs/bench/figures.json"
VERSION = 1
_FRONTEND_KEYS = ("sample_rate", "clip_seconds", "n_fft", "hop_length", "n_mels")
_MODEL_KEYS = ("audio", "text", "dim")
# The figure each benchmark contributes, best first: what the pipeline's stages run.
_TRAIN_FIGURES = ("b_trainer_warm", "b_trainer_cold", "a_model_alone")
_EVAL_FIGURES = ("embed_audio_pipeline_defaults_warm", "embed_audio_tuned_warm")


def figures_path() -> Path:
    return Path(os.environ.get("CLAPSWEEP_BENCH_FIGURES") or DEFAULT_PATH)


def speed_key(frontend: dict, model: dict, freeze_text: bool | None = None) -> dict[str, Any]:
    """The settings of a front-end and model (as dicts) that decide training and embedding
    speed; `freeze_text` for training only (None leaves it out)."""
    key = {f"frontend.{k}": frontend.get(k) for k in _FRONTEND_KEYS}
    key |= {f"model.{k}": model.get(k) for k in _MODEL_KEYS}
    if model.get("audio") == "small_cnn":  # CNN14 has no width setting
        key["model.audio_width"] = model.get("audio_width")
    if freeze_text is not None:
        key["train.freeze_text"] = bool(freeze_text)
    return key


def records_from(result: dict) -> list[dict[str, Any]]:
    """The figure records of one `bench train` or `bench eval` result (none for the other
    benchmarks, or when the figure is missing)."""
    kind, config = result.get("benchmark"), result.get("config", {})
    machine = result.get("machine", {})
    base = {
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": machine.get("device"),
        "device_name": machine.get("device_name"),
        "config": config.get("name"),
    }
    if kind == "train":
        figure = next((f for f in _TRAIN_FIGURES if f in result), None)
        if figure is None:
            return []
        key = speed_key(config["frontend"], config["model"], config.get("freeze_text"))
        rate = result[figure]["samples_per_s"]
        extra = {"samples_per_s": rate, "batch_size": config.get("batch_size")}
    elif kind == "eval":
        figure = next((f for f in _EVAL_FIGURES if f in result), None)
        if figure is None:
            return []
        key = speed_key(config["frontend"], config["model"])
        extra = {"clips_per_s": result[figure]["clips_per_s"]}
    else:
        return []
    return [{"benchmark": kind, "key": key, "figure": figure, **base, **extra}]


def load_figures(path: str | Path) -> list[dict[str, Any]] | None:
    """The records of a figures file; None when there is no such file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise UserError(
            f"{path}: unreadable bench figures ({type(e).__name__}); delete it and rerun "
            "`clapsweep bench train` / `bench eval`"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("figures"), list):
        raise UserError(
            f'{path}: not a bench figures file (expected {{"version": 1, "figures": [...]}}); '
            "delete it and rerun `clapsweep bench train` / `bench eval`"
        )
    return [r for r in data["figures"] if isinstance(r, dict)]


def record_figures(result: dict, path: str | Path) -> list[dict[str, Any]]:
    """Add a benchmark result's records to the figures file at `path` (created with its
    folder), replacing older ones of the same benchmark, key and device; the records added."""
    from clapsweep.store import write_json  # here: reading the file needs none of the store

    new = records_from(result)
    if not new:
        return []
    path = Path(path)
    old = load_figures(path) or []
    same = {_identity(r) for r in new}
    kept = [r for r in old if _identity(r) not in same]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"version": VERSION, "figures": kept + new})
    return new


def newest(records: list[dict[str, Any]], benchmark: str, key: dict) -> dict[str, Any] | None:
    """The most recently measured record of `benchmark` for `key`, or None."""
    matches = [r for r in records if r.get("benchmark") == benchmark and r.get("key") == key]
    return max(matches, key=lambda r: str(r.get("measured", "")), default=None)


def _identity(record: dict[str, Any]) -> str:
    return json.dumps([record.get("benchmark"), record.get("key"), record.get("device")],
                      sort_keys=True)  # fmt: skip
