"""Where one stage of a sweep stands, read from the store: the one model that `clapsweep
status` counts and `clapsweep report` explains in its cells.

done     its meta.json is there and intact (Store.problem is None): its result can be read
failed   not done, and its last attempt left a failure record (message, log)
running  not done, not failed, a run holds the sweep's lock and the stage has a .partial folder
pending  none of these: never run, waiting for its inputs, or damaged or stale (`problem`
         says which; the next run recomputes it)

Read-only, and never a traceback: a meta.json of an unexpected shape is a damaged stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clapsweep.store import META, Store

DONE, FAILED, RUNNING, PENDING = "done", "failed", "running", "pending"
STATES = (DONE, RUNNING, FAILED, PENDING)


@dataclass(frozen=True)
class StageState:
    state: str  # DONE | FAILED | RUNNING | PENDING
    problem: str | None = None  # why it is not done: "not run", a damaged file, "stale: ..."
    failure: dict[str, Any] | None = None  # the last attempt's failure record, if any
    meta: dict[str, Any] | None = None  # meta.json of a done stage

    @property
    def damaged(self) -> str | None:
        """The store's problem when it is more than "not run": a damaged or stale record."""
        return self.problem if self.problem not in (None, "not run") else None


def stage_problem(store: Store, name: str) -> str | None:
    """Store.problem, also for a meta.json that parses but has the wrong shape."""
    try:
        return store.problem(name)
    except (AttributeError, KeyError, TypeError, ValueError):
        return f"{store.final(name) / META} is damaged (unexpected content)"


def stage_state(store: Store, name: str, locked: bool | None = None) -> StageState:
    """Where the stage stands; `locked` is Store.is_locked() (asked when not given)."""
    problem = stage_problem(store, name)
    meta = store.meta(name) if problem is None else None
    failure = store.failure(name)
    if meta is not None:
        return StageState(DONE, None, failure, meta)
    if problem is None:  # removed between the two reads
        problem = "not run"
    if failure is not None:
        return StageState(FAILED, problem, failure)
    if locked is None:
        locked = store.is_locked()
    running = locked and store.has_partial(name)
    return StageState(RUNNING if running else PENDING, problem)
