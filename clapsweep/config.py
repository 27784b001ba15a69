"""Typed configs and strict YAML loading.

Every config is a dataclass. `from_dict` builds one from plain data and rejects an unknown key,
a wrong type or a value out of range with a message that names the key path and what was
expected. Ranges and choices live in the field metadata (`bounded`), so the class is the schema.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from clapsweep.errors import ConfigError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def bounded(
    default: Any, lo: float | None = None, hi: float | None = None, volatile: bool = False
) -> Any:
    """A dataclass field whose value must lie in [lo, hi]. `volatile` marks a knob that
    changes speed, never a result: it is left out of stage keys (`keyed_fields`)."""
    return field(default=default, metadata={"range": (lo, hi), "volatile": volatile})


def volatile_fields(cls: type) -> set[str]:
    """The fields of config class `cls` that do not change a stage's result."""
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("volatile")}


# ----------------------------------------------------------------------------- the configs


@dataclass
class FrontendConfig:
    """Audio front-end; defaults are the paper's (and MS-CLAP 2022's)."""

    sample_rate: int = bounded(44100, 1000, 192000)
    clip_seconds: float = bounded(5.0, 0.1, 60.0)
    n_fft: int = bounded(1024, 16, 16384)
    win_length: int = bounded(1024, 16, 16384)
    hop_length: int = bounded(320, 1, 16384)
    n_mels: int = bounded(64, 8, 512)
    f_min: float = bounded(50.0, 0.0, None)
    f_max: float = bounded(14000.0, 1.0, None)

    @property
    def clip_samples(self) -> int:
        return round(self.sample_rate * self.clip_seconds)


@dataclass
class ModelConfig:
    """CLAP towers. `text` is a hub name, a local folder, or `minilm` (the offline package)."""

    audio: Literal["cnn14", "small_cnn"] = "cnn14"
    audio_width: int = bounded(32, 4, 512)  # channels of the first small_cnn block
    text: str = "bert-base-uncased"
    text_pooling: Literal["cls", "mean"] = "cls"
    text_max_tokens: int = bounded(100, 8, 512)  # truncation only; padding is per batch
    dim: int = bounded(1024, 2, 8192)
    dropout: float = bounded(0.5, 0.0, 1.0)  # MS-CLAP projection dropout
    # Initial temperature tau. The authors' code and MS-CLAP use 0.07 (logit scale
    # log(1/0.07)); the paper's text says 0.007. The trainer clamps the logit scale
    # parameter to [0, log 100] after each step (as CLIP does), so tau can move from any
    # start, 0.007 included.
    init_temperature: float = bounded(0.07, 1e-4, 1.0)
    # A PANNs Cnn14 checkpoint (`Cnn14*.pth`) the teacher's CNN14 starts from (MS-CLAP's
    # setup, which the paper follows). Stage keys use the file's content hash, not its path.
    audio_checkpoint: str | None = None
    # What to do when the checkpoint's stored front-end (PANNs keep their mel filterbank and
    # STFT kernels) differs from `frontend`: `match` refuses it, naming the settings it was
    # built for; `own` takes the network weights and keeps this config's front-end (what
    # MS-CLAP's 44.1 kHz CNN14 does with PANNs' 32 kHz AudioSet weights).
    audio_checkpoint_frontend: Literal["match", "own"] = "match"


@dataclass
class TrainConfig:
    """One trainer for teacher and student. Defaults follow the authors' training facts."""

    batch_size: int = bounded(64, 2, None)
    lr: float = bounded(1e-4, 0.0, 1.0)
    epochs: int = bounded(20, 1, None)
    max_steps: int = bounded(0, 0, None)  # 0: no limit; otherwise stop after this many steps
    optimizer: Literal["adam", "adamw"] = "adam"
    weight_decay: float = bounded(0.0, 0.0, 1.0)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = bounded(0, 0, None)
    grad_clip: float = bounded(5.0, 0.0, None)  # 0 turns clipping off
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA only
    channels_last: bool = True
    compile: bool = False
    num_workers: int = bounded(0, 0, 64, volatile=True)
    seed: int = bounded(0, 0, None)
    # Keep the pretrained text encoder fixed (its projection still trains): a CPU speed-up.
    freeze_text: bool = False
    # Student options: soft labels (eq. 5-8) and replay.
    beta: float = bounded(0.0, 0.0, 1.0)
    # The authors' computation (raw cosine rows, see clapsweep.losses) by default.
    soft_target: Literal["paper", "normalized", "softmax"] = "paper"
    teacher_temperature: float = bounded(0.07, 1e-4, 10.0)
    replay: float = bounded(0.0, 0.0, 1.0)
    # What an epoch is. `teacher` (the authors' loop): as many batches as one pass over the
    # teacher's training set, each drawn from the main set or, with probability `replay`,
    # from the replay set; every strategy then gets the same compute. `improvement`: one
    # pass over the main (Improvement-)set. `steps_per_epoch` > 0 overrides both.
    epoch: Literal["teacher", "improvement"] = "teacher"
    steps_per_epoch: int = bounded(0, 0, None)
    log_every: int = bounded(10, 1, None, volatile=True)


# ----------------------------------------------------------------------------- building


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from `data`, strictly. `where` is the key path for messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {_show(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(where, str(unknown[0]))}: unknown key; expected one of: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, f in fields.items():
        path = _join(where, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{path}: required key is missing")
            continue
        value = _coerce(hints[name], data[name], path)
        lo, hi = f.metadata.get("range", (None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(
                f"{path}: expected a value in [{_bound(lo)}, {_bound(hi)}], got {value}"
            )
        values[name] = value
    return cls(**values)


def to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, path)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{path}: expected one of {choices}, got {_show(value)}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {_show(value)}")
        return [_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_show(value)}")
        return {str(k): _coerce(args[1], v, _join(path, str(k))) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_show(value)}")
        return value
    raise TypeError(f"config type {tp!r} at {path} is not supported")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _bound(x: float | None) -> str:
    return "inf" if x is None else str(x)


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"


# ----------------------------------------------------------------------------- YAML


def expand_env(value: Any, path: str = "") -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; an unset VAR is an error."""
    if isinstance(value, dict):
        return {k: expand_env(v, _join(path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ and os.environ[name] != "":
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{path}: environment variable {name} is not set; export it or write the path"
        )

    return _ENV.sub(sub, value)


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping safely, with environment variables expanded."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; give the sweep or job YAML file itself")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {e.start}); is it the YAML file? Save it as UTF-8"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    return expand_env(data)


def load(cls: type, path: str | Path) -> Any:
    """Load a YAML file into dataclass `cls`; messages start with the file name."""
    data = load_yaml(path)
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


@dataclass
class SynthConfig:
    """Generate synthworld into `data.root` on first use."""

    scale: Literal["tiny", "demo", "large"] = "demo"
    seed: int = bounded(0, 0, None)


# The paper's ~128 k teacher pairs: FSD50K dev (train + val), Clotho v2 development,
# AudioCaps train and MACS. The held-out caption splits measure retrieval R@k instead.
TEACHER_SPLITS = {
    "fsd50k": ["train", "val"],
    "clotho": ["development"],
    "audiocaps": ["train"],
    "macs": ["train"],
}
RETRIEVAL_SPLITS = {"fsd50k": ["eval"], "clotho": ["evaluation"], "audiocaps": ["test"]}


def merged_splits(overrides: dict[str, list[str]] | None, defaults: dict) -> dict:
    """Per teacher dataset its splits: the defaults, with the datasets a config names
    replaced."""
    return {**{k: list(v) for k, v in defaults.items()}, **(overrides or {})}


@dataclass
class DataSources:
    """Which datasets a job or a sweep reads and how: one definition for both (a hand job's
    DataConfig adds its teacher fraction, a sweep's DataSpec its custom tasks)."""

    root: str = "data/synthworld"
    synth: SynthConfig | None = None  # generate synthworld into root on first use
    teacher: list[Literal["fsd50k", "clotho", "audiocaps", "macs"]] = field(
        default_factory=lambda: ["fsd50k", "clotho", "audiocaps", "macs"]
    )
    wild: Literal["audioset"] = "audioset"
    tasks: list[Literal["esc50", "us8k", "tut17"]] = field(
        default_factory=lambda: ["esc50", "us8k", "tut17"]
    )
    cache: bool = True  # keep decoded, resampled audio (a job: in OUT.cache/)
    # Which splits train the teacher and which measure retrieval, per teacher dataset
    # (datasets not named keep TEACHER_SPLITS / RETRIEVAL_SPLITS).
    splits: dict[str, list[str]] = field(default_factory=dict)
    retrieval_splits: dict[str, list[str]] = field(default_factory=dict)
    # Drop the teacher clips cut from the same recording (Freesound sound, YouTube video) as a
    # clip of one of `tasks`, before the fraction is taken (clapsweep.data.overlap). It
    # enters stage keys only when true, so configs without it keep their keys.
    exclude_overlap: bool = False


@dataclass
class DataConfig(DataSources):
    """A hand job's data: the sources and the teacher data fraction."""

    fraction: float = bounded(1.0, 0.0, 1.0)


@dataclass
class StudentInputs:
    """Folders a student trains from: its teacher job, the teacher's embeddings, the
    Improvement-Set, and (ADS) the DS set it replays; without `replay`, the teacher set."""

    teacher: str
    embed: str
    improvement: str
    replay: str = ""


@dataclass
class TrainJob:
    """`clapsweep train --config FILE`: one teacher (or, with `student:`, one student)
    training and its zero-shot evaluation."""

    out: str
    student: StudentInputs | None = None
    data: DataConfig = field(default_factory=DataConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: str = ""  # optional weights (model.pt) to start from
