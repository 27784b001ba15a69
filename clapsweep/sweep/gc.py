"""Garbage collection of a project store: the stages no sweep that uses the store plans.

Each run of a sweep with a project store records its workdir under `<store>/sweeps/`; a
stage is referenced when the plan.json of one of those workdirs names it. `collect` lists
the rest (finished, partial or failed) and, with `delete`, removes them. A sweep whose
workdir is gone references nothing; a sweep running now (its workdir locked) makes gc stop.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from clapsweep.errors import UserError
from clapsweep.store import Store, folder_bytes, write_json


def register_sweep(store: Store, name: str) -> None:
    key = hashlib.sha256(str(store.workdir.resolve()).encode()).hexdigest()[:16]
    folder = store.root / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / f"{key}.json", {"name": name, "workdir": str(store.workdir.resolve())})


def sweeps_of(root: Path) -> list[dict[str, Any]]:
    """The sweeps recorded in the store at `root`, with the stage names each plans."""
    out = []
    for record_file in sorted((root / "sweeps").glob("*.json")):
        try:
            record = json.loads(record_file.read_text())
            plan = json.loads((Path(record["workdir"]) / "plan.json").read_text())
            names = {s["name"] for s in plan["stages"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue  # its workdir or plan is gone: it references nothing
        out.append({"name": record["name"], "workdir": record["workdir"], "stages": names})
    return out


def collect(root: str | Path, delete: bool = False) -> dict[str, Any]:
    """{kept, unreferenced: [names], bytes, deleted}: the stage folders of the store at
    `root` that no recorded sweep plans (removed when `delete`)."""
    root = Path(root)
    if not (root / "stages").is_dir():
        raise UserError(f"--store: {root} holds no stages/ folder; is it a clapsweep store?")
    sweeps = sweeps_of(root)
    for sweep in sweeps:
        if Store(sweep["workdir"], root).is_locked():
            raise UserError(
                f"sweep {sweep['name']} is running ({sweep['workdir']}); run gc when it is done"
            )
    referenced = set().union(*(s["stages"] for s in sweeps))
    entries = sorted((root / "stages").iterdir())
    doomed = [p for p in entries if _stage_name(p) not in referenced]
    size = sum(folder_bytes(p) for p in doomed)
    if delete:
        for path in doomed:
            (shutil.rmtree if path.is_dir() else Path.unlink)(path)
            (root / "logs" / f"{_stage_name(path)}.log").unlink(missing_ok=True)
    return {
        "sweeps": [s["name"] for s in sweeps],
        "kept": len(entries) - len(doomed),
        "unreferenced": [p.name for p in doomed],
        "bytes": size,
        "deleted": delete,
    }


def _stage_name(path: Path) -> str:
    name = path.name.lstrip(".")
    for suffix in (
        ".partial",
        ".failed.json",
        ".claim",
    ):  # a claim (sweep.search) follows its stage
        name = name.removesuffix(suffix)
    return name.split(".replaced-")[0].split(".removed-")[0]
