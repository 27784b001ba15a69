"""Typed stage configs: one dataclass per stage kind, parsed once from the plain dict that
every backend hands to `clapsweep.pipeline.run_stage`, and written back to that same dict.

    parse(kind, config)  -> TeacherConfig | EmbedConfig | CurateConfig | StudentConfig | EvalConfig
    cfg.to_dict()        -> the dict again (what the plan stores in plan.json and meta.json)
    cfg.to_key()         -> the part of it a stage key hashes (clapsweep.sweep.plan.stage_key)
    cfg.stream           -> the identity of the stage's random streams

A field the dict does not hold is UNSET, not None (some configs hold None on purpose: curate's
top_k, runtime.cache_dir), and to_dict() leaves it out. So a dict survives parse and to_dict
exactly, and a field added to a stage later is absent from the configs planned before it:
their keys stay as they were. UNSET is falsy, like the empty value a reader would assume.

Shared pieces: StageData (the `data` section; which of its fields a stage needs is in the
stage class's DATA), CustomTask, Runtime (how a stage runs, never what it computes), and
FrontendConfig, ModelConfig, TrainConfig from clapsweep.config.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from clapsweep import config as C
from clapsweep.config import FrontendConfig, ModelConfig, SynthConfig, TrainConfig
from clapsweep.errors import ConfigError
from clapsweep.recipe import strategies


class _Unset:
    """The value of a field the config dict does not hold (see the module docstring)."""

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:  # one UNSET per process, also after pickling
        return "UNSET"


UNSET: Any = _Unset()


def given(value: Any, default: Any) -> Any:
    """`value`, or `default` where the dict did not hold the field."""
    return default if value is UNSET else value


def _unset(volatile: bool = False) -> Any:
    return field(default=UNSET, metadata={"volatile": volatile})


def _plain(value: Any) -> Any:
    if isinstance(value, _Section):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _keep_ints(obj: Any, data: dict) -> Any:
    """from_dict turns an int given for a float field into a float; keys hash the JSON, where
    1 and 1.0 differ, so the value stays as the dict gave it."""
    for f in dataclasses.fields(obj):
        value, parsed = data.get(f.name), getattr(obj, f.name)
        if dataclasses.is_dataclass(parsed) and isinstance(value, dict):
            _keep_ints(parsed, value)
        elif isinstance(value, int) and not isinstance(value, bool) and isinstance(parsed, float):
            setattr(obj, f.name, value)
    return obj


class _Section:
    """to_dict and from_dict of a config class whose fields may be UNSET."""

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: _plain(v) for k, v in values.items() if v is not UNSET}

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Any:
        """Strictly, as clapsweep.config.from_dict (unknown key, wrong type: ConfigError)."""
        return _keep_ints(C.from_dict(cls, data, where), data or {})


@dataclass
class CustomTask(_Section):
    """A custom task in a stage config: its CSV and prompt (data), or its CSV alone (the
    curate stage's leakage guard)."""

    csv: str
    prompt: str | None = _unset()


@dataclass
class StageData(_Section):
    """The `data` section of a stage config. A sweep's stages hold the fields they read and
    `fingerprint` (every dataset's content hash); a hand job's holds its whole DataConfig."""

    root: str = _unset()
    teacher: list[str] = _unset()
    fraction: float = _unset()
    seed: int = _unset()
    splits: dict[str, list[str]] = _unset()
    retrieval_splits: dict[str, list[str]] = _unset()
    fingerprint: dict[str, str] = _unset()
    wild: str = _unset()
    tasks: list[str] = _unset()
    custom_tasks: dict[str, CustomTask] = _unset()
    exclude_overlap: bool = _unset()
    # Only a hand job's (clapsweep.config.DataConfig); the stages do not read them.
    synth: SynthConfig | None = _unset()
    cache: bool = _unset()


@dataclass
class Runtime(_Section):
    """How a stage runs, never what it computes: outside its key and its random streams."""

    cache_dir: str | None = _unset()  # the decoded-audio cache (None: none)
    threads: int = _unset()  # intra-op threads
    key: str = _unset()  # the stage key (the executor's), which names the random streams
    checkpoint_every: int = _unset()  # steps between checkpoints (a preemptible backend)
    validate: dict[str, Any] = _unset()  # a search trial's per-epoch validation (task, folds)


def stream_id(config: dict) -> str:
    """The stage's identity for its random streams: the stage key the runner puts in
    `runtime.key`, or (a stage run by hand) a hash of the config without `runtime`."""
    key = config.get("runtime", {}).get("key")
    if key:
        return key
    identity = {k: v for k, v in config.items() if k != "runtime"}
    data = identity.get("data")
    if isinstance(data, dict) and data.get("exclude_overlap") is False:
        # Off is the default: jobs from before the option existed keep their streams.
        identity["data"] = {k: v for k, v in data.items() if k != "exclude_overlap"}
    blob = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def key_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """A stage config dict as the key sees it: without `runtime`, without the fields the
    schema marks volatile, and with checkpoint files as their content hashes (in
    `checkpoints`). Plain dicts: a stored config (plan.json) is keyed without parsing it."""
    out = json.loads(json.dumps(config))  # a deep copy that also proves it is JSON-able
    out.pop("runtime", None)
    out.pop("msclap_checkpoint", None)
    # Data enter by their fingerprints, not their location: the same datasets under another
    # root give the same keys, hence the same random streams and the same numbers.
    out.get("data", {}).pop("root", None)
    # A custom task enters by its fingerprint and prompt, not by where its CSV lives.
    for holder in (out, out.get("data", {})):
        for task in (holder.get("custom_tasks") or {}).values():
            task.pop("csv", None)
    # exclude_overlap off is the default and was never in a key: it must not change one.
    if out.get("data", {}).get("exclude_overlap") is False:
        out["data"].pop("exclude_overlap")
    if "model" in out:
        out["model"].pop("audio_checkpoint", None)
    if "train" in out:
        for name in C.volatile_fields(TrainConfig):
            out["train"].pop(name, None)
    if kind in STAGE_CONFIGS:  # curate's chunk
        for name in C.volatile_fields(STAGE_CONFIGS[kind]):
            out.pop(name, None)
    return out


class _Stage(_Section):
    """What every stage config has: its kind, the data fields it needs, key and stream."""

    kind: ClassVar[str] = ""
    DATA: ClassVar[tuple[str, ...]] = ()  # data fields the stage reads: required

    def to_key(self) -> dict[str, Any]:
        return key_config(self.kind, self.to_dict())

    @property
    def stream(self) -> str:
        return stream_id(self.to_dict())

    @property
    def runtime_or_empty(self) -> Runtime:
        """`runtime`, or an empty one where the dict held none."""
        return given(getattr(self, "runtime", UNSET), Runtime())

    def check(self) -> None:
        """What types alone do not say; raises ConfigError naming the field."""
        for name in self.DATA:
            if getattr(self.data, name) is UNSET:
                raise ConfigError(f"data.{name}: required key is missing")


@dataclass
class TeacherConfig(_Stage):
    kind: ClassVar[str] = "teacher"
    DATA: ClassVar[tuple[str, ...]] = ("root", "teacher")

    data: StageData
    frontend: FrontendConfig
    model: ModelConfig
    train: TrainConfig
    checkpoints: dict[str, str] = _unset()  # checkpoint files' sha256 (model.audio_checkpoint)
    init: str = _unset()  # a hand job's weights (model.pt) to start from
    runtime: Runtime = _unset()


@dataclass
class EmbedConfig(_Stage):
    kind: ClassVar[str] = "embed"
    DATA: ClassVar[tuple[str, ...]] = ("root", "teacher", "wild", "tasks")

    data: StageData
    seed: int  # the teacher's pair subset
    frontend: FrontendConfig
    model: ModelConfig
    runtime: Runtime = _unset()


@dataclass
class CurateConfig(_Stage):
    kind: ClassVar[str] = "curate"

    strategy: str
    task: str = _unset()  # per-task strategies (ds, ads)
    sigma: float = _unset()
    sigma_ds: float = _unset()
    top_k: int | None = _unset()
    chunk: int = _unset(volatile=True)  # rows per matrix-product chunk: speed only
    custom_tasks: dict[str, CustomTask] = _unset()  # the leakage guard's task audio
    runtime: Runtime = _unset()

    def check(self) -> None:
        if self.strategy not in strategies.STRATEGIES:
            raise ConfigError(
                f"strategy: unknown strategy {self.strategy!r}; expected one of "
                + ", ".join(strategies.names())
            )
        chosen = strategies.get(self.strategy)
        for name in (["task"] if chosen.per_task else []) + list(chosen.thresholds):
            if getattr(self, name) is UNSET:
                raise ConfigError(f"{name}: required by strategy {self.strategy}")


@dataclass
class StudentConfig(_Stage):
    kind: ClassVar[str] = "student"

    data: StageData  # the embed stage's (the key's: the teacher set it replays)
    frontend: FrontendConfig
    model: ModelConfig
    train: TrainConfig
    runtime: Runtime = _unset()


@dataclass
class EvalConfig(_Stage):
    kind: ClassVar[str] = "eval"
    DATA: ClassVar[tuple[str, ...]] = ("root", "tasks")

    data: StageData
    frontend: FrontendConfig
    model: ModelConfig
    msclap_checkpoint: str = _unset()  # the MS-CLAP baseline's weights (no model input)
    checkpoints: dict[str, str] = _unset()
    # Only these folds of a task are evaluated / these are skipped (e.g. a validation split);
    # fold names as the records have them ("1", "development", ...).
    folds: dict[str, list[str]] = _unset()
    exclude_folds: dict[str, list[str]] = _unset()
    runtime: Runtime = _unset()

    def check(self) -> None:
        super().check()
        for name in ("folds", "exclude_folds"):
            for task in getattr(self, name) or {}:
                if task not in self.data.tasks:
                    raise ConfigError(
                        f"{name}.{task}: not a task of this eval; expected one of data.tasks: "
                        + ", ".join(self.data.tasks)
                    )

    def restricts_folds(self) -> bool:
        return bool(self.folds or self.exclude_folds)

    def keeps_fold(self, task: str, fold: str) -> bool:
        """Whether the eval evaluates a record of `task` in `fold` (compared as strings)."""
        only = (self.folds or {}).get(task)
        skip = (self.exclude_folds or {}).get(task, [])
        return (only is None or fold in only) and fold not in skip


STAGE_CONFIGS: dict[str, type] = {
    c.kind: c for c in (TeacherConfig, EmbedConfig, CurateConfig, StudentConfig, EvalConfig)
}

StageConfig = TeacherConfig | EmbedConfig | CurateConfig | StudentConfig | EvalConfig


def parse(kind: str, config: dict[str, Any]) -> StageConfig:
    """The typed config of a `kind` stage, checked once: an unknown key, a wrong type or a
    missing field is a ConfigError naming the stage kind and the field."""
    if kind not in STAGE_CONFIGS:
        raise ValueError(f"unknown stage kind {kind!r}")
    try:
        cfg = STAGE_CONFIGS[kind].from_dict(config)
        cfg.check()
    except ConfigError as e:
        raise ConfigError(f"{kind} stage config: {e}") from None
    return cfg


def fields_of(kind: str) -> set[str]:
    """The top-level fields of a `kind` stage's config."""
    return {f.name for f in dataclasses.fields(STAGE_CONFIGS[kind])}
