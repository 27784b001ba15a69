"""Spec -> trials -> a Plan (clapsweep.sweep.plan) of stages; identical stages are merged.

A trial is one cell of the grid: the teacher of a (seed, fraction), or one student row at a
(seed, fraction) and, for the task-specific strategies DS and ADS, one task. Each trial asks
for the stages it needs; a stage's key is a hash of its kind, the part of its config that
affects the result (StageConfig.to_key), its inputs' names and the schema version
(clapsweep.sweep.plan.stage_key). Two trials asking for the same stage get the same key, so
the stage is planned (and run) once: Table 2 trains one teacher per seed, and DU and DU+SL
with the same sigma share one curation.

Stage configs (what `clapsweep.pipeline.run_stage` receives), inputs by role:
- teacher: {data: {root, teacher, fraction, seed}, frontend, model, train}; no inputs. With
  data.exclude_overlap on, data also holds {exclude_overlap: true, tasks} and the tasks'
  fingerprints (the teacher set then depends on them); off, neither, so keys stay as they were.
- embed: {data: {root, teacher, fraction, seed, wild, tasks}, seed, frontend, model};
  inputs {teacher}. It embeds the teacher's captions and clips, the wild audio and the
  class prompts of every task.
- curate: {strategy, sigma (du, ads), task and sigma_ds (ds, ads), top_k, chunk}; inputs
  {embed}. DU is task-independent; DS and ADS are planned once per task.
- student: {data (as embed), frontend, model, train}; train = the merged student TrainConfig
  with the row's beta, replay, soft_target and the seed; inputs {teacher, embed, improvement}
  and for ADS also {replay} (its task's DS set; DU and DS replay the teacher's own set).
- eval: {data: {root, teacher, tasks}, frontend, model}; inputs {model}. The MS-CLAP
  baseline has no inputs and a `msclap_checkpoint` path instead. Optional `folds` and
  `exclude_folds` ({task: [fold, ...]}) evaluate only those folds / skip them; absent unless
  set, so other evals keep their keys.
Each is a typed config (clapsweep.recipe.stage_config), built here and stored as to_dict().
Every config also carries `runtime` ({cache_dir, threads}; the runner adds the stage's
key), which is left out of the key, like the config fields marked volatile in their schema
(knobs that change speed but not results: `clapsweep.config.volatile_fields`). Data enter
keys by content: each stage's `data.fingerprint` holds the fingerprint of every dataset it
reads, and a checkpoint file (model.audio_checkpoint, msclap_checkpoint) by its sha256 in
`checkpoints`, not by its path.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clapsweep.config import (
    RETRIEVAL_SPLITS,
    TEACHER_SPLITS,
    FrontendConfig,
    ModelConfig,
    TrainConfig,
    merged_splits,
)
from clapsweep.data.custom import custom_task_fingerprint
from clapsweep.data.fingerprint import fingerprints
from clapsweep.errors import ConfigError
from clapsweep.recipe import strategies
from clapsweep.recipe.search_spec import validation_folds
from clapsweep.recipe.spec import (
    STAGE_KINDS,
    THRESHOLDS,
    RowSpec,
    SweepSpec,
    row_sigma,
)
from clapsweep.recipe.stage_config import (
    CurateConfig,
    CustomTask,
    EmbedConfig,
    EvalConfig,
    Runtime,
    StageConfig,
    StageData,
    StudentConfig,
    TeacherConfig,
)
from clapsweep.sweep.plan import Plan, PlannedStage, stage_key


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def file_sha256(path: str, where: str) -> str:
    """A checkpoint file's content hash (read once per process while it is unchanged)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"{where}: {path} not found; give the path of the checkpoint file "
            "(docs/weights.md says where to get it)"
        )
    st = os.stat(p)
    return _sha256(str(p.resolve()), st.st_size, st.st_mtime_ns)


# ----------------------------------------------------------------------------- building


class _Builder:
    def __init__(self, sweep: str) -> None:
        self.plan = Plan(sweep=sweep, stages={})

    def add(self, config: StageConfig, inputs: dict[str, str], user: dict) -> str:
        """Plan a stage (or find the identical one already planned); returns its name."""
        kind = config.kind
        assert kind in STAGE_KINDS
        key = stage_key(kind, config.to_key(), inputs)
        name = f"{kind}-{key}"
        stage = self.plan.stages.get(name)
        if stage is None:
            layer = 1 + max((self.plan.stages[n].layer for n in inputs.values()), default=-1)
            stage = PlannedStage(kind, key, config.to_dict(), dict(inputs), layer=layer)
            self.plan.stages[name] = stage
        self.use(name, user)
        return name

    def use(self, name: str, user: dict) -> None:
        users = self.plan.stages[name].users
        if user not in users:
            users.append(dict(user))


def data_fingerprints(spec: SweepSpec) -> dict[str, str]:
    """The content fingerprint of every dataset the sweep reads."""
    d = spec.data
    builtin = [t for t in d.tasks if t not in d.custom_tasks]
    prints = fingerprints(d.root, [*d.teacher, d.wild, *builtin])
    for name in d.tasks:
        if name in d.custom_tasks:
            prints[name] = custom_task_fingerprint(name, d.custom_tasks[name].csv)
    return prints


def custom_tasks(spec: SweepSpec, tasks: list[str]) -> dict[str, dict[str, Any]]:
    """The definitions ({csv, prompt}) of the custom ones among `tasks`, for stage configs
    (empty for built-in tasks only, so their configs and keys stay as they were)."""
    custom = spec.data.custom_tasks
    return {t: {"csv": custom[t].csv, "prompt": custom[t].prompt} for t in tasks if t in custom}


def _with_custom(data: StageData, spec: SweepSpec, tasks: list[str]) -> StageData:
    custom = {n: CustomTask(**c) for n, c in custom_tasks(spec, tasks).items()}
    return dataclasses.replace(data, custom_tasks=custom) if custom else data


def build_plan(spec: SweepSpec, prints: dict[str, str] | None = None, split: str = "test") -> Plan:
    """Expand the grid into stages; identical stages (same key) appear once. `prints` are
    the datasets' fingerprints (computed here when not given). A searching sweep's evals
    leave its validation folds out; with split "validation" they evaluate only those (a
    search trial's, clapsweep.recipe.search)."""
    b = _Builder(spec.name)
    prints = prints if prints is not None else data_fingerprints(spec)
    evals = functools.partial(_eval_config, spec, prints=prints, split=split)
    runtime = Runtime(
        # Beside the stages: sweeps sharing a project store share its decoded audio too.
        cache_dir=f"{spec.store or spec.workdir}/cache" if spec.data.cache else None,
        threads=spec.runtime.threads,
    )
    tasks = list(spec.data.tasks)
    teachers = list(spec.data.teacher)
    checkpoints = {}
    if spec.model.audio_checkpoint:
        checkpoints["audio"] = file_sha256(spec.model.audio_checkpoint, "model.audio_checkpoint")
    splits = {
        "splits": merged_splits(spec.data.splits, TEACHER_SPLITS),
        "retrieval_splits": merged_splits(spec.data.retrieval_splits, RETRIEVAL_SPLITS),
    }
    for seed in spec.grid.seed:
        for fraction in spec.grid.teacher_fraction:
            trial = {"seed": seed, "fraction": fraction}
            data = StageData(
                root=spec.data.root,
                teacher=teachers,
                fraction=fraction,
                seed=seed,
                splits=splits["splits"],
                fingerprint={n: prints[n] for n in teachers},
            )
            if spec.data.exclude_overlap:
                data = dataclasses.replace(data, **_overlap_data(tasks, teachers, prints))
                data = _with_custom(data, spec, tasks)
            teacher_cfg = TeacherConfig(
                data=data,
                frontend=spec.frontend,
                model=spec.model,
                train=dataclasses.replace(spec.train, seed=seed),
                checkpoints=checkpoints,
                runtime=runtime,
            )
            user = {"row": "teacher", **trial, "tasks": tasks}
            teacher = b.add(teacher_cfg, {}, user)
            b.add(evals(tasks, runtime), {"model": teacher}, user)
            read = [*teachers, spec.data.wild, *tasks]
            embed_data = dataclasses.replace(
                data,
                wild=spec.data.wild,
                tasks=tasks,
                fingerprint={n: prints[n] for n in read},
            )
            embed_cfg = EmbedConfig(
                data=_with_custom(embed_data, spec, tasks),
                seed=seed,
                frontend=spec.frontend,
                model=spec.model,
                runtime=runtime,
            )
            embed = b.add(embed_cfg, {"teacher": teacher}, user)
            for row in spec.grid.rows:
                if row.fractions is not None and fraction not in row.fractions:
                    continue
                per_task = strategies.get(row.strategy).per_task
                mine = [t for t in tasks if row.tasks is None or t in row.tasks]
                groups = [[t] for t in mine] if per_task else [mine]
                for group in groups:
                    user = {"row": row.name, **trial, "tasks": group}
                    user["swept"] = _swept(spec, row, group)
                    b.use(teacher, user)
                    b.use(embed, user)
                    _plan_row(b, spec, row, group, teacher, embed, embed_cfg, user, runtime, evals)
    if spec.msclap_checkpoint:
        cfg = dataclasses.replace(
            evals(tasks, runtime),
            msclap_checkpoint=spec.msclap_checkpoint,
            checkpoints={"msclap": file_sha256(spec.msclap_checkpoint, "msclap_checkpoint")},
            # MS-CLAP 2022 is CNN14 + BERT-base with the paper's front-end.
            frontend=FrontendConfig(),
            model=ModelConfig(audio="cnn14", text="bert-base-uncased", dim=1024),
        )
        user = {"row": "msclap", "seed": None, "fraction": None, "tasks": tasks}
        b.add(cfg, {}, user)
    return b.plan


def _plan_row(
    b: _Builder,
    spec: SweepSpec,
    row: RowSpec,
    tasks: list[str],
    teacher: str,
    embed: str,
    embed_cfg: EmbedConfig,
    user: dict,
    runtime: Runtime,
    evals: Callable[[list[str], Runtime], EvalConfig],
) -> None:
    """Curation(s), the student and its evaluation for one row trial: the row's strategy
    and the ones upstream of it (ADS reads DS), each one curate stage."""
    top: dict[str, Any] = {"top_k": spec.curate.top_k, "chunk": spec.curate.chunk}
    # The leakage guard keeps the audio of every custom task of the sweep out of the set.
    guarded = custom_tasks(spec, list(spec.data.tasks))
    if guarded:
        top["custom_tasks"] = {n: CustomTask(csv=c["csv"]) for n, c in guarded.items()}
    task = tasks[0] if len(tasks) == 1 else ""
    curated: dict[str, str] = {}  # strategy name -> its curate stage
    for strategy in strategies.chain(strategies.get(row.strategy)):
        own = strategies.curate_config(strategy, task, lambda n: row_sigma(row, n, task))
        cfg = CurateConfig(**own, **top, runtime=runtime)
        curated[strategy.name] = b.add(cfg, {"embed": embed}, user)
    improvement = curated[row.strategy]
    replay_of = strategies.get(row.strategy).replays
    replay = curated[replay_of] if replay_of else None
    train = dataclasses.asdict(spec.student_train())
    for name in ("beta", "replay", "soft_target"):
        if getattr(row, name) is not None:
            train[name] = getattr(row, name)
    train |= row.train or {}  # as the row gives them (an int stays an int: keys hash JSON)
    train["seed"] = user["seed"]
    student_cfg = StudentConfig(
        data=embed_cfg.data,
        frontend=spec.frontend,
        model=spec.model,
        train=TrainConfig(**train),
        runtime=runtime,
    )
    inputs = {"teacher": teacher, "embed": embed, "improvement": improvement}
    if replay is not None:
        inputs["replay"] = replay
    student = b.add(student_cfg, inputs, user)
    b.add(evals(tasks, runtime), {"model": student}, user)


def _swept(spec: SweepSpec, row: RowSpec, tasks: list[str]) -> dict[str, Any]:
    """What a row trial sets, for trackers to show and compare (opaque to the engine): its
    strategy, its thresholds (a per-task one for its task), beta and replay."""
    student = spec.student_train()
    values: dict[str, Any] = {"strategy": row.strategy}
    for name in THRESHOLDS:
        value = getattr(row, name)
        if isinstance(value, dict):
            value = value.get(tasks[0]) if len(tasks) == 1 else None
        if value is not None:
            values[name] = value
    for name in ("beta", "replay"):
        value = getattr(row, name)
        values[name] = value if value is not None else getattr(student, name)
    if row.soft_target is not None:
        values["soft_target"] = row.soft_target
    return values | (row.train or {})


def _overlap_data(tasks: list[str], teachers: list[str], prints: dict) -> dict:
    """What a teacher's data adds with exclude_overlap on: the tasks whose sources it avoids,
    and their fingerprints (a changed task changes which teacher clips are dropped)."""
    return {
        "exclude_overlap": True,
        "tasks": list(tasks),
        "fingerprint": {n: prints[n] for n in [*teachers, *tasks]},
    }


def _eval_config(
    spec: SweepSpec,
    tasks: list[str],
    runtime: Runtime,
    prints: dict,
    folds: dict[str, list] | None = None,
    exclude_folds: dict[str, list] | None = None,
    split: str = "test",
) -> EvalConfig:
    """An eval of `tasks`; `folds` / `exclude_folds` ({task: [fold, ...]}) evaluate only
    those folds of a task / skip them (fold names as strings, as the records have them).
    A searching sweep's validation folds are left out (split "test") or are all that is
    evaluated (split "validation", without retrieval: a search compares zero-shot only)."""
    validation = validation_folds(spec)
    if validation and split == "validation":
        folds = {t: validation[t] for t in tasks}
    elif validation:
        exclude_folds = {t: validation[t] for t in tasks}
    teachers = [] if split == "validation" else list(spec.data.teacher)
    # The teacher datasets give the held-out captions for retrieval metrics.
    data = StageData(
        root=spec.data.root,
        teacher=teachers,
        tasks=list(tasks),
        retrieval_splits=merged_splits(spec.data.retrieval_splits, RETRIEVAL_SPLITS),
        fingerprint={n: prints[n] for n in [*teachers, *tasks]},
    )
    cfg = EvalConfig(
        data=_with_custom(data, spec, tasks),
        frontend=spec.frontend,
        model=spec.model,
        runtime=runtime,
    )
    if folds is not None:  # else absent: the keys of every other eval stay as they were
        cfg.folds = _fold_names(folds)
    if exclude_folds is not None:
        cfg.exclude_folds = _fold_names(exclude_folds)
    return cfg


def _fold_names(folds: dict[str, list]) -> dict[str, list[str]]:
    return {task: [str(f) for f in names] for task, names in folds.items()}


# ----------------------------------------------------------------------------- schedule


def student_schedule(spec: SweepSpec, plan: Plan) -> dict[str, Any]:
    """What the students will train on, from the manifests: teacher pairs per dataset, and
    each student's planned optimizer steps (None when they depend on an Improvement-Set's
    size, which curation decides: `student.epoch: improvement`)."""
    from clapsweep.data.datasets import subset_size
    from clapsweep.pipeline import pair_counts  # reads the manifests (audio headers)
    from clapsweep.train import planned_steps

    data = StageData(
        root=spec.data.root,
        teacher=list(spec.data.teacher),
        splits=merged_splits(spec.data.splits, TEACHER_SPLITS),
    )
    if spec.data.exclude_overlap:
        data = dataclasses.replace(data, exclude_overlap=True, tasks=list(spec.data.tasks))
        data = _with_custom(data, spec, list(spec.data.tasks))
    counts = pair_counts(data)
    total = sum(counts.values())
    students = []
    for stage in plan.stages.values():
        if stage.kind != "student":
            continue
        cfg = TrainConfig(**stage.config["train"])
        fraction = stage.config["data"]["fraction"]
        n_teacher = subset_size(total, fraction)
        by_teacher = cfg.steps_per_epoch or cfg.epoch == "teacher"
        steps = planned_steps(cfg, 2, n_teacher) if by_teacher else None
        for user in stage.users:
            students.append({**user, "name": stage.name, "steps": steps})
    return {"teacher_pairs": counts, "students": students}
