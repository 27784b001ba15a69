"""Sweep spec: one strict YAML file describing a grid of teachers and student rows.

`load_spec(path)` reads and validates the file. Every mistake (unknown key, wrong type, value
out of range, unknown strategy, task, dataset or backend, a row missing the threshold its
strategy needs) raises a ConfigError whose message starts with the file name and names the
key path and what was expected, before anything runs.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from clapsweep.config import (
    RETRIEVAL_SPLITS,
    TEACHER_SPLITS,
    DataSources,
    FrontendConfig,
    ModelConfig,
    TrainConfig,
    bounded,
    from_dict,
    load_yaml,
)
from clapsweep.errors import ConfigError
from clapsweep.recipe import strategies, tables
from clapsweep.recipe.axes import apply_overrides, expand_rows
from clapsweep.recipe.search_spec import SearchSpec, check_search
from clapsweep.recipe.stages import STAGE_KINDS

TEACHER_DATASETS = ("fsd50k", "clotho", "audiocaps", "macs")
TASK_DATASETS = ("esc50", "us8k", "tut17")
BUILTIN_DATASETS = (*TEACHER_DATASETS, "audioset", *TASK_DATASETS)


@dataclass
class CustomTaskSpec:
    """A zero-shot task of your own (clapsweep.data.custom): a CSV `path,label[,fold]`."""

    csv: str  # made absolute by load_spec (relative to the sweep file's working directory)
    prompt: str | None = None  # a template with {label}; None: "this is a sound of <label>"


_NAME = re.compile(r"[a-z0-9_-]+")


@dataclass
class DataSpec(DataSources):
    """A sweep's data: the sources (root required; teacher fractions are grid's), with
    custom tasks. The default teacher order is the sweeps' own (a hand job's differs, and
    changing either would change the pairs' order, hence the numbers)."""

    root: str = field(default=dataclasses.MISSING)  # no default: a sweep names its data
    teacher: list[Literal["fsd50k", "clotho", "audiocaps", "macs"]] = field(
        default_factory=lambda: ["clotho", "audiocaps", "fsd50k", "macs"]
    )
    # Built-in tasks (TASK_DATASETS) and names of custom_tasks.
    tasks: list[str] = field(default_factory=lambda: ["esc50", "us8k", "tut17"])
    custom_tasks: dict[str, CustomTaskSpec] = field(default_factory=dict)


@dataclass
class CurateSpec:
    top_k: int | None = None  # keep at most this many pairs (None: all above the threshold)
    chunk: int = bounded(8192, 1, None, volatile=True)  # rows per matrix-product chunk


@dataclass
class RuntimeSpec:
    """How stages run, never what they compute: left out of stage keys."""

    # Intra-op threads of every stage, in the driver and in workers alike: CPU reductions
    # depend on the thread count, so a fixed number keeps a stage's bytes the same on any
    # backend and beside any other stage.
    threads: int = bounded(1, 1, 256)


@dataclass
class RowSpec:
    """One student row of a table. Unset beta/replay/soft_target come from `student`."""

    name: str
    strategy: str  # a name in clapsweep.recipe.strategies
    sigma: Any = None  # a number; for a per-task strategy a number or {task: number}
    sigma_ds: Any = None
    beta: float | None = None
    replay: float | None = None
    soft_target: Literal["paper", "normalized", "softmax"] | None = None
    # Teacher fractions this row runs at (default: all of grid.teacher_fraction). Table 3
    # has only DU+SL and ADS+SL at 10 %, so the other rows need not run there.
    fractions: list[float] | None = None
    # Student train keys for this row only (lr, epochs, ...), over `student` and `train`.
    train: dict[str, Any] | None = None
    # Tasks this row runs for (default: all of data.tasks); a searched row's best values
    # are re-run for the task they were chosen on only.
    tasks: list[str] | None = None


@dataclass
class GridSpec:
    rows: list[RowSpec]
    seed: list[int] = field(default_factory=lambda: [0])
    teacher_fraction: list[float] = field(default_factory=lambda: [1.0])


@dataclass
class ResourceSpec:
    cpu: float = bounded(1.0, 0.0, None)
    gpu: float = bounded(0.0, 0.0, None)


@dataclass
class BackendSpec:
    kind: Literal["local", "ray", "slurm"] = "local"
    workers: int = bounded(0, 0, 64)  # local: worker processes (0: stages run in the driver)
    address: str | None = None  # ray: an existing cluster; None starts a local one
    max_concurrent: int = bounded(0, 0, None)  # ray: 0 means no limit
    resources: dict[str, ResourceSpec] = field(default_factory=dict)  # per stage kind
    profile: str | None = None  # slurm: a profile name (slurm/profiles/NAME.yaml) or a path
    slurm: dict[str, Any] = field(default_factory=dict)  # slurm: profile keys overridden


@dataclass
class WandbSpec:
    enabled: bool = True
    project: str = "clapsweep"
    mode: Literal["offline", "online", "disabled"] = "offline"
    entity: str | None = None


@dataclass
class TrackingSpec:
    wandb: WandbSpec = field(default_factory=WandbSpec)


@dataclass
class SweepSpec:
    name: str
    data: DataSpec
    grid: GridSpec
    tables: list[int] = field(default_factory=list)
    workdir: str | None = None  # made absolute by load_spec; default runs/<name>
    # A project store shared by sweeps (their stages and logs); None keeps them in workdir.
    store: str | None = None
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    student: dict[str, Any] = field(default_factory=dict)  # TrainConfig keys over `train`
    curate: CurateSpec = field(default_factory=CurateSpec)
    backend: BackendSpec = field(default_factory=BackendSpec)
    tracking: TrackingSpec = field(default_factory=TrackingSpec)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
    msclap_checkpoint: str | None = None  # evaluated zero-shot as an eval-only stage
    search: SearchSpec | None = None  # choose a row's values on validation folds first

    def student_train(self) -> TrainConfig:
        """The students' TrainConfig: `student` merged over `train` (validated at load)."""
        return from_dict(TrainConfig, {**dataclasses.asdict(self.train), **self.student})


# ----------------------------------------------------------------------------- loading


def load_spec(path: str | Path, overrides: list[str] | None = None) -> SweepSpec:
    """Read and validate a sweep file, with command-line `overrides` (PATH=VALUE, see
    clapsweep.recipe.axes) applied first; every error message starts with the file name."""
    try:
        spec = parse_spec(apply_overrides(load_yaml(path), overrides or []))
        spec.overrides = list(overrides or [])
        return spec
    except ConfigError as e:
        message = str(e)
        prefix = f"{Path(path)}: "
        raise ConfigError(message if message.startswith(prefix) else prefix + message) from None


def parse_spec(data: dict, cwd: str | Path | None = None) -> SweepSpec:
    """Validate plain data into a SweepSpec; relative paths are taken from `cwd`. Rows with
    list-valued fields are expanded first (clapsweep.recipe.axes)."""
    grid = data.get("grid")
    if isinstance(grid, dict) and "rows" in grid:
        data = {**data, "grid": {**grid, "rows": expand_rows(grid["rows"])}}
    spec = from_dict(SweepSpec, data)
    base = Path(cwd) if cwd is not None else Path.cwd()
    _check_top(spec)
    _check_data(spec.data)
    merged = {**(data.get("train") or {}), **spec.student}
    from_dict(TrainConfig, merged, "student")
    if spec.curate.top_k is not None and spec.curate.top_k < 1:
        raise ConfigError(
            f"curate.top_k: expected null or an integer >= 1, got {spec.curate.top_k}"
        )
    _check_grid(spec.grid, spec.data.tasks)
    if spec.search is not None:
        check_search(spec)
    for i, row in enumerate(spec.grid.rows):
        if row.train is not None:  # the row's student train keys, checked like `student`
            from_dict(TrainConfig, {**merged, **row.train}, f"grid.rows[{i}].train")
    for kind in spec.backend.resources:
        if kind not in STAGE_KINDS:
            raise ConfigError(
                f"backend.resources.{kind}: unknown stage kind; expected one of: "
                + ", ".join(STAGE_KINDS)
            )
    _check_slurm(spec.backend, base)
    spec.workdir = _absolute(spec.workdir or f"runs/{spec.name}", base)
    if spec.store is not None:
        spec.store = _absolute(spec.store, base)
    spec.data.root = _absolute(spec.data.root, base)
    for task in spec.data.custom_tasks.values():
        task.csv = _absolute(task.csv, base)
    if spec.msclap_checkpoint is not None:
        spec.msclap_checkpoint = _absolute(spec.msclap_checkpoint, base)
    if spec.model.audio_checkpoint is not None:
        spec.model.audio_checkpoint = _absolute(spec.model.audio_checkpoint, base)
    return spec


def _check_slurm(backend: BackendSpec, base: Path) -> None:
    """A profile given as a path becomes absolute; with kind slurm the profile and the
    overrides are validated now, before anything runs."""
    if backend.profile and ("/" in backend.profile or backend.profile.endswith(".yaml")):
        backend.profile = _absolute(backend.profile, base)
    if backend.kind == "slurm":
        from clapsweep.sweep.slurm_profile import load_profile

        load_profile(backend.profile, backend.slurm)


def row_sigma(row: RowSpec, field_name: str, task: str) -> float:
    """The row's threshold `field_name` (sigma or sigma_ds) for one task."""
    value = getattr(row, field_name)
    return float(value[task]) if isinstance(value, dict) else float(value)


def _absolute(path: str, base: Path) -> str:
    p = Path(os.path.expanduser(path))
    return os.path.normpath(p if p.is_absolute() else base / p)


def _check_top(spec: SweepSpec) -> None:
    if not _NAME.fullmatch(spec.name):
        raise ConfigError(f"name: expected letters a-z, digits, '_' or '-', got {spec.name!r}")
    for i, t in enumerate(spec.tables):
        if t not in tables.TABLES:
            known = ", ".join(str(n) for n in tables.numbers())
            raise ConfigError(f"tables[{i}]: expected one of {known} (a registered table), got {t}")


def _check_data(data: DataSpec) -> None:
    for name, task in data.custom_tasks.items():
        where = f"data.custom_tasks.{name}"
        if name in BUILTIN_DATASETS:
            raise ConfigError(
                f"{where}: {name!r} is a built-in dataset; give your task another name"
            )
        if not _NAME.fullmatch(name):
            raise ConfigError(f"{where}: expected letters a-z, digits, '_' or '-' in the name")
        if not task.csv:
            raise ConfigError(f"{where}.csv: expected the path of a CSV path,label[,fold]")
        if task.prompt is not None and "{label}" not in task.prompt:
            raise ConfigError(
                f"{where}.prompt: expected a template with {{label}}, got {task.prompt!r}"
            )
    choices = ", ".join(repr(t) for t in TASK_DATASETS)
    for i, name in enumerate(data.tasks):
        if name not in TASK_DATASETS and name not in data.custom_tasks:
            raise ConfigError(
                f"data.tasks[{i}]: expected one of {choices} or a name in data.custom_tasks, "
                f"got {type(name).__name__} {name!r}"
            )
    for where, names in (("data.teacher", data.teacher), ("data.tasks", data.tasks)):
        if not names:
            raise ConfigError(f"{where}: expected at least one dataset")
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: a dataset is listed twice: {names}")
    for where, splits in (
        ("data.splits", data.splits),
        ("data.retrieval_splits", data.retrieval_splits),
    ):
        for name, values in splits.items():
            if name not in TEACHER_DATASETS:
                raise ConfigError(
                    f"{where}.{name}: not a teacher dataset; expected one of: "
                    + ", ".join(TEACHER_DATASETS)
                )
            if not values and where == "data.splits":
                raise ConfigError(f"{where}.{name}: expected at least one split")
    for name in data.teacher:
        train = set(data.splits.get(name, TEACHER_SPLITS.get(name, [])))
        held = set(data.retrieval_splits.get(name, RETRIEVAL_SPLITS.get(name, [])))
        if train & held:
            raise ConfigError(
                f"data.splits.{name}: {sorted(train & held)[0]} is also a retrieval split; a "
                "split that trains the teacher cannot measure retrieval"
            )


def _check_grid(grid: GridSpec, tasks: list[str]) -> None:
    for where, values in (
        ("grid.seed", grid.seed),
        ("grid.teacher_fraction", grid.teacher_fraction),
    ):
        if not values:
            raise ConfigError(f"{where}: expected at least one value")
        if len(set(values)) != len(values):
            raise ConfigError(f"{where}: a value is listed twice: {values}")
    for i, s in enumerate(grid.seed):
        if s < 0:
            raise ConfigError(f"grid.seed[{i}]: expected an integer >= 0, got {s}")
    for i, f in enumerate(grid.teacher_fraction):
        if not 0.0 < f <= 1.0:
            raise ConfigError(f"grid.teacher_fraction[{i}]: expected a value in (0, 1], got {f}")
    if not grid.rows:
        raise ConfigError("grid.rows: expected at least one student row")
    seen: set[str] = set()
    for i, row in enumerate(grid.rows):
        where = f"grid.rows[{i}]"
        if not row.name:
            raise ConfigError(f"{where}.name: expected a non-empty row name")
        if row.name in seen:
            raise ConfigError(f"{where}.name: row name {row.name!r} is used twice")
        if row.name in ("teacher", "msclap"):
            raise ConfigError(f"{where}.name: {row.name!r} is reserved for the baselines")
        seen.add(row.name)
        _check_row(row, where, tasks)
        for j, task in enumerate(row.tasks or []):
            if task not in tasks:
                raise ConfigError(
                    f"{where}.tasks[{j}]: unknown task {task!r}; expected one of data.tasks: "
                    + ", ".join(tasks)
                )
        for j, f in enumerate(row.fractions or []):
            if f not in grid.teacher_fraction:
                raise ConfigError(
                    f"{where}.fractions[{j}]: {f} is not in grid.teacher_fraction "
                    f"{grid.teacher_fraction}"
                )


THRESHOLDS = ("sigma", "sigma_ds")  # the row fields a strategy's thresholds come from


def _check_row(row: RowSpec, where: str, tasks: list[str]) -> None:
    if row.strategy not in strategies.STRATEGIES:
        raise ConfigError(
            f"{where}.strategy: expected one of "
            f"{', '.join(repr(n) for n in strategies.names())}, got str {row.strategy!r}"
        )
    strategy = strategies.get(row.strategy)
    needed = strategy.thresholds  # any other threshold on the row is a mistake
    for name in THRESHOLDS:
        value = getattr(row, name)
        if name not in needed:
            if value is not None:
                raise ConfigError(
                    f"{where}.{name}: not used by strategy {row.strategy!r} "
                    f"(it takes {' and '.join(needed)})"
                )
            continue
        if value is None:
            raise ConfigError(
                f"{where}.{name}: required by strategy {row.strategy!r} "
                f"(row {row.name!r}); expected a number in [0, 1]"
                + (" or a mapping task -> number" if strategy.per_task else "")
            )
        where_t = f"{where}.{name}"
        setattr(row, name, _threshold(value, where_t, tasks, row.strategy, strategy.per_task))
    for name in ("beta", "replay"):
        value = getattr(row, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}.{name}: expected a value in [0, 1], got {value}")


def _threshold(value: Any, where: str, tasks: list[str], name: str, per_task: bool) -> Any:
    """A number in [0, 1], or (for task-dependent strategies) one per task of data.tasks."""
    if isinstance(value, dict):
        if not per_task:
            raise ConfigError(
                f"{where}: {name} curation does not depend on the task; expected one number "
                "in [0, 1]"
            )
        for task in value:
            if task not in tasks:
                raise ConfigError(
                    f"{where}.{task}: unknown task; expected one of data.tasks: {', '.join(tasks)}"
                )
        missing = [t for t in tasks if t not in value]
        if missing:
            raise ConfigError(
                f"{where}: no value for task {missing[0]} (every task of data.tasks needs one)"
            )
        return {t: _unit(value[t], f"{where}.{t}") for t in tasks}
    return _unit(value, where)


def _unit(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{where}: expected a number in [0, 1], got {type(value).__name__} {value!r}"
        )
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{where}: expected a value in [0, 1], got {value}")
    return float(value)
