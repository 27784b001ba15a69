"""The plan model: a DAG of stages with content keys, what the runner and the backends run.

A stage's key is a hash of its kind, the part of its config that affects the result, its
inputs' names and SCHEMA_VERSION, so two trials asking for the same stage get the same key
and the stage is planned (and run) once. The engine knows no stage kind, dataset or
strategy: the recipe (clapsweep.recipe.plan) builds the plan from a sweep spec and hands
stage_key the config already shaped for the key (clapsweep.recipe.stage_config).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clapsweep.errors import ConfigError

# Bump when a stage's code changes what it produces: every key changes, everything reruns.
# 2: the authors' student epoch, batches without repeats, stage-keyed random streams,
#    explicit teacher splits, data fingerprints instead of the data root.
SCHEMA_VERSION = 2


@dataclass
class PlannedStage:
    kind: str  # teacher | embed | curate | student | eval
    key: str  # 16 hex digits
    config: dict[str, Any]
    inputs: dict[str, str]  # role -> name of the stage it reads
    users: list[dict[str, Any]] = field(default_factory=list)  # trials: row, seed, fraction, tasks
    layer: int = 0  # 0 for stages without inputs, else 1 + the deepest input

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.key}"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"name": self.name}

    def event_fields(self) -> dict[str, Any]:
        """What progress events say about the stage."""
        return {"name": self.name, "kind": self.kind, "key": self.key, "users": self.users}


@dataclass
class Plan:
    sweep: str
    stages: dict[str, PlannedStage]  # by name, every stage after its inputs

    def layers(self) -> list[list[PlannedStage]]:
        """Stages grouped by depth: every stage's inputs lie in earlier layers."""
        out: list[list[PlannedStage]] = []
        for stage in self.stages.values():
            while len(out) <= stage.layer:
                out.append([])
            out[stage.layer].append(stage)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep": self.sweep,
            "schema_version": SCHEMA_VERSION,
            "stages": [s.to_json() for s in self.stages.values()],
        }


def load_plan(workdir: str | Path) -> Plan | None:
    """The plan a run stored in its workdir (plan.json), or None when there is none."""
    path = Path(workdir) / "plan.json"
    try:
        data = json.loads(path.read_text())
        stages = [
            PlannedStage(**{k: v for k, v in s.items() if k != "name"}) for s in data["stages"]
        ]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(
            f"{path}: damaged ({type(e).__name__}); `clapsweep run` writes it anew"
        ) from None
    return Plan(sweep=data.get("sweep", ""), stages={s.name: s for s in stages})


def stage_key(kind: str, key_config: dict[str, Any], inputs: dict[str, str]) -> str:
    """sha256 of kind, the result-affecting config, the inputs and SCHEMA_VERSION (16 hex).
    `key_config` is the config as the key sees it (the recipe's StageConfig.to_key(), or
    stage_config.key_config of a plain dict): this hashes it as given."""
    if "runtime" in key_config:  # how a stage runs never enters its key
        raise ValueError(f"stage_key of a {kind} config with runtime: pass its to_key()")
    payload = {
        "kind": kind,
        "config": key_config,
        "inputs": sorted(inputs.items()),
        "schema": SCHEMA_VERSION,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
