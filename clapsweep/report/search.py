"""`clapsweep report SWEEP --search`: a search's trials, the values it chose per task, and
the chosen row's test accuracy over seeds (clapsweep.recipe.search writes the records)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, TextIO

from clapsweep.errors import UserError
from clapsweep.recipe.search import METRIC
from clapsweep.report.load import Sweep

FORMATS = ("text", "json")
# What clapsweep.recipe.search writes into search.json (and this report reads).
RESULT_KEYS = {"task", "search", "validation_folds", "trials", "best", "seconds"}


def search_report(sweep: Sweep) -> list[dict[str, Any]]:
    """Per searched task: its search.json, and the test accuracy of the chosen values per
    seed (the final run's evals of the row for that task; empty until they ran)."""
    search = sweep.spec.get("search")
    if not isinstance(search, dict):
        raise UserError(f"sweep {sweep.name}: has no search section; --search reports searches")
    folder = sweep.workdir / "search"
    out = []
    for path in sorted(folder.glob("*/search.json")):
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError):
            result = None
        if not isinstance(result, dict) or not RESULT_KEYS <= set(result):
            raise UserError(f"{path}: damaged; delete it and rerun `clapsweep run` to search again")
        result["test"] = _test_accuracy(sweep, search["row"], result["task"])
        out.append(result)
    if not out:
        raise UserError(
            f"sweep {sweep.name}: no finished search in {folder}; run `clapsweep run` first"
        )
    return out


def _test_accuracy(sweep: Sweep, row: str, task: str) -> dict[str, float]:
    """{seed: accuracy} of the row's student evals for `task` alone (the chosen values), at
    the first teacher fraction the row ran at."""
    found: dict[tuple[float, int], float] = {}
    for name, stage in sweep.stages.items():
        if stage["kind"] != "eval" or "model" not in stage["inputs"]:
            continue
        for user in stage["users"]:
            if user.get("row") != row or user.get("tasks") != [task]:
                continue
            state, result = sweep.state(name)
            if state == "done" and task in result:
                found[(user["fraction"], user["seed"])] = 100 * result[task]["accuracy"]
    if not found:
        return {}
    fraction = max(f for f, _ in found)
    return {str(s): a for (f, s), a in sorted(found.items()) if f == fraction}


def check_search_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UserError(f"--search --format {fmt}: expected {' or '.join(FORMATS)}")


def render_search(results: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        out.write(json.dumps(results, indent=1) + "\n")
        return
    for r in results:
        _render_task(r, out)


def _render_task(r: dict[str, Any], out: TextIO) -> None:
    axes = list(r["best"]["values"])
    folds = ", ".join(r["validation_folds"])
    print(
        f"search {r['search']}: {len(r['trials'])} trials on {r['task']} validation fold(s) "
        f"{folds}, {r['seconds']:.0f} s",
        file=out,
    )
    header = ["trial", *axes, "val acc %", "epochs", "status"]
    rows = []
    for t in sorted(r["trials"], key=lambda t: -(t[METRIC] or 0)):
        acc = "-" if t[METRIC] is None else f"{100 * t[METRIC]:.1f}"
        values = [_show(t["values"].get(a)) for a in axes]
        rows.append([t["trial"], *values, acc, str(t["epochs"]), t["status"]])
    _table(header, rows, out)
    best = r["best"]
    chosen = ", ".join(f"{a}={_show(v)}" for a, v in best["values"].items())
    print(f"chosen: {chosen} (trial {best['trial']}, val {100 * best[METRIC]:.1f}%)", file=out)
    shared = _shared(r["trials"])
    print(
        f"stages: {shared['ran']} computed, {shared['reused']} reused across trials "
        f"(cached or waited for)",
        file=out,
    )
    test = r.get("test") or {}
    if test:
        values = list(test.values())
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        seeds = ", ".join(test)
        print(
            f"test (folds other than {folds}): {statistics.mean(values):.1f} ± {std:.1f} "
            f"(mean ± std over seeds {seeds}; n={len(values)})",
            file=out,
        )
    else:
        print("test: not run yet (the re-run with every seed follows the search)", file=out)
    print(file=out)


def _shared(trials: list[dict[str, Any]]) -> dict[str, int]:
    how = [h for t in trials for h in (t.get("stages") or {}).values()]
    return {"ran": how.count("ran"), "reused": len(how) - how.count("ran")}


def _show(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    for line in [header, *rows]:
        print("  ".join(x.rjust(w) for x, w in zip(line, widths, strict=True)), file=out)


def plot_search(results: list[dict[str, Any]], path: str | Path) -> None:
    """Validation accuracy against each searched axis, one panel per (task, axis); stopped
    trials hollow at the accuracy they had reached, the chosen one a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(r, a) for r in results for a in r["best"]["values"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, (r, axis) in zip(axes[0], panels, strict=True):
        for status, style in (("finished", {}), ("stopped", {"facecolors": "none"})):
            pts = [t for t in r["trials"] if t["status"] == status and t[METRIC] is not None]
            ax.scatter(
                [t["values"][axis] for t in pts],
                [100 * t[METRIC] for t in pts],
                edgecolors="C0",
                label=status,
                **style,
            )
        best = r["best"]
        ax.scatter([best["values"][axis]], [100 * best[METRIC]], marker="*", s=160, c="C3")
        ax.set_xlabel(axis)
        ax.set_ylabel(f"{r['task']} validation accuracy (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
