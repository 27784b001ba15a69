"""The curation strategies, one registry entry each: what a strategy needs and how it builds.

Every other place (sweep validation, plan building, the curate stage and command, Table 1,
plots, W&B) reads this registry, so a new strategy is one `register(Strategy(...))` and its
build function. A build function takes the embed stage's read side (`pipeline.Embeddings`:
captions, caption_emb, wild(), prompts(task)), the curate stage's config and the search
options (chunk), and returns an ImprovementSet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # curate pulls in torch, which the registry's readers (report) need not
    from clapsweep.curate import ImprovementSet

Build = Callable[[Any, dict, dict], "ImprovementSet"]


@dataclass(frozen=True)
class Strategy:
    name: str  # as written in a sweep row and a curate config: "du"
    label: str  # as printed: "DU"
    thresholds: tuple[str, ...]  # the row fields it needs, in its curate config
    per_task: bool  # one Improvement-Set per task (its curate config holds the task)
    build: Build
    upstream: str | None = None  # a strategy whose set, for the same task, it reads
    replays: str | None = None  # that upstream set is its replay set (else the teacher's)
    table1: bool = True  # a column of Table 1 (pairs per Improvement-Set)
    colors: tuple[str, str] = ("#bdbdbd", "#636363")  # plots: its rows, light and with +SL


STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    """Add (or replace) a strategy; the registry is read at use, so this works any time."""
    STRATEGIES[strategy.name] = strategy
    return strategy


def get(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise KeyError(name)
    return STRATEGIES[name]


def names() -> list[str]:
    return list(STRATEGIES)


def curate_config(strategy: Strategy, task: str, threshold: Callable[[str], float]) -> dict:
    """The curate stage's own fields: strategy, task (per-task strategies) and thresholds."""
    cfg: dict[str, Any] = {"strategy": strategy.name}
    if strategy.per_task:
        cfg["task"] = task
    return cfg | {name: threshold(name) for name in strategy.thresholds}


def chain(strategy: Strategy) -> list[Strategy]:
    """The strategies whose curate stages a row of `strategy` needs, upstream first."""
    out = [strategy]
    while out[0].upstream is not None:
        out.insert(0, get(out[0].upstream))
    return out


# ----------------------------------------------------------------------------- the paper's


def _du(emb: Any, config: dict, opts: dict) -> ImprovementSet:
    from clapsweep import curate

    wild_ids, wild_emb = emb.wild()
    return curate.build_du(
        emb.caption_emb, wild_emb, config["sigma"], [c["id"] for c in emb.captions], wild_ids,
        top_k=config.get("top_k"), **opts,
    )  # fmt: skip


def _ds(emb: Any, config: dict, opts: dict) -> ImprovementSet:
    from clapsweep import curate

    task = config["task"]
    return curate.build_ds(
        emb.caption_emb, emb.prompts(task), config["sigma_ds"],
        [c["id"] for c in emb.captions], [c["clip"] for c in emb.captions], task, **opts,
    )  # fmt: skip


def _ads(emb: Any, config: dict, opts: dict) -> ImprovementSet:
    from clapsweep import curate

    task = config["task"]
    wild_ids, wild_emb = emb.wild()
    return curate.build_ads(
        emb.caption_emb, emb.prompts(task), wild_emb, config["sigma_ds"], config["sigma"],
        [c["id"] for c in emb.captions], wild_ids, task, top_k=config.get("top_k"), **opts,
    )  # fmt: skip


register(Strategy("du", "DU", ("sigma",), per_task=False, build=_du, colors=("#9ecae1", "#3182bd")))
register(
    Strategy("ds", "DS", ("sigma_ds",), per_task=True, build=_ds, colors=("#a1d99b", "#31a354"))
)
# ADS pairs the DS captions with wild audio and replays the DS set (the authors' code).
register(
    Strategy(
        "ads",
        "ADS",
        ("sigma_ds", "sigma"),
        per_task=True,
        build=_ads,
        upstream="ds",
        replays="ds",
        colors=("#fdae6b", "#e6550d"),
    )  # fmt: skip
)
