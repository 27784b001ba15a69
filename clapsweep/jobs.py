"""Single jobs outside a sweep: `clapsweep train --config FILE`, `embed`, `curate`, `eval`.

A job is one stage, run by the sweep's StageExecutor in a one-stage Store of its own beside
the folder the user names (OUT: a train job's `out`, the `--out` of embed and curate):

    OUT.partial/stages/<kind>-<key>.partial/  the stage at work; an interrupted job finds its
                                              checkpoint there when it runs again (resumes)
    OUT.partial/stages/<kind>-<key>/          committed by Store.commit, meta.json and all
    OUT                                       that folder renamed into place, then
                                              OUT.partial removed
    OUT.cache/                                decoded audio (data.cache), kept for later jobs

So OUT appears whole, with a meta.json like a sweep stage's (config, inputs, result, each
file's size and sha256), or not at all. The key hashes the job's kind, config and input
folders: the same job run again prints its result and computes nothing (unless OUT was
damaged, or an input changed since: then it is computed again); another job's output, or any
other folder, at OUT is never overwritten. A train job's stage trains the teacher (or, with
`student:`, the student) and evaluates it in the same folder (model.pt, metrics.json, ...);
its result is {"train": ..., "eval": ...}.

Inputs are folders anywhere (a job's OUT or a sweep's stage folder), which the executor
cannot name in the job's own store: the job checks them itself (Store.problem, in the store
each belongs to), hands them to the stage function, and records them and their outputs'
digest in meta.json before OUT is moved into place, as the executor does for a sweep stage.
A job's random streams stay a hash of its whole config (pipeline.stream_id), not its key:
`stage_view` puts that hash in `runtime.key` and hands the stage the fields of its kind's
typed config only (a train job's config also holds `out`, `student`, ...).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clapsweep import config as C
from clapsweep import pipeline
from clapsweep.errors import UserError
from clapsweep.recipe import strategies
from clapsweep.recipe.stage_config import fields_of
from clapsweep.recipe.tasks import names as task_names
from clapsweep.store import META, StageBusy, Store, write_json
from clapsweep.sweep.executor import StageExecutor, StageFailed
from clapsweep.sweep.plan import PlannedStage

Report = Callable[[dict], None]


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


def train_job(path: str | Path, report: Report | None = None) -> dict:
    """A teacher (or, with `student:`, a student) and its evaluation, into the job's `out`."""
    job = C.load(C.TrainJob, path)
    student = C.to_dict(job.student) if job.student else {}
    inputs = {k: Path(v) for k, v in student.items() if v}
    for role, folder in inputs.items():
        if not folder.is_dir():
            raise UserError(f"student.{role}: {folder} is not a folder; run that stage first")
        check_input(folder, f"student.{role}")
    ensure_data(job.data)
    out = Path(job.out).absolute()
    cfg = C.to_dict(job)
    cfg["data"]["root"] = str(Path(job.data.root).absolute())
    _use_cache(cfg, _cache_of(out))
    kind = "teacher" if job.student is None else "student"
    inputs = {role: folder.absolute() for role, folder in inputs.items()}
    result = run_job(kind, cfg, inputs, out, "out", report, stage_fn=_train_and_eval)
    return {**result, "out": str(out)}


def embed_job(teacher: str | Path, out: str | Path, report: Report | None = None) -> dict:
    """Teacher embeddings of captions, teacher clips, wild clips and class prompts."""
    teacher, out = Path(teacher).absolute(), Path(out).absolute()
    cfg = _job_config(teacher)
    check_input(teacher, "--teacher")
    cfg["seed"] = cfg["train"]["seed"]  # the teacher's pair subset
    _use_cache(cfg, _cache_of(out))
    return run_job("embed", cfg, {"teacher": teacher}, out, "--out", report)


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
    check_input(embed, "--embed")
    config = {k: v for k, v in options.items() if v is not None}
    return run_job("curate", config, {"embed": embed}, Path(out).absolute(), "--out")


def eval_job(checkpoint: str | Path, tasks: list[str] | None = None) -> dict:
    """Evaluate any folder with a model: a train job's OUT or a sweep's teacher or student
    stage (the config in their meta.json), or a job folder an older clapsweep wrote (its
    config.json). A stage folder is never written to: its metrics go to a scratch folder
    and are printed; an older job folder gets its metrics.json rewritten, as it used to."""
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
            return pipeline.run_stage("eval", stage_view("eval", cfg), {"model": folder}, Path(out))
    _use_cache(cfg, folder / "cache")
    return pipeline.run_stage("eval", stage_view("eval", cfg), {"model": folder}, folder)


# ----------------------------------------------------------------------------- one job


StageFn = Callable[[str, dict, dict[str, Path], Path, Report | None], dict]


def run_job(
    kind: str,
    config: dict[str, Any],
    inputs: dict[str, Path],
    out: Path,
    label: str,
    report: Report | None = None,
    stage_fn: StageFn | None = None,
) -> dict[str, Any]:
    """Run stage `kind` into the folder `out` (absolute; `label` names it in messages) as the
    module docstring says; its result. `stage_fn` defaults to the pipeline's stage."""
    key = job_key(kind, config, inputs)
    meta = _meta(out)
    if meta is not None and meta.get("key") == key and stage_problem(out) is None:
        return meta["result"]  # this job, finished and intact
    if out.exists() and (meta is None or meta.get("key") != key):
        if not out.is_dir() or any(out.iterdir()):
            raise UserError(
                f"{label}: {out} exists and is not this job's output; remove it or choose "
                "another folder"
            )
    store = Store(out.with_name(out.name + ".partial"))
    stage = PlannedStage(kind, key, config, {})  # its inputs are not in this store: see above
    if not store.is_done(stage.name):  # else committed there, then interrupted: move it
        _execute(store, stage, inputs, stage_fn or _stage, report, f"{label}: {out}")
    final = store.final(stage.name)
    meta = json.loads((final / META).read_text())
    meta["inputs"] = {role: str(folder) for role, folder in inputs.items()}
    meta["input_outputs"] = {role: _meta(folder)["outputs"] for role, folder in inputs.items()}
    write_json(final / META, meta)  # before `out` exists: it appears with its whole record
    if out.exists():  # empty, or this job's output, damaged or stale: replaced
        os.replace(out, store.workdir / "replaced")
    os.replace(final, out)
    shutil.rmtree(store.workdir, ignore_errors=True)
    return meta["result"]


def _execute(
    store: Store, stage: PlannedStage, inputs: dict, fn: StageFn, report, where: str
) -> None:
    """StageExecutor: begin (or resume) the stage's .partial folder, run it, commit it."""

    def run(kind: str, config: dict, _: dict, work: Path, progress) -> dict:
        return fn(kind, config, inputs, work, progress)

    try:
        StageExecutor(str(store.workdir), "job", run)(stage, report)
    except StageBusy as e:
        raise UserError(f"{where} is being written by {e.owner}; wait for it to end") from None
    except StageFailed as e:  # the stage's own error, as when it ran without the executor
        raise (e.__cause__ or e) from None


def job_key(kind: str, config: dict[str, Any], inputs: dict[str, Path]) -> str:
    """sha256 of the job's kind, config (without `runtime`) and input folders (16 hex)."""
    payload = {
        "kind": kind,
        "config": {k: v for k, v in config.items() if k != "runtime"},
        "inputs": sorted((role, str(folder)) for role, folder in inputs.items()),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def stage_problem(folder: str | Path) -> str | None:
    """Why `folder` is not a finished, intact stage (Store.problem), or None when it is: a
    sweep's stage (<workdir>/stages/<name>, its inputs named in that store) or a job's OUT
    (its inputs named by absolute path, which Store.final gives back as it is)."""
    folder = Path(folder).absolute()
    if folder.parent.name == "stages":
        return Store(folder.parent.parent).problem(folder.name)
    return Store(folder.parent).problem(str(folder))


def check_input(folder: Path, label: str) -> None:
    problem = stage_problem(folder)
    if problem is not None:
        why = "no meta.json" if problem == "not run" else problem
        raise UserError(
            f"{label}: {folder} is not a finished job or sweep stage ({why}); run that "
            "stage (again) first"
        )


def _stage(kind: str, config: dict, inputs: dict, out: Path, report: Report | None) -> dict:
    return pipeline.run_stage(kind, stage_view(kind, config), inputs, out, report)


def stage_view(kind: str, config: dict) -> dict:
    """What a job hands pipeline.run_stage: the fields of `kind`'s stage config, and as
    `runtime.key` the job's random streams: a hash of its whole config, as for every stage
    run by hand (not the stage key the executor puts into `runtime`)."""
    runtime = {k: v for k, v in config.get("runtime", {}).items() if k != "key"}
    stream = pipeline.stream_id(config | {"runtime": runtime})
    own = {k: v for k, v in config.items() if k in fields_of(kind)}
    return own | {"runtime": runtime | {"key": stream}}


def _train_and_eval(kind: str, config: dict, inputs: dict, out: Path, report) -> dict:
    result = _stage(kind, config, inputs, out, report)
    return {"train": result, "eval": _stage("eval", config, {"model": out}, out, report)}


def _meta(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _cache_of(out: Path) -> Path:
    return out.with_name(out.name + ".cache")


def _use_cache(cfg: dict, cache: Path) -> None:
    """A job's decoded-audio cache (when data.cache is on)."""
    if cfg["data"].get("cache"):
        cfg["runtime"] = {"cache_dir": str(cache)}


def _job_config(folder: Path) -> dict:
    """The config of a stage folder (meta.json's config: a job's OUT or a sweep's stage) or
    of a job folder an older clapsweep wrote (config.json)."""
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


def _either(names: list[str]) -> str:
    """'a, b or c'."""
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
