"""`clapsweep verify`: recompute finished stages in a scratch folder and compare their output
files, hash by hash, with what the store holds (the promise that a stage's bytes depend only
on its key)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from clapsweep.errors import UserError
from clapsweep.recipe.run import sweep_plan
from clapsweep.recipe.spec import SweepSpec
from clapsweep.store import META, Store, output_files
from clapsweep.sweep.executor import StageFn, pipeline_stage, stage_config


def pick_stages(spec: SweepSpec, wanted: list[str] | None) -> list:
    """The finished stages to check: those named (by key or name), else one per kind."""
    plan, _ = sweep_plan(spec)
    store = Store(spec.workdir, spec.store)
    done = [s for s in plan.stages.values() if store.is_done(s.name)]
    if not wanted:
        first: dict[str, Any] = {}
        for stage in done:
            first.setdefault(stage.kind, stage)
        return list(first.values())
    chosen = []
    for w in wanted:
        match = [s for s in done if w in (s.key, s.name)]
        if not match:
            raise UserError(f"--stage: {w} is not a finished stage of {spec.name}")
        chosen += match
    return chosen


def verify_stage(spec: SweepSpec, stage, stage_fn: StageFn = pipeline_stage) -> dict[str, Any]:
    """Recompute one stage from its stored inputs; per output file, whether the bytes match."""
    store = Store(spec.workdir, spec.store)
    stored = store.meta(stage.name)["files"]
    scratch = Path(tempfile.mkdtemp(prefix=f"clapsweep-verify-{stage.kind}-"))
    try:
        inputs = {role: store.final(name) for role, name in stage.inputs.items()}
        out = scratch / stage.name
        stage_fn(stage.kind, stage_config(stage), inputs, out, None)
        now = {k: v for k, v in output_files(out).items() if k != META}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    on_disk = {k: v for k, v in output_files(store.final(stage.name)).items() if k != META}
    return {
        "name": stage.name,
        "kind": stage.kind,
        "files": len(stored),
        "differ": _differing(stored, now),  # recomputed now vs recorded at commit
        "damaged": _differing(stored, on_disk),  # in the store now vs recorded at commit
    }


def _differing(a: dict, b: dict) -> list[str]:
    return sorted(
        f for f in set(a) | set(b) if a.get(f, {}).get("sha256") != b.get(f, {}).get("sha256")
    )
