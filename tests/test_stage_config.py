"""Typed stage configs (clapsweep.recipe.stage_config): every stage of the demo plan parses
and writes back to exactly the dict the plan stores, with the same key; a bad dict is one
ConfigError naming the stage kind and the field; a hand job keeps its random streams; and
the eval stage's `folds` / `exclude_folds` restrict the clips a real eval (tiny synthworld,
untrained towers) evaluates, and leave every key alone when unset."""

import copy
import json
from collections import defaultdict
from pathlib import Path

import pytest

from clapsweep import config as C
from clapsweep import jobs, pipeline
from clapsweep.data import synthworld
from clapsweep.errors import ConfigError, UserError
from clapsweep.recipe.plan import _eval_config, build_plan
from clapsweep.recipe.spec import CurateSpec, load_spec
from clapsweep.recipe.stage_config import STAGE_CONFIGS, UNSET, CurateConfig, parse, stream_id
from clapsweep.sweep.plan import stage_key

DEMO = Path(__file__).parents[1] / "sweeps" / "demo.yaml"


@pytest.fixture(scope="module")
def demo():
    spec = load_spec(DEMO)
    return spec, build_plan(spec, prints=defaultdict(lambda: "fp"))


def _first(plan, kind: str) -> dict:
    return copy.deepcopy(next(s for s in plan.stages.values() if s.kind == kind).config)


def _json(d: dict) -> str:
    return json.dumps(d, sort_keys=True)


def test_every_demo_stage_round_trips_with_its_key(demo):
    _, plan = demo
    assert {s.kind for s in plan.stages.values()} == set(STAGE_CONFIGS)
    for stage in plan.stages.values():
        cfg = parse(stage.kind, stage.config)
        assert type(cfg) is STAGE_CONFIGS[stage.kind]
        assert parse(stage.kind, cfg.to_dict()) == cfg
        assert _json(cfg.to_dict()) == _json(stage.config), stage.name  # absent stays absent
        assert stage_key(stage.kind, cfg.to_key(), stage.inputs) == stage.key


def test_a_hand_dict_survives_parse_exactly():
    """None held on purpose (synth, top_k), ints given for float fields: all kept as given,
    because keys and hand-job streams hash the JSON."""
    job = C.to_dict(C.TrainJob(out="x"))
    job["train"]["lr"] = 1
    teacher = {k: v for k, v in job.items() if k not in ("out", "student")}
    assert teacher["data"]["synth"] is None and teacher["init"] == ""
    assert _json(parse("teacher", teacher).to_dict()) == _json(teacher)
    curate = {"strategy": "du", "sigma": 1, "top_k": None}
    assert _json(parse("curate", curate).to_dict()) == _json(curate)
    assert parse("curate", {"strategy": "du", "sigma": 0.5}).top_k is UNSET


def _broken(plan, kind: str, change) -> dict:
    config = _first(plan, kind)
    change(config)
    return config


@pytest.mark.parametrize(
    "kind, change, message",
    [
        ("eval", lambda c: c.update(foldz={}), "eval stage config: foldz: unknown key"),
        (
            "teacher",
            lambda c: c["data"].update(fraction="half"),
            "teacher stage config: data.fraction: expected a number, got str 'half'",
        ),
        (
            "student",
            lambda c: c["train"].update(lr=[1]),
            "student stage config: train.lr: expected a number",
        ),
        (
            "embed",
            lambda c: c["data"].pop("wild"),
            "embed stage config: data.wild: required key is missing",
        ),
        ("embed", lambda c: c.pop("seed"), "embed stage config: seed: required key is missing"),
        (
            "curate",
            lambda c: c.update(strategy="du") or c.pop("sigma", None),
            "curate stage config: sigma: required by strategy du",
        ),
        (
            "eval",
            lambda c: c.update(folds={"nope": ["1"]}),
            "eval stage config: folds.nope: not a task of this eval",
        ),
        (
            "eval",
            lambda c: c.update(exclude_folds={"esc50": [1]}),
            r"eval stage config: exclude_folds.esc50\[0\]: expected a string",
        ),
        (
            "eval",
            lambda c: c["runtime"].update(threads="2"),
            "eval stage config: runtime.threads: expected an integer",
        ),
    ],
)
def test_a_bad_config_names_the_stage_kind_and_the_field(demo, kind, change, message):
    with pytest.raises(ConfigError, match=message):
        parse(kind, _broken(demo[1], kind, change))


def test_run_stage_refuses_a_bad_config_before_it_makes_the_output(demo, tmp_path):
    config = _broken(demo[1], "eval", lambda c: c["data"].pop("tasks"))
    with pytest.raises(ConfigError, match="eval stage config: data.tasks: required"):
        pipeline.run_stage("eval", config, {}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_curate_volatile_fields_are_the_sweeps():
    """chunk stays out of curate keys because CurateConfig marks what CurateSpec marks."""
    assert C.volatile_fields(CurateConfig) == C.volatile_fields(CurateSpec) == {"chunk"}


def test_a_hand_job_stage_keeps_the_stream_of_its_whole_config():
    job = C.to_dict(C.TrainJob(out="runs/t")) | {"runtime": {"cache_dir": "c", "key": "old"}}
    whole = stream_id({k: v for k, v in job.items() if k != "runtime"})
    for kind in ("teacher", "eval"):
        view = jobs.stage_view(kind, job)
        assert view["runtime"] == {"cache_dir": "c", "key": whole}
        assert "out" not in view and ("train" in view) == (kind == "teacher")
        assert parse(kind, view).stream == whole


def test_eval_folds_enter_the_key_only_when_set(demo):
    spec, plan = demo
    runtime = parse("eval", _first(plan, "eval")).runtime
    tasks = list(spec.data.tasks)
    prints = defaultdict(lambda: "fp")
    base = _eval_config(spec, tasks, runtime, prints)
    planned = next(s for s in plan.stages.values() if s.kind == "eval")  # the first teacher's
    assert "folds" not in base.to_dict() and "exclude_folds" not in base.to_dict()
    assert stage_key("eval", base.to_key(), planned.inputs) == planned.key
    folded = _eval_config(spec, tasks, runtime, prints, folds={tasks[0]: [1, "2"]})
    assert folded.to_dict()["folds"] == {tasks[0]: ["1", "2"]}
    assert "exclude_folds" not in folded.to_dict()
    excluded = _eval_config(spec, tasks, runtime, prints, exclude_folds={tasks[0]: ["1"]})
    keys = {stage_key("eval", c.to_key(), {}) for c in (base, folded, excluded)}
    assert len(keys) == 3


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world") / "world"
    synthworld.generate(root, scale="tiny", seed=0)
    return root


def _eval(world, out: Path, **folds) -> dict:
    """A real eval of esc50 with the untrained tiny towers (the same ones every call: the
    stream is runtime.key), no retrieval (no teacher datasets)."""
    front = C.FrontendConfig(16000, 1.0, 512, 512, 320, 32, f_max=8000)
    model = C.ModelConfig(audio="small_cnn", audio_width=8, text="minilm", text_pooling="mean")
    config = {
        "data": {"root": str(world), "tasks": ["esc50"]},
        "frontend": C.to_dict(front),
        "model": C.to_dict(model) | {"dim": 32},
        "runtime": {"key": "fold-test"},
    }
    result = pipeline.run_stage("eval", config | folds, {}, out)
    assert json.loads((out / "metrics.json").read_text()) == result
    return result


def test_eval_folds_restrict_the_clips_evaluated(world, tmp_path):
    records = pipeline.task_manifest({"root": str(world)}, "esc50").records
    per_fold = {f: sum(r.fold == f for r in records) for f in {r.fold for r in records}}
    assert len(per_fold) > 2
    full = _eval(world, tmp_path / "all")
    assert "folds_evaluated" not in full and full["esc50"]["n"] == len(records)

    only = _eval(
        world, tmp_path / "only", folds={"esc50": ["1", "2"]}, exclude_folds={"esc50": ["2"]}
    )
    assert only["esc50"]["n"] == per_fold["1"]
    assert only["folds_evaluated"] == {"esc50": ["1"]}
    # The same clips as in the full eval, and the same predictions on them.
    assert only["esc50"]["per_fold"] == {"1": full["esc50"]["per_fold"]["1"]}

    rest = _eval(world, tmp_path / "rest", exclude_folds={"esc50": ["1"]})
    assert rest["esc50"]["n"] == len(records) - per_fold["1"]
    assert rest["folds_evaluated"]["esc50"] == [f for f in full["esc50"]["per_fold"] if f != "1"]

    with pytest.raises(UserError, match="leave no clip of esc50 to evaluate; its folds are: 1"):
        _eval(world, tmp_path / "none", folds={"esc50": ["99"]})
