"""Compute estimates for `clapsweep run SWEEP --dry-run`, from the bench figures file
(clapsweep.bench.figures): per stage kind, the stages that will run (not done in the store)
times what one costs at the measured throughput.

- teacher, student: planned optimizer steps x batch size / training samples/s (`bench
  train`, the real trainer with a warm cache). A student whose steps depend on its
  Improvement-Set (`student.epoch: improvement`) is counted as unknown.
- embed: the 5 s windows (the eval clip policy) of the teacher's clips and of the wild pool,
  eval: those of every task's clips and the held-out retrieval pairs, / embedding clips/s
  (`bench eval`, one-window clips as the pipeline calls embed_audio). Text embedding is
  left out (small next to the audio).
- curate: not estimated (chunked products: seconds per stage; see `clapsweep bench curate`).

Figures are matched to a stage by the speed settings of its own front-end and model
(figures.speed_key). Estimates are stage compute, not wall time: stages that run at once
(workers, Ray, SLURM arrays) share it out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from clapsweep.bench.figures import figures_path, load_figures, newest, speed_key
from clapsweep.config import TrainConfig
from clapsweep.errors import UserError

KINDS = ("teacher", "embed", "curate", "student", "eval")
NO_CURATE = "curation takes seconds of chunked products (see `clapsweep bench curate`)"


def estimate_compute(
    plan: Any,
    is_done: Callable[[str], bool],
    schedule: dict[str, Any],
    path: str | Path | None = None,
) -> dict[str, Any]:
    """{"file", "missing" (why there is no estimate, or None), "kinds": {kind: {"stages",
    "seconds" (of the stages with an estimate), "unknown" (stages without), "why", "work"}},
    "seconds" (all kinds), "sources" (the records used)}. `plan` is the sweep's Plan,
    `schedule` describe_plan's (teacher pairs and student steps)."""
    path = Path(path or figures_path())
    records = load_figures(path)
    out: dict[str, Any] = {"file": str(path), "missing": None, "kinds": {}, "sources": []}
    if records is None:
        out["missing"] = (
            f"no bench figures ({path} does not exist; run `clapsweep bench train --config "
            "paper|demo` and `clapsweep bench eval --config paper|demo` to get estimates)"
        )
        return out
    todo = [s for s in plan.stages.values() if not is_done(s.name)]
    used: dict[str, dict] = {}
    for kind in KINDS:
        stages = [s for s in todo if s.kind == kind]
        if stages:
            out["kinds"][kind] = _kind_estimate(kind, stages, records, schedule, used)
    out["seconds"] = sum(k["seconds"] for k in out["kinds"].values())
    out["sources"] = list(used.values())
    return out


def _kind_estimate(
    kind: str, stages: list, records: list[dict], schedule: dict, used: dict[str, dict]
) -> dict[str, Any]:
    """The sum over one kind's stages; `used` collects the records it read."""
    unit = "samples" if kind in ("teacher", "student") else "windows"
    row = {
        "stages": len(stages),
        "seconds": 0.0,
        "unknown": 0,
        "why": None,
        "work": 0,
        "unit": unit,
    }
    if kind == "curate":
        return row | {"unknown": len(stages), "why": NO_CURATE}
    for stage in stages:
        try:
            seconds, work, record = _stage_estimate(stage, records, schedule)
        except (_Unknown, UserError) as e:  # UserError: no data here; the plan still shows
            row["unknown"] += 1
            why = str(e) if isinstance(e, _Unknown) else f"data unavailable: {e}"
            row["why"] = row["why"] or why
            continue
        row["seconds"] += seconds
        row["work"] += work
        used[record["benchmark"] + repr(record["key"])] = record
    return row


class _Unknown(Exception):
    """A stage without an estimate; the message says why."""


def _stage_estimate(stage: Any, records: list[dict], schedule: dict) -> tuple[float, int, dict]:
    """(seconds, samples or windows, the figure record used) of one stage."""
    frontend, model = stage.config["frontend"], stage.config["model"]
    if stage.kind in ("teacher", "student"):
        cfg = TrainConfig(**stage.config["train"])
        record = newest(records, "train", speed_key(frontend, model, cfg.freeze_text))
        if record is None:
            raise _Unknown("no `bench train` figures for this model and front-end")
        samples = _steps(stage, cfg, schedule) * cfg.batch_size
        return samples / record["samples_per_s"], samples, record
    record = newest(records, "eval", speed_key(frontend, model))
    if record is None:
        raise _Unknown("no `bench eval` figures for this model and front-end")
    windows = _embed_windows(stage.config) if stage.kind == "embed" else _eval_windows(stage.config)
    return windows / record["clips_per_s"], windows, record


def _steps(stage: Any, cfg: TrainConfig, schedule: dict) -> int:
    from clapsweep.data.datasets import subset_size
    from clapsweep.train import planned_steps

    pairs = schedule.get("teacher_pairs")
    if pairs is None:
        raise _Unknown(f"teacher pairs unavailable: {schedule.get('unavailable')}")
    if stage.kind == "teacher":
        n = subset_size(sum(pairs.values()), stage.config["data"]["fraction"])
        return planned_steps(cfg, n, n)
    steps = {s["name"]: s["steps"] for s in schedule.get("students", [])}.get(stage.name)
    if steps is None:
        raise _Unknown("student steps depend on the Improvement-Set (known after curation)")
    return steps


def window_count(duration: float, clip_seconds: float, sample_rate: int) -> int:
    """The windows the eval clip policy (audio.eval_windows) cuts a clip of `duration` into:
    whole windows, plus a last partial one of at least half a window (or when it is the only
    one)."""
    length, size = round(duration * sample_rate), round(clip_seconds * sample_rate)
    full, rest = divmod(length, size)
    return max(1, full + (1 if rest > 0 and (2 * rest >= size or full == 0) else 0))


def _windows(records: list, frontend: dict) -> int:
    clip, rate = frontend["clip_seconds"], frontend["sample_rate"]
    return sum(window_count(r.duration, clip, rate) for r in records)


def _embed_windows(config: dict) -> int:
    """The teacher's clips (those of its pairs) and the wild pool, as stage_embed embeds them."""
    from clapsweep.pipeline import manifest, training_pairs

    data = config["data"]
    by_id = {r.id: r for n in data["teacher"] for r in manifest(n, data["root"]).records}
    clips = {p.record_id for p in training_pairs(data, config["seed"])}
    wild = manifest(data["wild"], data["root"]).records
    return _windows([by_id[c] for c in clips], config["frontend"]) + _windows(
        wild, config["frontend"]
    )


def _eval_windows(config: dict) -> int:
    """Every task's clips and the held-out retrieval clips, as stage_eval embeds them."""
    from clapsweep.pipeline import held_out_records, task_manifest

    data = config["data"]
    records = [r for task in data["tasks"] for r in task_manifest(data, task).records]
    if data.get("teacher"):
        records += held_out_records(data)
    return _windows(records, config["frontend"])
