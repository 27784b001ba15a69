"""Single jobs outside a sweep: `clapsweep train --config FILE` and `clapsweep eval`.

A job folder holds `config.json` (the resolved job), the trainer's `checkpoint.pt` and
`model.pt`, and `metrics.json`. Running the same job again resumes from its checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from clapsweep import config as C
from clapsweep import pipeline
from clapsweep.errors import UserError


def ensure_data(data: C.DataConfig) -> None:
    """Generate synthworld into data.root when the config asks for it and it is not there."""
    if data.synth is not None:
        from clapsweep.data import synthworld

        synthworld.generate(data.root, scale=data.synth.scale, seed=data.synth.seed)
    elif not Path(data.root).is_dir():
        raise UserError(
            f"data.root: {data.root} does not exist; point it at your datasets "
            "(docs/datasets.md) or add `synth: {scale: demo}` to generate synthworld"
        )


def _stage_config(job: C.TrainJob) -> dict:
    cfg = C.to_dict(job)
    cfg["data"]["root"] = str(Path(job.data.root).absolute())
    return cfg


def train_job(path: str | Path, report: Callable[[dict], None] | None = None) -> dict:
    job = C.load(C.TrainJob, path)
    ensure_data(job.data)
    out = Path(job.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    if job.data.cache:
        os.environ.setdefault("CLAPSWEEP_CACHE_DIR", str(out / "cache"))
    cfg = _stage_config(job)
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    result = pipeline.run_stage("teacher", cfg, {}, out, report)
    metrics = pipeline.run_stage("eval", cfg, {"model": out}, out, report)
    return {"train": result, "eval": metrics, "out": str(out)}


def eval_job(checkpoint: str | Path, tasks: list[str] | None = None) -> dict:
    """Evaluate a job folder (or its model.pt) with the config saved beside it."""
    folder = Path(checkpoint)
    folder = folder if folder.is_dir() else folder.parent
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"{cfg_path}: not found; pass a folder written by `clapsweep train`")
    cfg = json.loads(cfg_path.read_text())
    if tasks:
        bad = sorted(set(tasks) - {"esc50", "us8k", "tut17"})
        if bad:
            raise UserError(f"--tasks: unknown task {bad[0]}; expected esc50, us8k or tut17")
        cfg["data"]["tasks"] = tasks
    if cfg["data"].get("cache"):
        os.environ.setdefault("CLAPSWEEP_CACHE_DIR", str(folder / "cache"))
    return pipeline.run_stage("eval", cfg, {"model": folder}, folder)
