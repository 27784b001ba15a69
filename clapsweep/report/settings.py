"""Row settings and sweep axes for `clapsweep report --by`: what a row or a planned trial sets.

A row field (BY_FIELDS) is read from the spec's row, else `student` over `train`, as Tables
1-3 have always labelled their rows; any other axis (the teacher fraction, `strategy`, a
student train key such as `lr`) from the trials' swept values in plan.json
(clapsweep.recipe.plan records them per stage user).
"""

from __future__ import annotations

from typing import Any

from clapsweep.errors import UserError
from clapsweep.recipe import tables
from clapsweep.report.load import Sweep

BY_FIELDS = ("sigma", "sigma_ds", "beta", "replay", "soft_target")


def check_axis(sweep: Sweep, by: str | None) -> str | None:
    """--by AXIS: a row setting (BY_FIELDS), the teacher fraction or any key of the trials'
    swept values in plan.json (strategy, a student train key such as lr, ...); `train.lr`
    names `lr`. Returns the name; a UserError when no trial of the sweep sets it."""
    if by is None:
        return None
    by = by.removeprefix("train.")
    known = sweep_axes(sweep)
    if by not in BY_FIELDS and by not in known:
        raise UserError(
            f"--by {by}: no trial of sweep {sweep.name} sets {by}; its trials set "
            f"{', '.join(known)}"
        )
    return by


def sweep_axes(sweep: Sweep) -> list[str]:
    """What --by can name for this sweep: "fraction" and the keys of the trials' swept values."""
    keys = {"fraction"}
    for stage in sweep.stages.values():
        for user in stage["users"]:
            swept = user.get("swept")
            if isinstance(swept, dict):
                keys.update(k for k in swept if isinstance(k, str))
            elif user["row"] not in tables.BASELINES:  # a plan from before `swept`
                keys.update(BY_FIELDS)
    return sorted(keys)


def trial_value(sweep: Sweep, user: dict[str, Any], name: str) -> Any:
    """One planned trial's (a stage user's) value of `name`: its teacher fraction, else its
    swept value (plan.json), else, for a plan from before `swept`, its row's setting."""
    if name == "fraction":
        return user.get("fraction")
    swept = user.get("swept")
    if isinstance(swept, dict):
        return swept.get(name)
    return row_setting(sweep, user["row"], name) if name in BY_FIELDS else None


def row_setting(sweep: Sweep, row: str, name: str, fraction: float | None = None) -> Any:
    """The effective value of a row field: the row's own, else `student` over `train`; for
    any other axis (--by lr, fraction) the value its trials (at `fraction`) have."""
    if row in tables.BASELINES:
        return None
    if name not in BY_FIELDS:  # the fraction, a student train key: the trials' values
        return _trials_setting(sweep, row, name, fraction)
    spec_rows = {r["name"]: r for r in (sweep.spec.get("grid") or {}).get("rows", [])}
    value = (spec_rows.get(row) or {}).get(name)
    if value is None and name in ("beta", "replay", "soft_target"):
        merged = {**(sweep.spec.get("train") or {}), **(sweep.spec.get("student") or {})}
        value = merged.get(name)
    if isinstance(value, dict) and len(set(value.values())) == 1:
        value = next(iter(value.values()))
    return value


def _trials_setting(sweep: Sweep, row: str, name: str, fraction: float | None) -> Any:
    values: list[Any] = []
    for stage in sweep.stages.values():
        for user in stage["users"]:
            if user["row"] != row or (fraction is not None and user.get("fraction") != fraction):
                continue
            value = trial_value(sweep, user, name)
            if value is not None and value not in values:
                values.append(value)
    return values[0] if len(values) == 1 else (values or None)


def _setting_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ",".join(
            f"{k}:{v:g}" if isinstance(v, int | float) else f"{k}:{_setting_text(v)}"
            for k, v in value.items()
        )
    if isinstance(value, list):
        return "|".join(_setting_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
