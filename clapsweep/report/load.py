"""A sweep's stored results as `clapsweep report` reads them: spec.yaml, plan.json, the store.

Read-only, and never a traceback: a damaged spec.yaml or plan.json (not UTF-8, not YAML/JSON,
truncated, the wrong shape) is one UserError naming the file (`clapsweep run` writes both
anew); a damaged or stale stage is a state with a reason (clapsweep.sweep.state), and the
Sweep remembers it so that a note can name the file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clapsweep.errors import UserError
from clapsweep.recipe import strategies
from clapsweep.recipe.spec import load_spec
from clapsweep.store import META, Store
from clapsweep.sweep.plan import load_plan
from clapsweep.sweep.state import DONE, FAILED, StageState, stage_state


@dataclass
class Sweep:
    """A sweep's records: the resolved spec as plain data, the plan's stages, the store."""

    name: str
    workdir: Path
    spec: dict[str, Any]
    stages: dict[str, dict[str, Any]]  # plan.json's stages by name
    store: Store
    locked: bool = False
    _state: dict[str, tuple[str, Any]] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)  # stage -> Store.problem, as met
    _stages: dict[str, StageState] = field(default_factory=dict)

    def stage(self, name: str) -> StageState:
        """Where the stage stands in the store (clapsweep.sweep.state, as `status` counts)."""
        if name not in self._stages:
            self._stages[name] = stage_state(self.store, name, self.locked)
        return self._stages[name]

    def state(self, name: str) -> tuple[str, Any]:
        """("done", result) or ("missing", reason); a failed input makes its users fail."""
        if name not in self._state:
            self._state[name] = self._find_state(name)
        return self._state[name]

    def _find_state(self, name: str) -> tuple[str, Any]:
        stage = self.stage(name)
        problem = stage.problem
        if stage.state == DONE:
            result = stage.meta.get("result")
            if result is None or isinstance(result, dict):
                return "done", result or {}
            problem = f"{self.store.final(name) / META} is damaged (its result is not a mapping)"
        if stage.failure is not None:
            return "missing", f"failed: {first_line(stage.failure.get('message'), '(no message)')}"
        if problem is not None and problem != "not run":
            self.damaged[name] = problem
            return "missing", self._short(problem)
        return self._inputs_state(name)

    def _inputs_state(self, name: str) -> tuple[str, Any]:
        """A stage that has not run: failed when an input failed, else pending or not run."""
        for input_name in (self.stages.get(name, {}).get("inputs") or {}).values():
            state, reason = self.state(input_name)
            if state == "missing" and reason.startswith("failed: "):
                if " (in " not in reason:
                    reason += f" (in {input_name.split('-')[0]} stage)"
                return "missing", reason
        return "missing", "pending" if self.locked else "not run"

    def _short(self, problem: str) -> str:
        """A cell's reason: the store's, with paths relative to the work directory."""
        text = problem.replace(f"{self.workdir}/", "")
        if text.startswith("stale"):
            return text
        return "damaged: " + text.replace(" is damaged", "", 1)

    def failures(self) -> list[tuple[str, dict[str, Any]]]:
        return [(n, self.stage(n).failure) for n in self.stages if self.stage(n).state == FAILED]


# ----------------------------------------------------------------------------- loading


def load_sweep(path: str | Path) -> Sweep:
    """A sweep from its YAML file (its workdir is read) or from its work directory.

    A damaged spec.yaml or plan.json (not UTF-8, not YAML/JSON, truncated, the wrong shape)
    is a UserError naming the file; `clapsweep run` writes both anew."""
    path = Path(path)
    workdir, from_yaml = _workdir(path)
    rerun = f"clapsweep run {path if from_yaml else 'SWEEP.yaml'}"
    spec_file, plan_file = workdir / "spec.yaml", workdir / "plan.json"
    if spec_file.is_file():
        data = read_spec_record(spec_file, rerun)
    else:
        data = from_yaml or {}
    name = data.get("name") or workdir.name
    if not plan_file.is_file():
        raise UserError(
            f"sweep {name}: no results in {workdir} (no plan.json); run `{rerun}` first"
        )
    try:
        plan = load_plan(workdir)
    except UserError:
        raise UserError(damaged_message(plan_file, _json_problem(plan_file), rerun)) from None
    if plan is None:  # removed since the check above
        raise UserError(f"sweep {name}: no plan.json in {workdir}; run `{rerun}` first")
    stages = {s.name: s.to_json() for s in plan.stages.values()}
    _check_plan(plan_file, stages, rerun)
    root = data.get("store") if isinstance(data.get("store"), str) else None
    store = Store(workdir.resolve(), root)
    sweep_name = plan.sweep if isinstance(plan.sweep, str) and plan.sweep else str(name)
    return Sweep(sweep_name, workdir.resolve(), data, stages, store, store.is_locked())


def _workdir(path: Path) -> tuple[Path, dict[str, Any] | None]:
    """The work directory `path` names, and the sweep file's spec when it is one."""
    if path.is_dir():
        return path, None
    if not path.is_file():
        raise UserError(f"--sweep {path}: no such sweep file or work directory")
    try:
        spec = load_spec(path)
    except (OSError, ValueError) as e:  # not UTF-8 (UnicodeDecodeError), unreadable
        raise UserError(
            f"--sweep {path}: cannot read the sweep file ({why(e)}); pass the sweep's "
            "YAML file (UTF-8 text) or its work directory"
        ) from None
    return Path(spec.workdir), dataclasses.asdict(spec)


def read_spec_record(spec_file: Path, rerun: str = "clapsweep run SWEEP.yaml") -> dict[str, Any]:
    """spec.yaml as `clapsweep run` wrote it, as plain data; UserError when it is damaged."""
    try:
        data = yaml.safe_load(spec_file.read_text())
    except (OSError, ValueError, yaml.YAMLError) as e:  # ValueError: not UTF-8
        reason = "not valid YAML" if isinstance(e, yaml.YAMLError) else why(e)
        raise UserError(damaged_message(spec_file, reason, rerun)) from None
    if data is None:
        data = {}
    problem = _spec_problem(data)
    if problem is not None:
        raise UserError(damaged_message(spec_file, problem, rerun))
    return data


def _spec_problem(data: Any) -> str | None:
    """What is wrong with the shape of a spec record, or None."""
    if not isinstance(data, dict):
        return "not a YAML mapping"
    for key in ("grid", "data", "tracking", "train", "student"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key} is not a mapping"
    rows = (data.get("grid") or {}).get("rows")
    if rows is not None and not (
        isinstance(rows, list) and all(isinstance(r, dict) and "name" in r for r in rows)
    ):
        return "grid.rows is not a list of named rows"
    if data.get("name") is not None and not isinstance(data["name"], str):
        return "name is not a string"
    return None


def _json_problem(path: Path) -> str:
    """Why a JSON record does not load: unreadable, not UTF-8, not JSON, or its content."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as e:
        return why(e)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    try:
        json.loads(text)
    except ValueError:
        return "not JSON; truncated?" if text.strip() else "empty"
    return "unexpected content"


def _check_plan(plan_file: Path, stages: dict[str, dict[str, Any]], rerun: str) -> None:
    """The fields the report reads from every planned stage have the types it expects."""
    for stage in stages.values():
        config, users = stage.get("config"), stage.get("users")
        ok = (
            isinstance(stage.get("kind"), str)
            and isinstance(config, dict)
            and isinstance(stage.get("inputs"), dict)
            and isinstance(users, list)
            and all(_user_ok(u) for u in users)
        )
        if ok and stage["kind"] == "curate":
            ok = "strategy" in config and (_task_free(config["strategy"]) or "task" in config)
        if not ok:
            raise UserError(
                damaged_message(plan_file, f"stage {stage.get('name')} is malformed", rerun)
            )


def _task_free(strategy: Any) -> bool:
    """A registered strategy with one Improvement-Set for all tasks (its config has no task)."""
    known = strategies.STRATEGIES.get(strategy) if isinstance(strategy, str) else None
    return known is not None and not known.per_task


def _user_ok(u: Any) -> bool:
    return (
        isinstance(u, dict)
        and isinstance(u.get("row"), str)
        and isinstance(u.get("tasks", []), list)
        and _is_number(u.get("fraction"))
        and (u.get("seed") is None or isinstance(u.get("seed"), int))
    )


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def damaged_message(path: Path, reason: str, rerun: str) -> str:
    return f"{path}: damaged ({reason}); run `{rerun}` to write it anew"


def why(e: BaseException) -> str:
    if isinstance(e, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(e, OSError):
        return e.strerror or type(e).__name__
    return type(e).__name__


def first_line(text: Any, default: str = "") -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0] if lines else default


# ----------------------------------------------------------------------------- which sweep


def find_sweep(
    number: int | None, root: str | Path = "runs", warn: Callable[[str], None] | None = None
) -> Path:
    """The work directory under `root` with the newest plan.json whose spec lists the table
    (any table, or none, for `number` None: a report of any sweep, --by or --paired). Work
    directories whose spec.yaml cannot be read are passed over (told to `warn`)."""
    root = Path(root)
    found: list[tuple[float, Path]] = []
    skipped: list[str] = []
    for plan_file in root.glob("*/plan.json") if root.is_dir() else []:
        spec_file = plan_file.parent / "spec.yaml"
        if not spec_file.is_file():
            continue
        try:
            data = read_spec_record(spec_file)
            tables = data.get("tables") or []
            declared = number is None or (number in tables if isinstance(tables, list) else False)
            mtime = plan_file.stat().st_mtime
        except (UserError, OSError) as e:
            skipped.append(str(e))
            continue
        if declared:
            found.append((mtime, plan_file.parent))
    for message in skipped:
        if warn is not None:
            warn(f"passed over: {message}")
    if not found and number is None:
        raise UserError(
            f"no sweep under {root}/ has been run; pass --sweep SWEEP.yaml or its work "
            "directory, or --workdir-root where your sweeps' folders are"
        )
    if not found:
        also = f" ({len(skipped)} work directories with a damaged spec.yaml passed over)"
        raise UserError(
            f"no sweep under {root}/ declares table {number} (`tables: [{number}]` in its "
            f"spec) and has been run{also if skipped else ''}; pass --sweep SWEEP.yaml or its "
            f"work directory, or --workdir-root where your sweeps' folders are"
        )
    return max(found)[1]
