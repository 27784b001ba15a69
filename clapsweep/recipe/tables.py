"""The paper's tables (Wang et al., Tables 1-3), one registry entry each, for `clapsweep report`.

A table is its number, title, kind, teacher fraction, the baselines it shows, the paper's
published rows and its columns. The kind says how the report builds it (clapsweep.report.build
holds one function per kind): "pairs" holds Improvement-Set sizes (number of audio-caption
pairs) of the curate stages, "accuracy" zero-shot accuracy in percent of the eval stages. So a
new table is one `register(PaperTable(...))`, plus a build function if its kind is new.

A paper row's key is the sweep row name it is compared with: "teacher" and "msclap" are the
baselines every sweep (or its msclap_checkpoint) provides, the others are student row names
(DU, DU+SL, DS, DS+SL, ADS, ADS+SL), compared after dropping spaces and case. Columns default
to the kind's: the tasks (recipe.tasks) for accuracy, for pairs one per Improvement-Set of the
strategies shown in Table 1 (recipe.strategies): "du", then "<task>/<strategy>" per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clapsweep.recipe import strategies, tasks

PAIRS, ACCURACY = "pairs", "accuracy"
BASELINES = ("teacher", "msclap")  # rows every sweep provides: not students
ANY_FRACTION = ("msclap",)  # baselines the sweep does not train: the same at every fraction


@dataclass(frozen=True)
class PaperRow:
    key: str  # the sweep row name it is compared with
    label: str  # the row's name in the paper
    values: dict[str, float]  # column key -> the published number


@dataclass(frozen=True)
class PaperTable:
    number: int
    title: str
    kind: str  # PAIRS | ACCURACY: which build function makes it
    teacher_fraction: float  # the teacher's share of the paired training data
    summary: str = ""  # a few words for the list of tables: "full-data teacher"
    baselines: tuple[str, ...] = ()  # which BASELINES rows it shows
    rows: tuple[PaperRow, ...] = ()  # the paper's published rows
    columns: tuple[str, ...] | None = field(default=None)  # None: the kind's (see above)


TABLES: dict[int, PaperTable] = {}


def register(table: PaperTable) -> PaperTable:
    """Add (or replace) a table; the registry is read at use, so this works any time."""
    TABLES[table.number] = table
    return table


def get(number: int) -> PaperTable:
    if number not in TABLES:
        raise KeyError(number)
    return TABLES[number]


def numbers() -> list[int]:
    return sorted(TABLES)


def columns(table: PaperTable) -> list[str]:
    """The table's column keys: its own, else tasks (accuracy) or Improvement-Sets (pairs)."""
    if table.columns is not None:
        return list(table.columns)
    return improvement_sets() if table.kind == PAIRS else tasks.names()


def improvement_sets() -> list[str]:
    """Table 1's columns: each task-independent strategy, then per task the per-task ones."""
    shown = [s for s in strategies.STRATEGIES.values() if s.table1]
    columns = [s.name for s in shown if not s.per_task]
    return columns + [f"{t}/{s.name}" for t in tasks.names() for s in shown if s.per_task]


def set_column(strategy: str, task: str | None) -> str:
    """The column of a curate stage's Improvement-Set: 'du', or '<task>/<strategy>'."""
    known = strategies.STRATEGIES.get(strategy)
    return strategy if known is not None and not known.per_task else f"{task}/{strategy}"


def column_label(column: str) -> str:
    """'esc50' -> 'ESC-50'; Table 1's 'esc50/ads' -> 'ESC-50 ADS', 'du' -> 'DU'."""
    if "/" in column:
        task, strategy = column.split("/")
        return f"{tasks.label(task)} {_strategy_label(strategy)}"
    if column in tasks.LABELS or column not in strategies.STRATEGIES:
        return tasks.label(column)  # a built-in task, or one of the sweep's own
    return _strategy_label(column)


def _strategy_label(name: str) -> str:
    known = strategies.STRATEGIES.get(name)
    return known.label if known is not None else name.upper()


# ----------------------------------------------------------------------------- the paper's


def _acc(esc50: float, us8k: float, tut17: float) -> dict[str, float]:
    return {"esc50": esc50, "us8k": us8k, "tut17": tut17}


register(
    PaperTable(
        1,
        "Table 1: Improvement-Set sizes (audio-caption pairs)",
        PAIRS,
        1.0,
        "Improvement-Set sizes",
        rows=(
            PaperRow(
                "paper",
                "Table 1",
                {
                    "du": 5.0e6,
                    "esc50/ds": 15.6e3,
                    "esc50/ads": 1.30e6,
                    "us8k/ds": 9.7e3,
                    "us8k/ads": 1.1e6,
                    "tut17/ds": 8.7e3,
                    "tut17/ads": 0.3e6,
                },
            ),
        ),
    )  # fmt: skip
)
register(
    PaperTable(
        2,
        "Table 2: full-dataset teacher (zero-shot accuracy, %)",
        ACCURACY,
        1.0,
        "full-data teacher",
        baselines=("msclap", "teacher"),
        rows=(
            PaperRow("msclap", "MS-CLAP", _acc(82.6, 73.4, 29.6)),
            PaperRow("teacher", "Our-CLAP (OC)", _acc(81.9, 74.8, 29.8)),
            PaperRow("DU", "OC, DU", _acc(82.4, 73.9, 31.5)),
            PaperRow("DU+SL", "OC, DU+SL", _acc(83.0, 74.9, 29.9)),
            PaperRow("DS", "OC, DS", _acc(78.8, 73.2, 29.8)),
            PaperRow("DS+SL", "OC, DS+SL", _acc(83.5, 75.5, 31.8)),
            PaperRow("ADS", "OC, ADS", _acc(84.2, 74.2, 32.5)),
            PaperRow("ADS+SL", "OC, ADS+SL", _acc(85.1, 77.4, 36.0)),
        ),
    )  # fmt: skip
)
register(
    PaperTable(
        3,
        "Table 3: teacher trained on 10% of the pairs (zero-shot accuracy, %)",
        ACCURACY,
        0.1,
        "10% teacher",
        baselines=("teacher",),
        rows=(
            PaperRow("teacher", "CLAP teacher", _acc(74.2, 73.5, 30.9)),
            PaperRow("DU+SL", "DU + SL", _acc(78.9, 73.7, 28.8)),
            PaperRow("ADS+SL", "ADS + SL", _acc(81.3, 74.5, 31.3)),
        ),
    )  # fmt: skip
)
