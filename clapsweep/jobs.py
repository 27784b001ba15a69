"""Single jobs outside a sweep: `clapsweep train --config FILE` and `clapsweep eval`.

A job folder holds `config.json` (the resolved job), the trainer's `checkpoint.pt` and
`model.pt`, and `metrics.json`. Running the same job again resumes from its checkpoint.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from clapsweep import config as C
from clapsweep import pipeline
from clapsweep.errors import UserError
from clapsweep.recipe import strategies
from clapsweep.recipe.tasks import names as task_names


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
    student = C.to_dict(job.student) if job.student else {}
    inputs = {k: Path(v) for k, v in student.items() if v}
    for role, folder in inputs.items():
        if not folder.is_dir():
            raise UserError(f"student.{role}: {folder} is not a folder; run that stage first")
    ensure_data(job.data)
    out = Path(job.out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    cfg = _stage_config(job)
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    _use_cache(cfg, out)
    if job.student is None:
        result = pipeline.run_stage("teacher", cfg, {}, out, report)
    else:
        result = pipeline.run_stage("student", cfg, inputs, out, report)
    metrics = pipeline.run_stage("eval", cfg, {"model": out}, out, report)
    return {"train": result, "eval": metrics, "out": str(out)}


def eval_job(checkpoint: str | Path, tasks: list[str] | None = None) -> dict:
    """Evaluate a job folder (or its model.pt) with the config saved beside it, or a sweep's
    finished teacher or student stage (its meta.json config); a stage folder is never
    written to: its metrics go to a scratch folder and are printed."""
    folder = Path(checkpoint)
    if not folder.exists():
        raise UserError(f"--checkpoint: {folder} does not exist; pass a job or stage folder")
    folder = folder if folder.is_dir() else folder.parent
    cfg = _job_config(folder)
    if tasks:
        bad = sorted(set(tasks) - set(task_names()))
        if bad:
            raise UserError(f"--tasks: unknown task {bad[0]}; expected {_either(task_names())}")
        cfg["data"]["tasks"] = tasks
    if not (folder / "config.json").is_file():  # a store stage: read-only
        with tempfile.TemporaryDirectory(prefix="clapsweep-eval-") as out:
            return pipeline.run_stage("eval", cfg, {"model": folder}, Path(out))
    _use_cache(cfg, folder)
    return pipeline.run_stage("eval", cfg, {"model": folder}, folder)


def _use_cache(cfg: dict, folder: Path) -> None:
    """A job keeps its decoded-audio cache in its own folder (when data.cache is on)."""
    if cfg["data"].get("cache"):
        cfg["runtime"] = {"cache_dir": str(folder / "cache")}


def _job_config(folder: Path) -> dict:
    """The config of a `clapsweep train` folder (config.json) or of a sweep's stage folder
    (meta.json's config)."""
    path = folder / "config.json"
    if not path.is_file() and (folder / "meta.json").is_file():
        path = folder / "meta.json"
    if not path.is_file():
        raise UserError(
            f"{path}: not found; pass a folder written by `clapsweep train` or a sweep stage"
        )
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{path}: damaged (not JSON); rerun the job that wrote it") from None
    if path.name == "meta.json" and isinstance(cfg, dict):
        cfg = cfg.get("config")
    missing = [
        k for k in ("data", "frontend", "model") if not isinstance(cfg, dict) or k not in cfg
    ]
    if missing:
        raise UserError(
            f"{path}: has no {missing[0]!r} section; pass a folder written by `clapsweep train`"
        )
    return cfg


def embed_job(teacher: str | Path, out: str | Path, report=None) -> dict:
    """Teacher embeddings of captions, teacher clips, wild clips and class prompts."""
    teacher, out = Path(teacher).absolute(), Path(out).absolute()
    cfg = _job_config(teacher)
    cfg["seed"] = cfg["train"]["seed"]  # the teacher's pair subset
    _use_cache(cfg, teacher)
    result = pipeline.run_stage("embed", cfg, {"teacher": teacher}, out, report)
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    return result


def curate_job(embed: str | Path, out: str | Path, **options) -> dict:
    """One Improvement-Set; `options` are the curate stage's config (strategy, task, sigma,
    sigma_ds, top_k), checked here so a mistake stops before any work."""
    strategy = options.get("strategy")
    if strategy not in strategies.STRATEGIES:
        raise UserError(f"--strategy: expected {_either(strategies.names())}, got {strategy!r}")
    chosen = strategies.get(strategy)
    for name in (["task"] if chosen.per_task else []) + list(chosen.thresholds):
        if options.get(name) is None:
            raise UserError(f"--{name.replace('_', '-')}: required by --strategy {strategy}")
    for name in ("sigma", "sigma_ds"):
        value = options.get(name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise UserError(f"--{name.replace('_', '-')}: expected a value in [0, 1], got {value}")
    if options.get("task") not in (None, *task_names()):
        raise UserError(f"--task: expected {_either(task_names())}, got {options['task']!r}")
    embed = Path(embed).absolute()
    if not (embed / "captions.json").is_file():
        raise UserError(f"--embed: {embed} holds no embeddings; run `clapsweep embed` first")
    config = {k: v for k, v in options.items() if v is not None}
    return pipeline.run_stage("curate", config, {"embed": embed}, Path(out).absolute())


def _either(names: list[str]) -> str:
    """'a, b or c'."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
