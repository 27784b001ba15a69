"""W&B tracking, offline and for real: runs are written by wandb and read back from their
.wandb files (a LevelDB-style log of protobuf records, read by `records` below).

The stage function is a stand-in (FakeStages) for clapsweep.pipeline.run_stage, which trains
models for minutes; it reports two training steps and returns a result like a real stage's.
`clapsweep sync` is tested without the network: its command and its error without a key.
"""

import argparse
import json
import struct
import time
from pathlib import Path

import pytest
import yaml
from conftest import stub_data_root

from clapsweep import cli
from clapsweep.cli import sweep as commands
from clapsweep.errors import UserError
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.run import make_tracker, run_sweep
from clapsweep.recipe.spec import load_spec
from clapsweep.sweep.executor import Tracker
from clapsweep.sweep.sync import offline_runs, sync_command, sync_sweep
from clapsweep.sweep.tracking import WandbTracker, offline_run_folders, run_id

FAKE_KEY = "feedface" * 5  # API-key shaped (40 hex digits); must never land in a file


class FakeStages:
    """Stand-in for run_stage (see the module docstring); fails the student once if asked."""

    def __init__(self, fail_student: bool = False) -> None:
        self.fail_student = fail_student

    def __call__(self, kind, config, inputs, out, report=None):
        report({"step": 1, "loss": 0.5})
        if kind == "student" and self.fail_student:
            raise UserError("student interrupted")
        report({"step": 2, "loss": 0.25})
        if kind == "curate":
            return {"pairs": 7, "captions": 3}
        return {"accuracy": {"esc50": 0.5, "us8k": 0.75}}


class EvalStages(FakeStages):
    """FakeStages whose eval stages report and return what pipeline.stage_eval does: one
    {"task": t, "accuracy": a} event per task, then {task: {accuracy, n, per_fold}}."""

    ACCURACY = {"esc50": 0.5, "us8k": 0.75}

    def __call__(self, kind, config, inputs, out, report=None):
        if kind != "eval":
            return super().__call__(kind, config, inputs, out, report)
        result = {}
        for task in config["data"]["tasks"]:
            a = self.ACCURACY[task]
            result[task] = {"accuracy": a, "n": 8, "per_fold": {"1": a}}
            report({"task": task, "accuracy": a})
        return result


@pytest.fixture(autouse=True)
def wandb_env(monkeypatch, tmp_path):
    """The tracker sets WANDB_* in this process: restore them after each test. A fake key is
    in the environment, as a user's would be."""
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "unused"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


DU_SL = {"name": "DU+SL", "strategy": "du", "sigma": 0.3, "beta": 0.4}


def write_spec(tmp_path: Path, rows: tuple = (DU_SL,), **wandb) -> Path:
    data = stub_data_root(tmp_path / "data")
    spec = {
        "name": "track",
        "workdir": str(tmp_path / "work"),
        "data": {"root": str(data), "tasks": ["esc50", "us8k"]},
        "student": {"replay": 0.25},
        "grid": {"seed": [3], "rows": list(rows)},
        "tracking": {"wandb": {"enabled": True, "project": "clapsweep-test"} | wandb},
    }
    path = tmp_path / "track.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# ----------------------------------------------------------------------------- reading runs


def records(path: Path):
    """The protobuf records of a .wandb file: a 7-byte header (':W&B', magic, version), then
    32 KiB blocks of chunks (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, buf = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the rest of a block too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 or pos + 7 + length > len(data):  # the end, or a chunk being written
            break
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record


def read_run(folder: Path) -> dict:
    """id, group, job_type, name, config, history rows, final summary and exit code.

    wandb's service process may still be writing the file when run.finish() has returned:
    wait (up to 30 s) until it holds the run's exit record."""
    deadline = time.time() + 30
    while (run := _parse_run(folder))["exit_code"] is None and time.time() < deadline:
        time.sleep(0.2)
    return run


def _parse_run(folder: Path) -> dict:
    (path,) = folder.glob("*.wandb")
    run = {"history": [], "summary": {}, "exit_code": None}
    for r in records(path):
        kind = r.WhichOneof("record_type")
        if kind == "run":
            run |= {
                "id": r.run.run_id,
                "group": r.run.run_group,
                "job_type": r.run.job_type,
                "name": r.run.display_name,
                "config": {u.key: json.loads(u.value_json) for u in r.run.config.update},
            }
        elif kind == "history":
            row = {
                "/".join(i.nested_key or [i.key]): json.loads(i.value_json) for i in r.history.item
            }
            run["history"].append({k: v for k, v in row.items() if not k.startswith("_")})
        elif kind == "summary":
            for u in r.summary.update:
                run["summary"]["/".join(u.nested_key or [u.key])] = json.loads(u.value_json)
        elif kind == "exit":
            run["exit_code"] = r.exit.exit_code
    return run


def all_runs(workdir) -> list[dict]:
    return [read_run(p) | {"folder": p} for p in offline_runs(workdir)]


# ----------------------------------------------------------------------------- tests


def test_offline_runs_carry_group_config_steps_and_summary(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    plan = build_plan(spec)
    # teacher, its eval, embed, DU curation, the DU+SL student and its eval
    assert len(plan.stages) == 6
    summary = run_sweep(spec, stage_fn=FakeStages())
    assert summary["stages_executed"] == 6
    runs = all_runs(spec.workdir)
    stage_runs = {r["name"]: r for r in runs if r["job_type"] != "summary"}
    assert set(stage_runs) == set(plan.stages)
    for name, run in stage_runs.items():
        stage = plan.stages[name]
        assert run["id"] == f"track-{name}"
        assert run["group"] == "track"
        assert run["job_type"] == stage.kind
        assert run["history"] == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
        assert run["exit_code"] == 0
        assert run["config"]["stage"]["key"] == stage.key
        assert run["config"]["seed"] == 3 and run["config"]["fraction"] == 1.0

    (student,) = [r for r in stage_runs.values() if r["job_type"] == "student"]
    config = student["config"]
    assert (config["row"], config["strategy"], config["task"]) == ("DU+SL", "du", "all")
    assert (config["sigma"], config["beta"], config["replay"]) == (0.3, 0.4, 0.25)
    assert config["train"]["beta"] == 0.4  # the stage config itself is there too
    assert student["summary"]["accuracy"] == {"esc50": 0.5, "us8k": 0.75}
    (curate,) = [r for r in stage_runs.values() if r["job_type"] == "curate"]
    assert (curate["summary"]["pairs"], curate["summary"]["captions"]) == (7, 3)
    # The teacher serves the teacher row and the DU+SL trial: what they do not share (row,
    # sigma, beta, ...) is no key of its own, only in the trials listed under `users`.
    (teacher,) = [r for r in stage_runs.values() if r["job_type"] == "teacher"]
    assert not {"row", "strategy", "sigma", "beta", "replay"} & set(teacher["config"])
    assert [u["row"] for u in teacher["config"]["users"]] == ["teacher", "DU+SL"]
    assert teacher["config"]["task"] == "all"  # both trials are over every task

    (sweep_run,) = [r for r in runs if r["job_type"] == "summary"]
    assert sweep_run["id"] == "track-summary"
    assert sweep_run["summary"]["stages_executed"] == 6
    assert sweep_run["summary"]["failures"] == []


def test_resumed_stage_continues_its_run_and_no_key_is_written(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    summary = run_sweep(spec, stage_fn=FakeStages(fail_student=True))
    assert summary["stages_failed"] == 1
    failed = [r for r in all_runs(spec.workdir) if r["job_type"] == "student"]
    assert len(failed) == 1
    assert failed[0]["exit_code"] == 1
    assert failed[0]["summary"]["error"] == "student interrupted"

    run_sweep(spec, stage_fn=FakeStages())
    students = [r for r in all_runs(spec.workdir) if r["job_type"] == "student"]
    # Two attempts, two offline folders, one run id: W&B appends the second to the first.
    assert len(students) == 2
    assert students[0]["id"] == students[1]["id"] == failed[0]["id"]
    assert students[1]["exit_code"] == 0
    ids = {r["id"] for r in all_runs(spec.workdir)}
    assert len(ids) == 6 + 1  # one per stage and the sweep's summary run

    # Nothing left to do: no new runs at all, not even a summary.
    before = len(offline_runs(spec.workdir))
    assert run_sweep(spec, stage_fn=FakeStages())["stages_executed"] == 0
    assert len(offline_runs(spec.workdir)) == before

    files = [p for p in Path(spec.workdir).rglob("*") if p.is_file()]
    assert len(files) > 20
    for path in files:
        assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_log_tables_writes_them_to_the_summary_run(tmp_path):
    spec = load_spec(write_spec(tmp_path))
    spec.workdir = str(tmp_path / "tables")
    WandbTracker(spec).log_tables({"table2": (["row", "esc50"], [["DU", 0.5], ["DS", 0.25]])})
    (run,) = all_runs(spec.workdir)
    assert run["id"] == run_id("track", "summary") == "track-summary"
    (row,) = run["history"]
    assert (row["table2/_type"], row["table2/nrows"], row["table2/ncols"]) == ("table-file", 2, 2)
    table = json.loads((run["folder"] / "files" / row["table2/path"]).read_text())
    assert table["columns"] == ["row", "esc50"]
    assert table["data"] == [["DU", 0.5], ["DS", 0.25]]


def test_tracking_off_writes_nothing(tmp_path):
    spec = load_spec(write_spec(tmp_path, enabled=False))
    assert type(make_tracker(spec)) is Tracker
    spec = load_spec(write_spec(tmp_path, mode="disabled"))
    run_sweep(spec, stage_fn=FakeStages())
    assert not (Path(spec.workdir) / "wandb").exists()
    args = argparse.Namespace(sweep=str(write_spec(tmp_path)), no_track=True)
    assert commands.load_with_overrides(args).tracking.wandb.enabled is False
    assert cli._parser().parse_args(["run", "x.yaml", "--no-track"]).no_track is True


def test_online_without_a_key_is_refused_before_running(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY")
    spec = load_spec(write_spec(tmp_path, mode="online"))
    with pytest.raises(UserError, match="online needs a W&B API key"):
        make_tracker(spec)


def test_sync_command_and_its_errors(tmp_path, monkeypatch, capsys):
    spec_path = write_spec(tmp_path)
    spec = load_spec(spec_path)
    # No runs yet: one clear message, exit 2.
    assert cli.main(["sync", str(spec_path)]) == 2
    assert "no offline W&B runs under" in capsys.readouterr().err

    runs = [
        Path(spec.workdir) / "wandb" / "wandb" / f"offline-run-2026010{i}_000000-x" for i in (2, 1)
    ]
    for run in runs:
        run.mkdir(parents=True)
    (runs[0] / "run-x.wandb.synced").write_text("")
    assert offline_runs(spec.workdir) == [runs[1], runs[0]]  # oldest first
    command = sync_command([runs[1]])
    assert command[-2:] == ["sync", str(runs[1])]
    assert Path(command[0]).name == "wandb" and Path(command[0]).is_file()
    assert sync_sweep(spec, dry_run=True, say=lambda line: None) == [runs[1]]  # not the synced

    monkeypatch.delenv("WANDB_API_KEY")
    assert cli.main(["sync", str(spec_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clapsweep: error: sync: no W&B API key; run `wandb login`")
    assert "Traceback" not in err


def test_eval_metrics_are_logged_under_task_keys(tmp_path):
    ds = {"name": "DS", "strategy": "ds", "sigma_ds": 0.4}
    spec = load_spec(write_spec(tmp_path, rows=(DU_SL, ds)))
    run_sweep(spec, stage_fn=EvalStages())
    evals = [r for r in all_runs(spec.workdir) if r["job_type"] == "eval"]
    multi = [r for r in evals if r["config"]["task"] == "all"]
    single = {r["config"]["task"]: r for r in evals if r["config"]["task"] != "all"}
    assert len(multi) == 2 and set(single) == {"esc50", "us8k"}  # teacher, DU+SL; DS per task
    for run in multi:
        assert run["history"] == [{"accuracy/esc50": 0.5}, {"accuracy/us8k": 0.75}]
        summary = run["summary"]
        # No top-level value of one task: neither the last event's nor the result's.
        assert not {"accuracy", "task", "esc50", "us8k", "n", "per_fold"} & set(summary)
        assert summary["accuracy/esc50"] == 0.5 and summary["accuracy/us8k"] == 0.75
        assert summary["n/esc50"] == 8 and summary["per_fold/us8k/1"] == 0.75
    # An eval of one task has its value under its task's key only: a chart of a bare
    # `accuracy` would put the esc50 and the us8k evals on one axis.
    for task, run in single.items():
        a = EvalStages.ACCURACY[task]
        assert run["history"] == [{f"accuracy/{task}": a}]
        assert run["summary"][f"accuracy/{task}"] == a
        other = ({"esc50", "us8k"} - {task}).pop()
        assert not {"accuracy", f"accuracy/{other}"} & set(run["summary"])


def test_reports_and_the_driver_keep_one_summary_run(tmp_path, capsys):
    spec = load_spec(write_spec(tmp_path))
    wandb_dir = Path(spec.workdir) / "wandb"
    summary = run_sweep(spec, stage_fn=EvalStages())
    stage_folders = [p for p in offline_runs(spec.workdir) if "summary" not in p.name]
    assert len(stage_folders) == 6
    (first,) = offline_run_folders(wandb_dir, "track-summary")  # the driver's (close)

    def summary_folder() -> Path:
        (folder,) = offline_run_folders(wandb_dir, "track-summary")
        assert sorted(offline_runs(spec.workdir)) == sorted([*stage_folders, folder])
        return folder

    report = ["report", "--table", "2", "--sweep", spec.workdir, "--format", "csv"]
    assert cli.main(report) == 0  # without --wandb: nothing is written
    assert summary_folder() == first
    assert "W&B" not in capsys.readouterr().err
    for extra in ([], [], ["--by", "sigma"]):  # the last report changes the row names
        assert cli.main([*report, "--wandb", *extra]) == 0
        assert "logged table2 to the summary run track-summary" in capsys.readouterr().err
        summary_folder()
    WandbTracker(spec).close(summary)  # the driver again, e.g. after a rerun
    folder = summary_folder()  # (wandb may reuse the name of a folder removed before)

    run = read_run(folder)
    assert run["id"] == "track-summary" and run["exit_code"] == 0
    assert run["summary"]["stages_executed"] == 6 and run["summary"]["failures"] == []
    (row,) = run["history"]
    table = json.loads((folder / "files" / row["table2/path"]).read_text())
    assert table["columns"][:6] == ["table", "row", "column", "mean", "std", "n"]
    names = {line[1] for line in table["data"]}
    assert "OC, DU+SL [sigma=0.3]" in names and "OC, DU+SL" not in names  # the latest
    du = next(line for line in table["data"] if line[1] == "OC, DU+SL [sigma=0.3]")
    assert du[2:4] == ["ESC-50", 50.0] and du[-1] == "3"  # its seed


def test_offline_run_folders_match_the_run_id_only(tmp_path):
    runs = tmp_path / "wandb"
    names = [
        "offline-run-20260101_000000-s-summary",
        "offline-run-20260101_000000-s-summary-1",  # wandb's suffix for a name taken
        "offline-run-20260101_000001-s-summary-x",  # another id
        "offline-run-20260101_000002-t-s-summary",
        "run-20260101_000003-s-summary",  # online
    ]
    for name in names:
        (runs / name).mkdir(parents=True)
    (runs / "offline-run-20260101_000000-s-summary-1" / "run-s-summary.wandb").write_text("")
    found = offline_run_folders(tmp_path, "s-summary")
    assert [p.name for p in found] == names[:2]


def test_swept_values_are_scalar_keys_only_where_the_trials_share_them(tmp_path):
    """A DU curation serves DU (beta 0) and DU+SL (beta 0.5): beta is each student's, not
    the curation's, so only the students have a beta key; nothing swept is a list."""
    du = {"name": "DU", "strategy": "du", "sigma": 0.3}
    du_sl = {"name": "DU+SL", "strategy": "du", "sigma": 0.3, "beta": 0.5}
    spec = load_spec(write_spec(tmp_path, rows=(du, du_sl)))
    run_sweep(spec, stage_fn=FakeStages())
    runs = {r["name"]: r for r in all_runs(spec.workdir) if r["job_type"] != "summary"}
    assert len(runs) == len(build_plan(spec).stages) == 8
    swept = {"row", "strategy", "sigma", "beta", "replay", "fraction", "seed", "task"}
    for run in runs.values():
        config = run["config"]
        assert not [k for k in swept & set(config) if isinstance(config[k], (list, dict))]
        assert (config["seed"], config["fraction"], config["task"]) == (3, 1.0, "all")

    def of(kind: str) -> list[dict]:
        return sorted((r["config"] for r in runs.values() if r["job_type"] == kind), key=str)

    (curate,) = of("curate")
    assert "beta" not in curate and "row" not in curate
    assert (curate["strategy"], curate["sigma"], curate["replay"]) == ("du", 0.3, 0.25)
    assert [u["swept"]["beta"] for u in curate["users"]] == [0.0, 0.5]
    students = {c["row"]: c for c in of("student")}
    assert {row: c["beta"] for row, c in students.items()} == {"DU": 0.0, "DU+SL": 0.5}
    assert all(c["sigma"] == 0.3 and c["strategy"] == "du" for c in students.values())
    evals = {c.get("row"): c for c in of("eval")}  # the teacher's and each student's
    assert set(evals) == {"teacher", "DU", "DU+SL"} and evals["DU+SL"]["beta"] == 0.5
    assert not {"sigma", "beta", "strategy"} & set(evals["teacher"])
    for kind in ("teacher", "embed"):
        (config,) = of(kind)
        assert not {"row", "strategy", "sigma", "beta"} & set(config), kind


def test_a_stage_config_key_wins_over_a_swept_value_of_its_name(tmp_path):
    """The DS curation an ADS row reads says strategy ds, even where only ADS reads it;
    the per-task threshold of the trial's task is a scalar. (run_config is what the runs get,
    see the tests above; no W&B run is written here.)"""
    ads = {"name": "ADS", "strategy": "ads", "sigma": 0.3, "sigma_ds": {"esc50": 0.4, "us8k": 0.5}}
    spec = load_spec(write_spec(tmp_path, rows=(ads,)))
    tracker = WandbTracker(spec)
    curations = [s for s in build_plan(spec).stages.values() if s.kind == "curate"]
    assert len(curations) == 4  # DS and ADS, per task
    for stage in curations:
        config = tracker.run_config(stage)
        assert config["strategy"] == stage.config["strategy"]
        assert config["row"] == "ADS" and config["task"] == stage.config["task"]
        assert config["sigma_ds"] == {"esc50": 0.4, "us8k": 0.5}[config["task"]]
    assert {c.config["strategy"] for c in curations} == {"ds", "ads"}
