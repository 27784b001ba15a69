"""The paper's published numbers (Wang et al., Tables 1-3), for `clapsweep report`.

Accuracies are zero-shot accuracy in percent; Table 1 holds Improvement-Set sizes (number of
audio-caption pairs). A row's key is the sweep row name it is compared with: "teacher" and
"msclap" are the baselines every sweep (or its msclap_checkpoint) provides, the others are
student row names (DU, DU+SL, DS, DS+SL, ADS, ADS+SL), compared after dropping spaces and case.
"""

from __future__ import annotations

from dataclasses import dataclass

TASKS = ("esc50", "us8k", "tut17")
TASK_LABELS = {"esc50": "ESC-50", "us8k": "UrbanSound8K", "tut17": "TUT17"}

# The teacher's share of the paired training data in each accuracy table.
TEACHER_FRACTION = {2: 1.0, 3: 0.1}

TITLES = {
    1: "Table 1: Improvement-Set sizes (audio-caption pairs)",
    2: "Table 2: full-dataset teacher (zero-shot accuracy, %)",
    3: "Table 3: teacher trained on 10% of the pairs (zero-shot accuracy, %)",
}


@dataclass(frozen=True)
class PaperRow:
    key: str  # the sweep row name it is compared with
    label: str  # the row's name in the paper
    values: dict[str, float]  # column key -> the published number


def _acc(esc50: float, us8k: float, tut17: float) -> dict[str, float]:
    return {"esc50": esc50, "us8k": us8k, "tut17": tut17}


TABLE2 = (
    PaperRow("msclap", "MS-CLAP", _acc(82.6, 73.4, 29.6)),
    PaperRow("teacher", "Our-CLAP (OC)", _acc(81.9, 74.8, 29.8)),
    PaperRow("DU", "OC, DU", _acc(82.4, 73.9, 31.5)),
    PaperRow("DU+SL", "OC, DU+SL", _acc(83.0, 74.9, 29.9)),
    PaperRow("DS", "OC, DS", _acc(78.8, 73.2, 29.8)),
    PaperRow("DS+SL", "OC, DS+SL", _acc(83.5, 75.5, 31.8)),
    PaperRow("ADS", "OC, ADS", _acc(84.2, 74.2, 32.5)),
    PaperRow("ADS+SL", "OC, ADS+SL", _acc(85.1, 77.4, 36.0)),
)

TABLE3 = (
    PaperRow("teacher", "CLAP teacher", _acc(74.2, 73.5, 30.9)),
    PaperRow("DU+SL", "DU + SL", _acc(78.9, 73.7, 28.8)),
    PaperRow("ADS+SL", "ADS + SL", _acc(81.3, 74.5, 31.3)),
)

# Table 1 columns: "du" (task-independent), then "<task>/ds" and "<task>/ads" per task.
TABLE1_COLUMNS = ("du",) + tuple(f"{t}/{s}" for t in TASKS for s in ("ds", "ads"))
TABLE1 = {
    "du": 5.0e6,
    "esc50/ds": 15.6e3,
    "esc50/ads": 1.30e6,
    "us8k/ds": 9.7e3,
    "us8k/ads": 1.1e6,
    "tut17/ds": 8.7e3,
    "tut17/ads": 0.3e6,
}


def accuracy_rows(table: int) -> tuple[PaperRow, ...]:
    """The paper's rows of Table 2 or 3."""
    return {2: TABLE2, 3: TABLE3}[table]


def column_label(column: str) -> str:
    """'esc50' -> 'ESC-50'; Table 1's 'esc50/ads' -> 'ESC-50 ADS', 'du' -> 'DU'."""
    if "/" in column:
        task, strategy = column.split("/")
        return f"{TASK_LABELS[task]} {strategy.upper()}"
    return TASK_LABELS.get(column, column.upper())
