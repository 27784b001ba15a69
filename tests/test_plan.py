"""Planning: the grid expands into a DAG in which identical stages are merged."""

import copy
import dataclasses
import hashlib
import shutil
from collections import Counter

import pytest

from clapsweep.errors import ConfigError
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.spec import parse_spec
from clapsweep.recipe.stage_config import key_config
from clapsweep.sweep.plan import stage_key

TASKS = ["esc50", "us8k", "tut17"]
SIGMA_DS = {"esc50": 0.7, "us8k": 0.6, "tut17": 0.675}
SIGMA_ADS = {"esc50": 0.7, "us8k": 0.7, "tut17": 0.65}

TABLE2 = {
    "name": "table2",
    "workdir": "/runs/table2",
    "data": {"root": "/data", "tasks": TASKS},
    "train": {"epochs": 20, "num_workers": 4},
    "student": {"epochs": 10},
    "grid": {
        "seed": [0, 1, 2],
        "teacher_fraction": [1.0],
        "rows": [
            {"name": "DU", "strategy": "du", "sigma": 0.7},
            {"name": "DU+SL", "strategy": "du", "sigma": 0.7, "beta": 0.3},
            {"name": "DS", "strategy": "ds", "sigma_ds": SIGMA_DS},
            {"name": "DS+SL", "strategy": "ds", "sigma_ds": SIGMA_DS, "beta": 0.3},
            {"name": "ADS", "strategy": "ads", "sigma_ds": SIGMA_DS, "sigma": SIGMA_ADS},
            {
                "name": "ADS+SL",
                "strategy": "ads",
                "sigma_ds": SIGMA_DS,
                "sigma": SIGMA_ADS,
                "beta": 0.3,
                "replay": 0.5,
            },
        ],
    },
}


def plan_of(data: dict):
    return build_plan(parse_spec(copy.deepcopy(data)))


def by_kind(plan) -> Counter:
    return Counter(s.kind for s in plan.stages.values())


def test_table2_plans_one_teacher_and_one_embed_per_seed():
    plan = plan_of(TABLE2)
    # Per seed, by hand: curate = 1 DU (shared by DU, DU+SL) + 3 DS (one per task, shared by
    # all four DS/ADS rows) + 3 ADS = 7; students = 2 DU + 4 rows x 3 tasks = 14;
    # evals = 1 teacher + 14 students = 15.
    assert by_kind(plan) == {"teacher": 3, "embed": 3, "curate": 21, "student": 42, "eval": 45}
    teachers = [s for s in plan.stages.values() if s.kind == "teacher"]
    assert sorted(s.config["train"]["seed"] for s in teachers) == [0, 1, 2]
    assert all(s.config["train"]["epochs"] == 20 for s in teachers)
    # The teacher of seed 0 serves its own eval row and every row trial of seed 0.
    rows_using = {u["row"] for u in teachers[0].users}
    assert rows_using == {"teacher", "DU", "DU+SL", "DS", "DS+SL", "ADS", "ADS+SL"}


def test_du_rows_with_the_same_sigma_share_their_curation():
    plan = plan_of(TABLE2)
    curates = [
        s for s in plan.stages.values() if s.kind == "curate" and s.config["strategy"] == "du"
    ]
    assert len(curates) == 3  # one per seed
    for c in curates:
        assert {u["row"] for u in c.users} == {"DU", "DU+SL"}
        assert c.config["sigma"] == 0.7 and list(c.inputs) == ["embed"]


def test_students_get_the_right_inputs_and_train_config():
    plan = plan_of(TABLE2)
    students = {}
    for s in plan.stages.values():
        if s.kind == "student":
            (u,) = s.users
            students[(u["row"], u["seed"], tuple(u["tasks"]))] = s
    du = students[("DU+SL", 1, tuple(TASKS))]
    assert set(du.inputs) == {"teacher", "embed", "improvement"}  # DU replays the teacher set
    assert (du.config["train"]["beta"], du.config["train"]["seed"]) == (0.3, 1)
    assert du.config["train"]["epochs"] == 10  # the student overrides
    ads = students[("ADS+SL", 0, ("tut17",))]
    assert set(ads.inputs) == {"teacher", "embed", "improvement", "replay"}
    improvement = plan.stages[ads.inputs["improvement"]]
    replay = plan.stages[ads.inputs["replay"]]
    assert improvement.config["strategy"] == "ads" and improvement.inputs == {
        "embed": ads.inputs["embed"]
    }
    assert (improvement.config["sigma_ds"], improvement.config["sigma"]) == (0.675, 0.65)
    assert (replay.config["strategy"], replay.config["task"], replay.config["sigma_ds"]) == (
        "ds",
        "tut17",
        0.675,
    )
    assert (ads.config["train"]["replay"], ads.config["train"]["beta"]) == (0.5, 0.3)
    plain = students[("DS", 0, ("us8k",))]
    assert plan.stages[plain.inputs["improvement"]].config["sigma_ds"] == 0.6
    assert plain.config["train"]["beta"] == 0.0  # TrainConfig default, row left it unset


def test_eval_stages_carry_row_tasks_seed_fraction():
    plan = plan_of(TABLE2)
    evals = [s for s in plan.stages.values() if s.kind == "eval"]
    teacher_evals = [s for s in evals if s.users[0]["row"] == "teacher"]
    assert len(teacher_evals) == 3
    assert teacher_evals[0].users == [
        {"row": "teacher", "seed": 0, "fraction": 1.0, "tasks": TASKS}
    ]
    assert teacher_evals[0].config["data"]["tasks"] == TASKS
    ds_eval = [s for s in evals if s.users[0]["row"] == "DS" and s.users[0]["seed"] == 2]
    assert sorted(s.users[0]["tasks"][0] for s in ds_eval) == sorted(TASKS)
    assert all(s.config["data"]["tasks"] == s.users[0]["tasks"] for s in ds_eval)


def test_renaming_a_row_keeps_every_key():
    renamed = copy.deepcopy(TABLE2)
    renamed["grid"]["rows"][1]["name"] = "DU + soft labels"
    a, b = plan_of(TABLE2), plan_of(renamed)
    assert list(a.stages) == list(b.stages)
    rows = {u["row"] for s in b.stages.values() for u in s.users}
    assert "DU + soft labels" in rows and "DU+SL" not in rows


def test_keys_change_exactly_where_the_result_can_change():
    base = plan_of(TABLE2)

    def diff(path_value) -> Counter:
        data = copy.deepcopy(TABLE2)
        node = data
        *parents, last = path_value[0]
        for p in parents:
            node = node[p]
        node[last] = path_value[1]
        other = plan_of(data)
        return Counter(base.stages[n].kind for n in set(base.stages) - set(other.stages))

    # Speed knobs and where the runs live do not change any key.
    assert diff((("train", "num_workers"), 0)) == {}
    assert diff((("workdir",), "/elsewhere")) == {}
    assert diff((("curate",), {"chunk": 128})) == {}
    # A student's epochs change the students and their evals, nothing upstream.
    assert diff((("student", "epochs"), 11)) == {"student": 42, "eval": 42}
    # The DU threshold: its 3 curations, 6 students, 6 evals.
    rows = copy.deepcopy(TABLE2["grid"]["rows"])
    for r in rows[:2]:
        r["sigma"] = 0.75
    assert diff((("grid", "rows"), rows)) == {"curate": 3, "student": 6, "eval": 6}
    # The teacher's learning rate: everything.
    assert diff((("train", "lr"), 0.5)) == by_kind(base)


def test_fractions_and_seeds_multiply_teachers():
    data = copy.deepcopy(TABLE2)
    data["grid"]["seed"] = [0]
    data["grid"]["teacher_fraction"] = [1.0, 0.1]
    plan = plan_of(data)
    teachers = [s for s in plan.stages.values() if s.kind == "teacher"]
    assert sorted(s.config["data"]["fraction"] for s in teachers) == [0.1, 1.0]
    assert by_kind(plan)["embed"] == 2


def test_layers_put_every_stage_after_its_inputs():
    plan = plan_of(TABLE2)
    layers = plan.layers()
    depth = {s.name: i for i, layer in enumerate(layers) for s in layer}
    for s in plan.stages.values():
        assert all(depth[n] < depth[s.name] for n in s.inputs.values())
    # teacher | teacher eval, embed | curations | students | their evals
    assert [Counter(s.kind for s in layer) for layer in layers] == [
        {"teacher": 3},
        {"eval": 3, "embed": 3},
        {"curate": 21},
        {"student": 42},
        {"eval": 42},
    ]


def test_msclap_baseline_is_one_eval_without_inputs(tmp_path):
    ckpt = tmp_path / "CLAP_weights_2022.pth"
    ckpt.write_bytes(b"weights")
    data = copy.deepcopy(TABLE2) | {"msclap_checkpoint": str(ckpt)}
    plan = plan_of(data)
    ms = [s for s in plan.stages.values() if s.users[0]["row"] == "msclap"]
    assert len(ms) == 1 and ms[0].kind == "eval" and ms[0].inputs == {}
    assert ms[0].config["msclap_checkpoint"] == str(ckpt)
    assert ms[0].config["checkpoints"] == {"msclap": hashlib.sha256(b"weights").hexdigest()}
    assert ms[0].config["model"]["audio"] == "cnn14"
    # The key follows the file's content, not its path.
    moved = tmp_path / "moved.pth"
    ckpt.rename(moved)
    again = [s for s in plan_of(data | {"msclap_checkpoint": str(moved)}).stages.values()]
    assert ms[0].key in {s.key for s in again}
    moved.write_bytes(b"other weights")
    changed = plan_of(data | {"msclap_checkpoint": str(moved)}).stages.values()
    assert ms[0].key not in {s.key for s in changed}


def test_missing_checkpoint_files_are_config_errors():
    for data, field in (
        (copy.deepcopy(TABLE2) | {"msclap_checkpoint": "/nowhere/ms.pth"}, "msclap_checkpoint"),
        (
            copy.deepcopy(TABLE2) | {"model": {"audio_checkpoint": "/nowhere/cnn14.pth"}},
            "model.audio_checkpoint",
        ),
    ):
        with pytest.raises(ConfigError, match=f"{field}: /nowhere/.* not found"):
            plan_of(data)


def test_stage_key_is_canonical_and_pinned():
    def key(kind: str, config: dict, inputs: dict) -> str:
        return stage_key(kind, key_config(kind, config), inputs)

    a = key("curate", {"sigma": 0.7, "strategy": "du"}, {"embed": "embed-0"})
    b = key("curate", {"strategy": "du", "sigma": 0.7, "runtime": {"x": 1}}, {"embed": "embed-0"})
    assert a == b  # key order and runtime do not matter
    assert len(a) == 16 and int(a, 16) >= 0
    assert key("curate", {"sigma": 0.7, "strategy": "du"}, {"embed": "embed-1"}) != a
    assert key("eval", {"sigma": 0.7, "strategy": "du"}, {"embed": "embed-0"}) != a
    assert a == key("curate", {"sigma": 0.7, "strategy": "du", "chunk": 5}, {"embed": "embed-0"})
    # The engine hashes the key-shaped config as given; a whole config is a caller's mistake.
    with pytest.raises(ValueError, match="to_key"):
        stage_key("curate", {"sigma": 0.7, "runtime": {}}, {})
    # Pinned canonical form: a change here silently invalidates every stored artifact.
    canonical = (
        '{"config":{"sigma":0.7,"strategy":"du"},"inputs":[["embed","embed-0"]],'
        '"kind":"curate","schema":2}'
    )
    assert a == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_row_fractions_limit_where_a_row_runs():
    data = copy.deepcopy(TABLE2)
    data["grid"]["teacher_fraction"] = [1.0, 0.1]
    for row in data["grid"]["rows"]:
        if row["name"] not in ("DU+SL", "ADS+SL"):
            row["fractions"] = [1.0]  # Table 3 has only DU+SL and ADS+SL at 10 %
    plan = plan_of(data)
    # Per seed: fraction 1.0 as in Table 2 (14 students); fraction 0.1: 1 DU+SL + 3 ADS+SL.
    assert by_kind(plan)["student"] == 3 * (14 + 4)
    low = {u["row"] for s in plan.stages.values() for u in s.users if u["fraction"] == 0.1}
    assert low == {"teacher", "DU+SL", "ADS+SL"}
    data["grid"]["rows"][0]["fractions"] = [0.5]
    with pytest.raises(ConfigError, match=r"grid.rows\[0\].fractions\[0\]: 0.5 is not in"):
        plan_of(data)


# ----------------------------------------------------------------------------- keys


def _student_keys(data: dict) -> set[str]:
    return {s.key for s in plan_of(data).stages.values() if s.kind == "student"}


def _perturbed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2 if value else 0.25
    return {"adam": "adamw", "constant": "cosine", "auto": "fp32", "paper": "normalized",
            "teacher": "improvement"}[value]  # fmt: skip


def test_every_result_field_of_the_train_schema_is_in_the_student_key():
    """Derived from TrainConfig itself: a field that changes results cannot be left out of the
    key (or put among the volatile ones) without this failing."""
    from clapsweep.config import TrainConfig, volatile_fields

    assert volatile_fields(TrainConfig) == {"num_workers", "log_every"}  # speed only
    base = _student_keys(TABLE2)
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("seed", "beta", "replay", "soft_target"):
            continue  # set per row and seed; covered below
        data = copy.deepcopy(TABLE2)
        data["student"][f.name] = _perturbed(getattr(TrainConfig(), f.name))
        changed = _student_keys(data)
        if f.name in volatile_fields(TrainConfig):
            assert changed == base, f.name
        else:
            assert not changed & base, f.name


@pytest.mark.parametrize(
    "field,value", [("replay", 0.1), ("beta", 0.2), ("soft_target", "softmax")]
)
def test_rows_that_differ_in_one_setting_plan_different_students(field, value):
    data = copy.deepcopy(TABLE2)
    du = {"name": "DU", "strategy": "du", "sigma": 0.7, "replay": 0.5}
    data["grid"]["rows"] = [du, du | {"name": "DU'", field: value}]
    plan = plan_of(data)
    students = [s for s in plan.stages.values() if s.kind == "student"]
    assert len(students) == 6  # 2 rows x 3 seeds, none merged
    curations = {s.inputs["improvement"] for s in students}
    assert len(curations) == 3  # the same DU set per seed


def test_data_content_is_in_the_keys(tmp_path):
    """Changing a dataset's files changes the keys of the stages that read it, and only those."""
    root = tmp_path / "data"
    for name in ("fsd50k", "clotho", "audiocaps", "macs", "audioset", "esc50", "us8k", "tut17"):
        (root / name).mkdir(parents=True)
        (root / name / "meta.csv").write_text("a,b\n1,2\n")
    data = copy.deepcopy(TABLE2)
    data["data"]["root"] = str(root)
    before = plan_of(data).stages.values()
    (root / "esc50" / "meta.csv").write_text("a,b\n1,3\n")
    after = {s.name for s in plan_of(data).stages.values()}
    changed = [s for s in before if s.name not in after]
    # Every embed reads esc50 (its prompts), and so does everything downstream of it; the
    # teachers and their own evaluations on us8k or tut17 alone do not.
    assert {s.kind for s in changed} >= {"embed", "curate", "student", "eval"}
    assert not any(s.kind == "teacher" for s in changed)
    # The same files under another root: the same keys (and so the same random streams).
    shutil.copytree(root, tmp_path / "moved")
    data["data"]["root"] = str(tmp_path / "moved")
    assert {s.name for s in plan_of(data).stages.values()} == after
