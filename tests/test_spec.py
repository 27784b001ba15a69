"""Sweep spec loading: every mistake names the file and the key path; valid specs resolve."""

import copy
from pathlib import Path

import pytest
import yaml

from clapsweep.errors import ConfigError
from clapsweep.recipe.spec import load_spec

REPO = Path(__file__).resolve().parents[1]

BASE = {
    "name": "t2",
    "tables": [2],
    "data": {"root": "data/x", "tasks": ["esc50", "us8k", "tut17"]},
    "train": {"epochs": 3, "lr": 0.001},
    "student": {"epochs": 2},
    "grid": {
        "seed": [0, 1],
        "teacher_fraction": [1.0],
        "rows": [
            {"name": "DU", "strategy": "du", "sigma": 0.7},
            {"name": "DU+SL", "strategy": "du", "sigma": 0.7, "beta": 0.3, "replay": 0.5},
            {
                "name": "DS",
                "strategy": "ds",
                "sigma_ds": {"esc50": 0.7, "us8k": 0.6, "tut17": 0.675},
            },
            {"name": "ADS+SL", "strategy": "ads", "sigma_ds": 0.7, "sigma": 0.65, "beta": 0.3},
        ],
    },
    "tracking": {"wandb": {"enabled": False}},
}


def write(tmp_path: Path, data: dict, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def changed(path: str, value) -> dict:
    """BASE with the value at a dotted path (list indices as numbers) replaced."""
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = value
    elif value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("model.audo", "cnn14", "model.audo: unknown key; expected one of: audio,"),
        ("grid.rows.1.sgma", 0.7, "grid.rows[1].sgma: unknown key"),
        ("train.batch_size", "64", "train.batch_size: expected an integer, got str '64'"),
        ("grid.rows.0.sigma", 1.5, "grid.rows[0].sigma: expected a value in [0, 1], got 1.5"),
        ("grid.rows.1.beta", -0.1, "grid.rows[1].beta: expected a value in [0, 1], got -0.1"),
        (
            "grid.rows.0.strategy",
            "dx",
            "grid.rows[0].strategy: expected one of 'du', 'ds', 'ads', got str 'dx'",
        ),
        (
            "grid.rows.2.sigma_ds",
            {"esc50": 0.7, "esc10": 0.6, "us8k": 0.6, "tut17": 0.6},
            "grid.rows[2].sigma_ds.esc10: unknown task; expected one of data.tasks: esc50, us8k, tut17",
        ),
        (
            "grid.rows.2.sigma_ds",
            {"esc50": 0.7, "us8k": 0.6},
            "grid.rows[2].sigma_ds: no value for task tut17",
        ),
        ("grid.rows.3.sigma", DELETE, "grid.rows[3].sigma: required by strategy 'ads'"),
        ("grid.rows.0.sigma_ds", 0.5, "grid.rows[0].sigma_ds: not used by strategy 'du'"),
        ("grid.rows.0.sigma", {"esc50": 0.7}, "grid.rows[0].sigma: du curation does not depend"),
        ("grid.rows.1.name", "DU", "grid.rows[1].name: row name 'DU' is used twice"),
        ("grid.rows.2.soft_target", "kl", "grid.rows[2].soft_target: expected one of"),
        (
            "backend.kind",
            "k8s",
            "backend.kind: expected one of 'local', 'ray', 'slurm', got str 'k8s'",
        ),
        ("backend.resources", {"trainer": {"gpu": 1}}, "backend.resources.trainer: unknown stage"),
        ("data.tasks", ["esc50", "dcase"], "data.tasks[1]: expected one of 'esc50', 'us8k'"),
        ("data.wild", "freesound", "data.wild: expected one of 'audioset'"),
        ("data.root", DELETE, "data.root: required key is missing"),
        (
            "grid.teacher_fraction",
            [1.0, 0.0],
            "grid.teacher_fraction[1]: expected a value in (0, 1]",
        ),
        ("grid.seed", [0, 0], "grid.seed: a value is listed twice"),
        ("student.epochs", 0, "student.epochs: expected a value in [1, inf], got 0"),
        ("student.lr_typo", 0.1, "student.lr_typo: unknown key"),
        ("curate.top_k", 0, "curate.top_k: expected null or an integer >= 1, got 0"),
        ("name", "Table 2", "name: expected letters a-z"),
        ("tables", [4], "tables[0]: expected one of 1, 2, 3 (a registered table)"),
        ("tracking.wandb.mode", "cloud", "tracking.wandb.mode: expected one of 'offline'"),
    ],
)
def test_errors_name_file_and_key_path(tmp_path, path, value, message):
    file = write(tmp_path, changed(path, value))
    with pytest.raises(ConfigError) as e:
        load_spec(file)
    text = str(e.value)
    assert text.startswith(f"{file}: "), text
    assert message in text, text


def test_unset_environment_variable_names_file_and_key(tmp_path, monkeypatch):
    monkeypatch.delenv("CLAPSWEEP_TEST_UNSET", raising=False)
    file = write(tmp_path, changed("data.root", "${CLAPSWEEP_TEST_UNSET}"))
    with pytest.raises(ConfigError) as e:
        load_spec(file)
    assert str(e.value).startswith(f"{file}: data.root: environment variable CLAPSWEEP_TEST_UNSET")


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_valid_spec_resolves_paths_thresholds_and_student_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLAPSWEEP_TEST_ROOT", "/datasets/real")
    spec = load_spec(write(tmp_path, changed("data.root", "${CLAPSWEEP_TEST_ROOT}/v1")))
    assert spec.workdir == str(tmp_path / "runs" / "t2")  # default runs/<name>, absolute
    assert spec.data.root == "/datasets/real/v1"
    rows = spec.grid.rows
    assert rows[2].sigma_ds == {"esc50": 0.7, "us8k": 0.6, "tut17": 0.675}
    assert rows[3].sigma == 0.65 and isinstance(rows[3].sigma, float)
    assert rows[0].beta is None  # taken from the student train config when planning
    student = spec.student_train()
    assert (student.epochs, student.lr) == (2, 0.001)  # student over train over defaults
    assert (spec.train.epochs, spec.train.lr) == (3, 0.001)


def test_relative_root_and_workdir_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = changed("workdir", "out/w")
    spec = load_spec(write(tmp_path, data))
    assert spec.workdir == str(tmp_path / "out" / "w")
    assert spec.data.root == str(tmp_path / "data" / "x")


def test_shipped_smoke_sweep_loads(monkeypatch):
    monkeypatch.delenv("CLAPSWEEP_DATA", raising=False)
    spec = load_spec(REPO / "sweeps" / "smoke.yaml")
    assert spec.name == "smoke"
    assert spec.data.synth is not None and spec.data.synth.scale == "tiny"
    assert spec.data.root.endswith("data/synthworld-tiny")
    assert [r.name for r in spec.grid.rows] == ["DU", "DU+SL", "DS+SL", "ADS+SL"]
    assert (spec.model.audio, spec.model.dim, spec.frontend.n_mels) == ("small_cnn", 64, 32)


@pytest.mark.parametrize(
    "splits,message",
    [
        ({"splits": {"esc50": ["1"]}}, "data.splits.esc50: not a teacher dataset; expected one of"),
        ({"splits": {"clotho": []}}, "data.splits.clotho: expected at least one split"),
        (
            {"splits": {"clotho": ["development", "evaluation"]}},
            "data.splits.clotho: evaluation is also a retrieval split",
        ),
        ({"retrieval_splits": {"tut17": ["x"]}}, "data.retrieval_splits.tut17: not a teacher"),
    ],
)
def test_teacher_split_mistakes_are_named(tmp_path, splits, message):
    data = copy.deepcopy(BASE)
    data["data"] |= splits
    with pytest.raises(ConfigError, match=message):
        load_spec(write(tmp_path, data))
