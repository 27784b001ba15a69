"""User-defined tasks (data.custom_tasks): the CSV reader's errors, the spec checks, stage keys
(built-in sweeps keep theirs) and one sweep end to end on the tiny synthworld."""

import csv
import json
import wave
from pathlib import Path

import pytest

from clapsweep.cli import main
from clapsweep.data.custom import (
    custom_task_fingerprint,
    load_custom_task,
    read_rows,
    task_prompt,
)
from clapsweep.data.manifest import DatasetError
from clapsweep.errors import ConfigError
from clapsweep.recipe.plan import build_plan
from clapsweep.recipe.run import run_sweep
from clapsweep.recipe.spec import load_spec

SMOKE = Path(__file__).parents[1] / "sweeps" / "smoke.yaml"
BUILTIN_PRINTS = ["clotho", "audiocaps", "fsd50k", "macs", "audioset", "esc50", "us8k", "tut17"]


def _wav(path: Path, seconds: float = 0.2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x01\x00" * int(16000 * seconds))
    return path


def _csv(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the CSV reader


def test_rows_default_to_fold_1_and_missing_files_are_skipped(tmp_path):
    _wav(tmp_path / "audio" / "a.wav")
    _wav(tmp_path / "audio" / "b.wav")
    (tmp_path / "audio" / "empty.wav").write_bytes(b"")
    path = _csv(
        tmp_path / "birds.csv",
        "path,label\naudio/a.wav,crow\naudio/b.wav,owl\naudio/gone.wav,owl\naudio/empty.wav,owl\n",
    )
    assert read_rows("birds", path)[0] == (2, "audio/a.wav", "crow", "1")
    m = load_custom_task("birds", path)
    assert [r.id for r in m.records] == ["birds/audio/a.wav", "birds/audio/b.wav"]
    assert [r.fold for r in m.records] == ["1", "1"] and m.records[1].labels == ["owl"]
    assert m.records[0].path == str(tmp_path / "audio" / "a.wav")
    assert m.skipped_counts() == {"missing": 1, "empty": 1}


def test_a_fold_column_is_read(tmp_path):
    _wav(tmp_path / "a.wav")
    path = _csv(tmp_path / "t.csv", "label,path,fold\ncrow,a.wav,3\n")
    assert load_custom_task("t", path).records[0].fold == "3"


@pytest.mark.parametrize(
    "text, message",
    [
        ("path,label,split\na.wav,crow,1\n", "line 1: unknown column 'split'"),
        ("path,fold\na.wav,1\n", "line 1: no column 'label'"),
        ("path,label,label\na.wav,crow,owl\n", "line 1: a column is named twice"),
        ("path,label\na.wav,crow\nb.wav\n", "line 3: 1 field(s), expected 2"),
        ("path,label\na.wav,crow\n,owl\n", "line 3: empty path"),
        ("path,label\n/abs/a.wav,crow\n", "line 2: path '/abs/a.wav' is absolute"),
        ("path,label\n", "lists no clips"),
        ("", "line 1: no header"),
        (b"path,label\na.wav,caf\xe9\n", "is not UTF-8 text (line 2: byte 0xe9)"),
    ],
)
def test_csv_errors_name_the_file_and_line(tmp_path, text, message):
    path = _csv(tmp_path / "birds.csv", text)
    with pytest.raises(DatasetError) as e:
        read_rows("birds", path)
    assert str(e.value).startswith(f"birds: {path}"), str(e.value)
    assert message in str(e.value), str(e.value)


def test_a_missing_csv_is_named(tmp_path):
    with pytest.raises(DatasetError, match="birds: .*nope.csv not found"):
        read_rows("birds", tmp_path / "nope.csv")


def test_the_fingerprint_covers_the_csv_and_the_audio_list_not_the_location(tmp_path):
    for folder in ("one", "two"):
        _wav(tmp_path / folder / "a.wav")
        _csv(tmp_path / folder / "t.csv", "path,label\na.wav,crow\n")
    one = custom_task_fingerprint("t", tmp_path / "one" / "t.csv")
    assert one == custom_task_fingerprint("t", tmp_path / "two" / "t.csv")
    _wav(tmp_path / "two" / "a.wav", seconds=0.3)  # re-encoded: another size
    assert custom_task_fingerprint("t", tmp_path / "two" / "t.csv") != one
    _csv(tmp_path / "one" / "t.csv", "path,label\na.wav,raven\n")
    assert custom_task_fingerprint("t", tmp_path / "one" / "t.csv") != one


def test_prompts():
    assert task_prompt("the call of a {label}", "crow") == "the call of a crow"
    assert task_prompt(None, "dog_bark") == "this is a sound of dog bark"


# ----------------------------------------------------------------------------- the spec


def _sweep(tmp_path: Path, custom: str, tasks: str, rows: str | None = None) -> Path:
    data = tmp_path / "data"
    text = SMOKE.read_text().replace("${CLAPSWEEP_DATA:-data/synthworld-tiny}", str(data))
    text = text.replace("tasks: [esc50, us8k, tut17]", f"tasks: {tasks}\n{custom}")
    if rows is not None:
        text = text.split("grid:")[0] + "grid:\n  seed: [0]\n  teacher_fraction: [1.0]\n"
        text += "  rows:\n" + rows
    path = tmp_path / "sweep.yaml"
    path.write_text(text + f"workdir: {tmp_path / 'work'}\ntracking: {{}}\n")
    return path


def _custom(csv_path: str, prompt: str | None = None) -> str:
    extra = f", prompt: {json.dumps(prompt)}" if prompt is not None else ""
    return f"  custom_tasks:\n    birds: {{csv: {csv_path}{extra}}}"


@pytest.mark.parametrize(
    "custom, tasks, message",
    [
        (_custom("b.csv", "a bird"), "[birds]", "data.custom_tasks.birds.prompt: expected a "),
        (
            "  custom_tasks:\n    esc50: {csv: b.csv}",
            "[esc50]",
            "data.custom_tasks.esc50: 'esc50' is a built-in dataset",
        ),
        (_custom("b.csv"), "[esc50, owls]", "data.tasks[1]: expected one of 'esc50', 'us8k'"),
        ("  custom_tasks:\n    birds: {csv: b.csv, lang: en}", "[birds]", "lang: unknown key"),
    ],
)
def test_spec_errors(tmp_path, custom, tasks, message):
    with pytest.raises(ConfigError) as e:
        load_spec(_sweep(tmp_path, custom, tasks))
    assert message in str(e.value), str(e.value)


def _plan(path: Path, prints=None):
    spec = load_spec(path)
    base = dict.fromkeys(BUILTIN_PRINTS, "fp")
    return spec, build_plan(spec, prints=base | (prints or {}))


def test_built_in_sweeps_keep_their_keys(tmp_path):
    """A custom task defined but not used changes nothing; the smoke sweep's stage names are
    the ones it had before custom tasks existed."""
    plain = _plan(_sweep(tmp_path, "", "[esc50, us8k, tut17]"))[1]
    defined = _plan(_sweep(tmp_path, _custom("b.csv"), "[esc50, us8k, tut17]"))[1]
    assert list(plain.stages) == list(defined.stages)
    assert all("custom_tasks" not in json.dumps(s.config) for s in plain.stages.values())
    shipped = build_plan(load_spec(SMOKE), prints=dict.fromkeys(BUILTIN_PRINTS, "fp"))
    assert sorted(shipped.stages)[:3] == [
        "curate-14b4320ec81d067d",
        "curate-17c2cea41efadc2d",
        "curate-1e3593b19d56cb09",
    ]
    assert len(shipped.stages) == 44


def test_custom_task_keys_follow_fingerprint_and_prompt_not_location(tmp_path):
    def names(custom, fp="a"):
        spec, plan = _plan(_sweep(tmp_path, custom, "[esc50, birds]"), {"birds": fp})
        return spec, plan, {s.kind: [] for s in plan.stages.values()} | _by_kind(plan)

    spec, plan, base = names(_custom("b.csv"))
    embed = next(s for s in plan.stages.values() if s.kind == "embed")
    assert embed.config["data"]["custom_tasks"] == {
        "birds": {"csv": str(Path.cwd() / "b.csv"), "prompt": None}
    }
    curate = [s for s in plan.stages.values() if s.kind == "curate"]
    assert all(
        c.config["custom_tasks"] == {"birds": {"csv": str(Path.cwd() / "b.csv")}} for c in curate
    )
    assert any(c.config.get("task") == "birds" for c in curate)
    _, _, moved = names(_custom(str(tmp_path / "elsewhere" / "b.csv")))
    assert moved == base  # the CSV's location is not in a key
    _, _, prompted = names(_custom("b.csv", "a {label} call"))
    assert prompted["teacher"] == base["teacher"]
    assert not set(prompted["embed"]) & set(base["embed"])
    assert not set(prompted["eval"]) & set(base["eval"])
    _, _, edited = names(_custom("b.csv"), fp="b")
    assert edited["teacher"] == base["teacher"] and edited["embed"] != base["embed"]


def _by_kind(plan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in plan.stages.values():
        out.setdefault(s.kind, []).append(s.name)
    return {k: sorted(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_a_custom_task_runs_from_teacher_to_the_report(tmp_path, capsys):
    from clapsweep.data import synthworld

    data = tmp_path / "data"
    synthworld.generate(data, scale="tiny", seed=0)
    with open(data / "esc50" / "meta" / "esc50.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = sorted({r["category"] for r in rows})[:2]
    lines = ["path,label,fold"] + [
        f"../data/esc50/audio/{r['filename']},{r['category']},{r['fold']}"
        for r in rows
        if r["category"] in labels
    ]
    _csv(tmp_path / "birds" / "birds.csv", "\n".join(lines) + "\n")
    path = _sweep(
        tmp_path,
        _custom(str(tmp_path / "birds" / "birds.csv"), "the sound of a {label}"),
        "[birds]",
        '    - {name: "DS+SL", strategy: ds, sigma_ds: 0.1, beta: 0.3, replay: 0.5}\n',
    )
    spec = load_spec(path)
    spec.tracking.wandb.enabled = False
    summary = run_sweep(spec)
    assert summary["stages_failed"] == 0, summary["failures"]
    stages = Path(spec.workdir, "stages")
    (embed,) = stages.glob("embed-*")
    assert json.loads((embed / "prompts.json").read_text()) == {"birds": labels}
    (curated,) = stages.glob("curate-*")
    assert json.loads((curated / "meta.json").read_text())["result"]["task"] == "birds"
    capsys.readouterr()
    code = main(["report", "--table", "2", "--sweep", str(path), "--format", "json"])
    assert code == 0, capsys.readouterr().err
    table = json.loads(capsys.readouterr().out)
    assert "birds" in table["columns"]
    ran = {r["key"]: r["cells"]["birds"] for r in table["rows"] if r["cells"]["birds"].get("n")}
    assert set(ran) == {"teacher", "DS+SL"}, table["rows"]
    assert ran["DS+SL"]["n"] == 1 and ran["DS+SL"]["mean"] is not None
