"""The sweep language on top of the YAML: list-valued row fields (axes) and command-line
overrides, both applied to the plain data before it is validated.

A row field given as a list is an axis: the row becomes the cartesian product of its axes,
one row per combination, named `<name> <axis>=<value> ...`. `zip: [sigma, beta]` pairs the
listed axes element by element instead (equal lengths). Student train keys go under the
row's `train:` mapping and may be axes too (`train: {lr: [1e-4, 3e-4]}`). `fractions` and
`tasks` are lists but not axes (the teacher fractions and tasks a row runs at).

Overrides are `PATH=VALUE` strings, Hydra-style: `grid.seed=[0,1,2]`, `train.lr=3e-4`,
`grid.rows[DU].sigma=[0.6,0.7]` (a row by name or index); VALUE is YAML.
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

import yaml

from clapsweep.errors import ConfigError

NOT_AXES = ("name", "strategy", "fractions", "tasks", "zip")


def expand_rows(rows: Any) -> Any:
    """The rows with every axis expanded (anything not a list of mappings is left to the
    validator, which names the mistake)."""
    if not isinstance(rows, list):
        return rows
    out = []
    for i, row in enumerate(rows):
        out.extend(_expand(row, f"grid.rows[{i}]") if isinstance(row, dict) else [row])
    return out


def _axes(row: dict) -> dict[str, list]:
    """Axis path ("sigma", "train.lr") -> its values, in the row's order."""
    axes = {k: v for k, v in row.items() if k not in NOT_AXES and isinstance(v, list)}
    train = row.get("train")
    if isinstance(train, dict):
        axes |= {f"train.{k}": v for k, v in train.items() if isinstance(v, list)}
    return axes


def _expand(row: dict, where: str) -> list[dict]:
    axes = _axes(row)
    if not axes:
        if "zip" in row:
            raise ConfigError(f"{where}.zip: the row has no list-valued field to zip")
        return [row]
    label = f"{where} ({row.get('name')})"
    for path, values in axes.items():
        if not values:
            raise ConfigError(f"{label}.{path}: an axis needs at least one value")
    groups = _groups(row.get("zip"), axes, label)
    out = []
    for combo in itertools.product(*(range(len(axes[g[0]])) for g in groups)):
        picked = {
            path: axes[path][i] for group, i in zip(groups, combo, strict=True) for path in group
        }
        out.append(_one(row, picked))
    return out


def _groups(zipped: Any, axes: dict[str, list], label: str) -> list[list[str]]:
    """The axes in groups that vary together: each zip group, then every other axis alone."""
    if zipped is None:
        zipped = []
    if isinstance(zipped, list) and zipped and all(isinstance(z, str) for z in zipped):
        zipped = [zipped]  # zip: [sigma, beta] is one group
    if not isinstance(zipped, list) or not all(isinstance(z, list) for z in zipped):
        raise ConfigError(f"{label}.zip: expected a list of axis names, e.g. [sigma, beta]")
    groups, used = [], set()
    for group in zipped:
        for path in group:
            if path not in axes:
                raise ConfigError(
                    f"{label}.zip: {path!r} is not a list-valued field of the row "
                    f"(axes: {', '.join(axes) or 'none'})"
                )
            if path in used:
                raise ConfigError(f"{label}.zip: {path!r} is in two zip groups")
        lengths = {len(axes[p]) for p in group}
        if len(lengths) > 1:
            sizes = ", ".join(f"{p} {len(axes[p])}" for p in group)
            raise ConfigError(f"{label}.zip: zipped axes need the same length ({sizes})")
        groups.append(list(group))
        used.update(group)
    return groups + [[p] for p in axes if p not in used]


def _one(row: dict, picked: dict[str, Any]) -> dict:
    out = copy.deepcopy({k: v for k, v in row.items() if k != "zip"})
    for path, value in picked.items():
        if path.startswith("train."):
            out["train"][path.removeprefix("train.")] = value
        else:
            out[path] = value
    values = " ".join(f"{p.removeprefix('train.')}={_show(v)}" for p, v in picked.items())
    out["name"] = f"{row.get('name')} {values}"
    return out


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_show(v)}" for k, v in value.items()) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)


# ----------------------------------------------------------------------------- overrides


class _Loader(yaml.SafeLoader):
    """YAML that also reads 3e-4 as a number (YAML 1.1 wants 3.0e-4), as a user types it."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)

_STEP = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[([^\]]+)\])?$")


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """`data` with each `PATH=VALUE` set; a copy. Errors name the override."""
    data = copy.deepcopy(data)
    for text in overrides:
        path, sep, raw = text.partition("=")
        if not sep or not path:
            raise ConfigError(f"override {text!r}: expected PATH=VALUE, e.g. train.lr=3e-4")
        try:
            value = yaml.load(raw, Loader=_Loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError:
            raise ConfigError(f"override {text!r}: the value is not valid YAML") from None
        _set(data, path.split("."), value, text)
    return data


def _set(node: Any, steps: list[str], value: Any, text: str) -> None:
    for n, step in enumerate(steps):
        match = _STEP.match(step)
        if match is None:
            raise ConfigError(f"override {text!r}: cannot read {step!r} (use a.b[NAME].c)")
        key, index = match.groups()
        last = n == len(steps) - 1 and index is None
        if not isinstance(node, dict):
            raise ConfigError(f"override {text!r}: {key!r} is inside a value, not a mapping")
        if last:
            node[key] = value
            return
        node = node.setdefault(key, {} if index is None else [])
        if index is not None:
            node = _item(node, index, key, text)
            if n == len(steps) - 1:
                raise ConfigError(f"override {text!r}: name a field of {key}[{index}]")


def _item(items: Any, index: str, key: str, text: str) -> dict:
    """A list's entry by position or by its `name`."""
    if not isinstance(items, list):
        raise ConfigError(f"override {text!r}: {key} is not a list")
    if index.isdigit() and int(index) < len(items):
        return items[int(index)]
    named = [r for r in items if isinstance(r, dict) and r.get("name") == index]
    if not named:
        names = ", ".join(str(r.get("name")) for r in items if isinstance(r, dict))
        raise ConfigError(f"override {text!r}: {key} has no entry {index!r} (has: {names})")
    return named[0]
