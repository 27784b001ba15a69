"""SLURM cluster profiles: slurm/profiles/NAME.yaml (or a path), validated once, and the
submitit parameters they give each stage kind's jobs. Apart from the backend so that the
sweep spec can validate a profile without importing the backend (and the runner)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clapsweep.config import bounded, from_dict, load_yaml
from clapsweep.errors import ConfigError
from clapsweep.recipe.stages import STAGE_KINDS

PROFILE_DIRS_ENV = "CLAPSWEEP_SLURM_PROFILES"  # extra profile folders, os.pathsep-separated
_REPO_PROFILES = Path(__file__).resolve().parents[2] / "slurm" / "profiles"


# ----------------------------------------------------------------------------- profiles


@dataclass
class StageResources:
    """What one stage's job asks for."""

    gpus: int = bounded(0, 0, None)  # per node (--gpus-per-node); 0 asks for none
    cpus: int = bounded(1, 1, None)  # --cpus-per-task
    mem_gb: float = bounded(4.0, 0.0, None)  # --mem; 0 leaves it to the site's default
    time_min: int = bounded(60, 1, None)  # --time


@dataclass
class SlurmProfile:
    """A cluster profile: slurm/profiles/NAME.yaml. `stages` maps a stage kind (or
    `default`) to StageResources; a kind's entry is merged over `default`."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # other sbatch options
    setup: list[str] = field(default_factory=list)  # shell lines run before the stage
    python: str | None = None  # the interpreter on the nodes; default: this driver's
    array_parallelism: int = bounded(64, 1, None)  # array tasks running at once
    max_array_size: int = bounded(0, 0, None)  # tasks per array; 0: the cluster's MaxArraySize
    max_retries: int = bounded(1, 0, None)  # resubmissions of a job that died
    max_requeues: int = bounded(3, 0, None)  # time-out requeues (submitit's max_num_timeout)
    checkpoint_every: int = bounded(50, 0, None)  # training steps between checkpoints
    signal_delay_s: int = bounded(120, 10, None)  # USR2 this long before the time limit
    poll_s: float = bounded(10.0, 0.1, None)  # how often the driver asks sacct

    def resources(self, kind: str) -> StageResources:
        merged = {**self.stages.get("default", {}), **self.stages.get(kind, {})}
        return from_dict(StageResources, merged, f"stages.{kind}")


def profile_dirs() -> list[Path]:
    """Where profile names are looked up: $CLAPSWEEP_SLURM_PROFILES, ./slurm/profiles, and
    the profiles that come with clapsweep."""
    extra = [Path(p) for p in os.environ.get(PROFILE_DIRS_ENV, "").split(os.pathsep) if p]
    dirs = [*extra, Path.cwd() / "slurm" / "profiles", _REPO_PROFILES]
    return list(dict.fromkeys(d.resolve() for d in dirs))


def profile_path(name: str) -> Path:
    """A profile file: `name` itself when it is a path (has / or ends in .yaml), else
    NAME.yaml in the first of profile_dirs() that has it."""
    if "/" in name or name.endswith((".yaml", ".yml")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"backend.profile: profile file {path} not found")
        return path
    for folder in profile_dirs():
        if (folder / f"{name}.yaml").is_file():
            return folder / f"{name}.yaml"
    known = sorted({p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.yaml")})
    raise ConfigError(
        f"backend.profile: no SLURM profile named {name!r} in "
        + ", ".join(str(d) for d in profile_dirs())
        + f"; known profiles: {', '.join(known) or 'none'}"
    )


def load_profile(name: str | None, overrides: dict[str, Any] | None = None) -> SlurmProfile:
    """Read and validate a profile, then apply the sweep's `backend.slurm` overrides.
    Errors name the profile file (or backend.slurm) and the key."""
    if not name:
        raise ConfigError(
            "backend.profile: the slurm backend needs a cluster profile; set backend.profile "
            "or pass --profile NAME (profiles: slurm/profiles/*.yaml)"
        )
    path = profile_path(name)
    data = load_yaml(path)
    _parse_profile(data, f"{path}: ")
    overrides = overrides or {}
    _parse_profile(overrides, "backend.slurm.")
    merged = dict(data)
    for key, value in overrides.items():
        if key in ("stages", "additional_parameters") and isinstance(value, dict):
            base = dict(merged.get(key) or {})
            for sub, v in value.items():  # one stage kind's fields, not the whole table
                both = isinstance(v, dict) and isinstance(base.get(sub), dict)
                base[sub] = {**base[sub], **v} if both else v
            merged[key] = base
        else:
            merged[key] = value
    return _parse_profile(merged, f"{path} with backend.slurm: ")


def _parse_profile(data: dict[str, Any], prefix: str) -> SlurmProfile:
    try:
        profile = from_dict(SlurmProfile, data)
        for kind, entry in profile.stages.items():
            if kind != "default" and kind not in STAGE_KINDS:
                raise ConfigError(
                    f"stages.{kind}: unknown stage kind; expected default or one of: "
                    + ", ".join(STAGE_KINDS)
                )
            from_dict(StageResources, entry, f"stages.{kind}")
        for kind in STAGE_KINDS:
            profile.resources(kind)
    except ConfigError as e:
        # "PATH: key: ..." for a profile file; "backend.slurm.key: ..." for the overrides.
        raise ConfigError(f"{prefix}{e}") from None
    return profile


# ----------------------------------------------------------------------------- requests


def job_parameters(p: SlurmProfile, kind: str, sweep: str) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters for the jobs of one stage kind."""
    r = p.resources(kind)
    params: dict[str, Any] = {
        "job_name": f"clapsweep-{sweep}-{kind}",
        "time": r.time_min,
        "cpus_per_task": r.cpus,
        "array_parallelism": p.array_parallelism,
        "signal_delay_s": p.signal_delay_s,
        "setup": list(p.setup),
        "additional_parameters": dict(p.additional_parameters),
    }
    mem = f"{math.ceil(r.mem_gb * 1024)}M" if r.mem_gb else None
    optional = {"gpus_per_node": r.gpus, "mem": mem}
    optional |= {"partition": p.partition, "account": p.account, "qos": p.qos}
    return params | {k: v for k, v in optional.items() if v}
