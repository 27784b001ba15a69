"""The downstream zero-shot tasks: one entry each (the dataset of the same name holds the
clips and labels; docs/datasets.md). Everything that lists tasks reads this registry."""

from __future__ import annotations

LABELS: dict[str, str] = {"esc50": "ESC-50", "us8k": "UrbanSound8K", "tut17": "TUT17"}


def names() -> list[str]:
    return list(LABELS)


def label(task: str) -> str:
    return LABELS.get(task, task)
