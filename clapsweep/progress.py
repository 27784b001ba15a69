"""Progress on long work: a rich bar on a terminal, occasional plain lines otherwise."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class StepProgress:
    """A report callback for training and embedding: {"step", "total_steps", "loss", ...}."""

    def __init__(self, label: str, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.label = label
        self.live = self.console.is_terminal
        self.bar = None
        self.task = None

    def __enter__(self) -> StepProgress:
        if self.live:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} {task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar:
            self.bar.stop()

    def __call__(self, event: dict) -> None:
        info = " ".join(
            f"{k}={_fmt(v)}" for k, v in event.items() if k not in ("step", "total_steps")
        )
        if self.bar is None:
            print(
                f"{self.label}: step {event.get('step', '-')} {info}", file=sys.stderr, flush=True
            )
            return
        if "step" not in event:
            self.console.print(f"{self.label}: {info}")
            return
        if self.task is None:
            self.task = self.bar.add_task(self.label, total=event.get("total_steps"), info="")
        self.bar.update(self.task, completed=event["step"], info=info)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
