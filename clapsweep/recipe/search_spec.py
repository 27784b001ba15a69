"""The `search:` section of a sweep (clapsweep.recipe.search runs it) and its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from clapsweep.config import bounded
from clapsweep.errors import ConfigError
from clapsweep.recipe import strategies

# Validation folds per task when a sweep searches (clapsweep.recipe.search): the search
# sees only these, the reported numbers exclude them. TUT17's adapter knows its two parts as
# folds; the development part is DCASE's own model-selection set.
VALIDATION_FOLDS = {"esc50": ["1"], "us8k": ["1"], "tut17": ["development"]}
SEARCH_AXES = ("sigma", "sigma_ds", "beta", "replay", "lr", "epochs")
DISTRIBUTIONS = ("uniform", "loguniform", "choice", "grid")


@dataclass
class SearchSpec:
    """A search over one row's values, trial by trial on the validation folds; the best
    values per task are then re-run with every seed and evaluated on the other folds."""

    row: str  # the grid row whose values are searched (its other values stay)
    space: dict[str, dict[str, list[Any]]]  # axis -> {uniform|loguniform|choice|grid: [...]}
    tasks: list[str] | None = None  # one search per task (default: data.tasks)
    validation: dict[str, list[str]] = field(default_factory=dict)  # over VALIDATION_FOLDS
    # Trials per task: samples of the space (default 8), or with searcher grid how often the
    # whole grid runs (default 1).
    num_samples: int | None = bounded(None, 1, None)
    max_concurrent: int = bounded(2, 1, None)
    searcher: Literal["random", "grid", "optuna"] = "random"
    scheduler: Literal["asha", "none"] = "asha"  # ASHA over student epochs
    grace_epochs: int = bounded(1, 1, None)  # ASHA: epochs before a trial may be stopped
    reduction_factor: int = bounded(2, 2, None)
    seed: int = bounded(0, 0, None)  # the searcher's; trials train at grid.seed[0]


def validation_folds(spec: Any) -> dict[str, list[str]]:
    """The validation folds per task of a searching sweep ({} without a search)."""
    if spec.search is None:
        return {}
    folds = {**VALIDATION_FOLDS, **spec.search.validation}
    return {t: [str(f) for f in folds[t]] for t in spec.data.tasks}


def check_search(spec: Any) -> None:
    search = spec.search
    rows = {r.name: r for r in spec.grid.rows}
    if search.row not in rows:
        raise ConfigError(
            f"search.row: no grid row named {search.row!r}; expected one of: " + ", ".join(rows)
        )
    row = rows[search.row]
    needed = strategies.get(row.strategy).thresholds
    if not search.space:
        raise ConfigError(
            "search.space: expected at least one axis, e.g. sigma: {uniform: [0.5, 0.8]}"
        )
    for axis, dist in search.space.items():
        where = f"search.space.{axis}"
        if axis not in SEARCH_AXES:
            raise ConfigError(
                f"{where}: not a searchable axis; expected one of: " + ", ".join(SEARCH_AXES)
            )
        if axis in ("sigma", "sigma_ds") and axis not in needed:
            raise ConfigError(
                f"{where}: strategy {row.strategy!r} of row {row.name!r} takes no {axis}"
            )
        _check_distribution(dist, where, axis)
    if search.searcher == "grid" and any("grid" not in d for d in search.space.values()):
        raise ConfigError("search.searcher: grid needs every axis as {grid: [values]}")
    if search.searcher != "grid" and any("grid" in d for d in search.space.values()):
        raise ConfigError(
            f"search.searcher: {search.searcher} samples; {{grid: [...]}} axes need searcher: grid "
            "(or write {choice: [...]})"
        )
    for i, task in enumerate(search.tasks or []):
        if task not in spec.data.tasks:
            raise ConfigError(f"search.tasks[{i}]: {task!r} is not in data.tasks")
    for task in spec.data.tasks:
        if task not in search.validation and task not in VALIDATION_FOLDS:
            raise ConfigError(
                f"search.validation.{task}: custom task needs its validation folds, e.g. "
                f"{task}: ['1']"
            )
    for task, folds in search.validation.items():
        if task not in spec.data.tasks:
            raise ConfigError(f"search.validation.{task}: not in data.tasks")
        if not folds:
            raise ConfigError(f"search.validation.{task}: expected at least one fold")


def _check_distribution(dist: dict, where: str, axis: str) -> None:
    if len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise ConfigError(
            f"{where}: expected one of {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}, "
            f"{{choice: [values]}}, {{grid: [values]}}; got {dist!r}"
        )
    ((name, values),) = dist.items()
    integer = axis == "epochs"
    for i, v in enumerate(values):
        ok = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok:
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{where}.{name}[{i}]: expected {kind}, got {v!r}")
    if name in ("uniform", "loguniform"):
        if integer:
            raise ConfigError(
                f"{where}: epochs are integers; use {{choice: [...]}} or {{grid: [...]}}"
            )
        if len(values) != 2 or not values[0] < values[1]:
            raise ConfigError(f"{where}.{name}: expected [lo, hi] with lo < hi, got {values}")
        if name == "loguniform" and values[0] <= 0:
            raise ConfigError(f"{where}.loguniform: expected lo > 0, got {values[0]}")
    elif not values:
        raise ConfigError(f"{where}.{name}: expected at least one value")
    if axis in ("sigma", "sigma_ds", "beta", "replay") and not all(0 <= v <= 1 for v in values):
        raise ConfigError(f"{where}.{name}: {axis} values lie in [0, 1], got {values}")
