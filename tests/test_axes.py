"""The sweep language: list-valued row fields expand to rows, zip pairs axes, student train
keys per row, command-line overrides; every mistake names the row and the axis."""

import copy
import json
from collections import Counter

import pytest
import yaml
from test_spec import BASE

from clapsweep.errors import ConfigError
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.spec import load_spec

PRINTS = dict.fromkeys(["clotho", "audiocaps", "fsd50k", "macs", "audioset"], "x")
PRINTS |= dict.fromkeys(["esc50", "us8k", "tut17"], "y")


def spec_with(tmp_path, rows, overrides=None, **top):
    data = copy.deepcopy(BASE) | top
    data["grid"]["rows"] = rows
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # axes in the order written
    return load_spec(path, overrides)


def names(spec):
    return [r.name for r in spec.grid.rows]


def test_list_fields_expand_to_their_cartesian_product(tmp_path):
    rows = [{"name": "DU", "strategy": "du", "sigma": [0.6, 0.7], "beta": [0.0, 0.3, 0.5]}]
    spec = spec_with(tmp_path, rows)
    assert names(spec) == [
        f"DU sigma={s} beta={b}" for s in ("0.6", "0.7") for b in ("0", "0.3", "0.5")
    ]
    assert [(r.sigma, r.beta) for r in spec.grid.rows][:2] == [(0.6, 0.0), (0.6, 0.3)]


def test_zip_pairs_axes_and_a_plain_row_is_unchanged(tmp_path):
    rows = [
        {"name": "DU", "strategy": "du", "sigma": [0.6, 0.7], "replay": [0.1, 0.9],
         "zip": ["sigma", "replay"]},
        {"name": "DS", "strategy": "ds", "sigma_ds": 0.7},
    ]  # fmt: skip
    spec = spec_with(tmp_path, rows)
    assert names(spec) == ["DU sigma=0.6 replay=0.1", "DU sigma=0.7 replay=0.9", "DS"]


def test_row_train_keys_are_axes_and_reach_the_students(tmp_path):
    rows = [{"name": "DU", "strategy": "du", "sigma": 0.7, "train": {"lr": [1e-4, 3e-4]}}]
    spec = spec_with(tmp_path, rows)
    assert names(spec) == ["DU lr=0.0001", "DU lr=0.0003"]
    plan = build_plan(spec, PRINTS)
    students = [s for s in plan.stages.values() if s.kind == "student"]
    assert sorted(s.config["train"]["lr"] for s in students) == [1e-4] * 2 + [3e-4] * 2
    assert all(s.config["train"]["epochs"] == 2 for s in students)  # `student` still applies
    # The two rows share teacher, embed and curation: only students and evals differ.
    kinds = Counter(s.kind for s in plan.stages.values())
    assert kinds["curate"] == 2 and kinds["student"] == 4  # per seed: 1 curation, 2 lr


def test_expanded_rows_keep_the_keys_of_the_same_rows_written_out(tmp_path):
    axis = spec_with(tmp_path, [{"name": "DU", "strategy": "du", "sigma": [0.6, 0.7]}])
    written = spec_with(
        tmp_path,
        [{"name": f"DU sigma={s}", "strategy": "du", "sigma": s} for s in (0.6, 0.7)],
    )
    assert set(build_plan(axis, PRINTS).stages) == set(build_plan(written, PRINTS).stages)


@pytest.mark.parametrize(
    "row, message",
    [
        ({"sigma": []}, "grid.rows[0] (DU).sigma: an axis needs at least one value"),
        ({"sigma": [0.6, 1.5]}, "grid.rows[1].sigma: expected a value in [0, 1], got 1.5"),
        ({"sigma": [0.6, 0.7], "beta": [0.1], "zip": ["sigma", "beta"]},
         "grid.rows[0] (DU).zip: zipped axes need the same length (sigma 2, beta 1)"),
        ({"sigma": [0.6, 0.7], "zip": ["beta"]},
         "grid.rows[0] (DU).zip: 'beta' is not a list-valued field of the row (axes: sigma)"),
        ({"zip": ["sigma"]}, "grid.rows[0].zip: the row has no list-valued field to zip"),
        ({"train": {"lrr": [1, 2]}}, "grid.rows[0].train.lrr"),
    ],
)  # fmt: skip
def test_axis_mistakes_name_the_row_and_axis(tmp_path, row, message):
    with pytest.raises(ConfigError) as e:
        spec_with(tmp_path, [{"name": "DU", "strategy": "du", "sigma": 0.7} | row])
    assert message in str(e.value)


def test_overrides_set_values_like_the_file_and_are_checked_as_strictly(tmp_path):
    rows = copy.deepcopy(BASE["grid"]["rows"])
    overrides = ["grid.seed=[0,1,2,3,4]", "train.lr=3e-4", "grid.rows[DU].sigma=[0.6,0.7]"]
    spec = spec_with(tmp_path, rows, overrides)
    assert spec.grid.seed == [0, 1, 2, 3, 4] and spec.train.lr == 3e-4
    assert names(spec)[:3] == ["DU sigma=0.6", "DU sigma=0.7", "DU+SL"]
    assert spec_with(tmp_path, rows, ["grid.rows[1].beta=0.5"]).grid.rows[1].beta == 0.5
    for bad, message in [
        ("train.lrr=1", "train.lrr"),
        ("grid.rows[XX].sigma=0.5", "override 'grid.rows[XX].sigma=0.5': rows has no entry 'XX'"),
        ("train.lr", "override 'train.lr': expected PATH=VALUE"),
        ("grid.seed=[0", "override 'grid.seed=[0': the value is not valid YAML"),
        ("grid.rows[DU]=1", "name a field of rows[DU]"),
    ]:
        with pytest.raises(ConfigError) as e:
            spec_with(tmp_path, rows, [bad])
        assert message in str(e.value), bad


def test_a_run_records_its_overrides_in_spec_yaml(tmp_path):
    from clapsweep.recipe.run import _write_records
    from clapsweep.store import Store

    rows = copy.deepcopy(BASE["grid"]["rows"])
    spec = spec_with(tmp_path, rows, ["train.lr=3e-4"], workdir=str(tmp_path / "w"))
    _write_records(spec, build_plan(spec, PRINTS), Store(spec.workdir))
    text = (tmp_path / "w" / "spec.yaml").read_text()
    assert "# override: train.lr=3e-4\n" in text
    assert yaml.safe_load(text)["train"]["lr"] == 3e-4
    assert json.loads((tmp_path / "w" / "plan.json").read_text())["stages"]


def test_overrides_on_the_command_line_before_or_after_options(tmp_path, capsys):
    from clapsweep.cli import main

    rows = copy.deepcopy(BASE["grid"]["rows"])
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(copy.deepcopy(BASE) | {"grid": BASE["grid"] | {"rows": rows}}))
    counts = []
    for argv in (
        ["run", str(path), "--dry-run", "--json"],
        ["run", str(path), "grid.seed=[0]", "--dry-run", "--json"],
        ["run", str(path), "--dry-run", "--json", "grid.seed=[0]"],
    ):
        assert main(argv) == 0
        counts.append(json.loads(capsys.readouterr().out)["totals"]["total"])
    assert counts[0] == 2 * counts[1] and counts[1] == counts[2]
    assert main(["run", str(path), "--dry-run", "grid.sed=[0]"]) == 2
    assert "grid.sed: unknown key" in capsys.readouterr().err
