"""The Improvement-Set: curated pairs, their storage, the leakage rule and the empty-set error.

No leakage: curation only accepts audio from the wild pool and the teacher training set.
Downstream evaluation audio (ids "esc50/...", "us8k/...", "tut17/...") never enters an
Improvement-Set: `ImprovementSet.build` and `ImprovementSet.save` check the clip ids and raise
`LeakageError` otherwise.

On disk an Improvement-Set is a folder: `pairs.npz` (caption_idx, clip_idx, sims),
`captions.json` and `clips.json` (the tables the indices point into), and `counts.json`
(strategy, task, thresholds, counts, highest similarity seen). It is written atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clapsweep.errors import UserError

TASK_DATASETS = ("esc50", "us8k", "tut17")


class LeakageError(UserError):
    """Downstream evaluation audio was about to enter an Improvement-Set."""


class EmptyImprovementSetError(UserError):
    """Curation found no pair at the configured threshold."""


# ---------------------------------------------------------------------------------------------
# Leakage rule


def check_no_task_audio(
    audio_ids: list[str], task_datasets: tuple[str, ...] = TASK_DATASETS
) -> None:
    """Raise LeakageError if any id ("<dataset>/<clip id>") belongs to a downstream task."""
    prefixes = tuple(f"{name}/" for name in task_datasets)
    bad = [a for a in audio_ids if a.startswith(prefixes)]
    if bad:
        shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
        raise LeakageError(
            f"{len(bad)} clip(s) of a downstream task would enter the Improvement-Set ({shown}); "
            "curate only from the wild audio pool and the teacher training set, never from "
            f"{', '.join(task_datasets)}"
        )


# ---------------------------------------------------------------------------------------------
# The Improvement-Set


@dataclass
class ImprovementSet:
    """Curated (caption, clip) pairs with the settings and statistics that produced them.

    `caption_idx` / `clip_idx` index the `captions` / `clips` tables (only the entries used are
    kept). `sims` is the caption-clip cosine for DU and ADS; for DS it is the caption's max
    cosine over the class prompts (the pair itself is a teacher pair). `sigmas` holds the
    thresholds by name ("sigma" for DU, "sigma_ds", and "sigma_ads" for ADS); `max_sims` the
    highest similarity seen at each of those steps (None where nothing was compared);
    `searched` what was compared, e.g. {"captions": 12, "clips": 2500}.
    """

    strategy: str
    task: str
    sigmas: dict[str, float]
    captions: list[str]
    clips: list[str]
    caption_idx: np.ndarray
    clip_idx: np.ndarray
    sims: np.ndarray
    max_sims: dict[str, float | None] = field(default_factory=dict)
    searched: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.strategy:  # any registered name (clapsweep.recipe.strategies)
            raise ValueError("an Improvement-Set needs the name of its strategy")
        self.caption_idx = np.asarray(self.caption_idx, dtype=np.int64)
        self.clip_idx = np.asarray(self.clip_idx, dtype=np.int64)
        self.sims = np.asarray(self.sims, dtype=np.float32)
        if not len(self.caption_idx) == len(self.clip_idx) == len(self.sims):
            raise ValueError("caption_idx, clip_idx and sims must have the same length")

    @classmethod
    def build(
        cls,
        strategy: str,
        task: str,
        sigmas: dict[str, float],
        captions: list[str],
        clips: list[str],
        caption_idx: np.ndarray,
        clip_idx: np.ndarray,
        sims: np.ndarray,
        max_sims: dict[str, float | None] | None = None,
        searched: dict[str, int] | None = None,
    ) -> ImprovementSet:
        """From indices into the full tables: keeps only the used entries, checks leakage."""
        caption_idx = np.asarray(caption_idx, dtype=np.int64)
        clip_idx = np.asarray(clip_idx, dtype=np.int64)
        used_c, new_c = np.unique(caption_idx, return_inverse=True)
        used_a, new_a = np.unique(clip_idx, return_inverse=True)
        kept_clips = [clips[i] for i in used_a]
        check_no_task_audio(kept_clips)
        return cls(
            strategy=strategy,
            task=task,
            sigmas=dict(sigmas),
            captions=[captions[i] for i in used_c],
            clips=kept_clips,
            caption_idx=new_c.reshape(-1),
            clip_idx=new_a.reshape(-1),
            sims=sims,
            max_sims=dict(max_sims or {}),
            searched=dict(searched or {}),
        )

    def __len__(self) -> int:
        return len(self.sims)

    def counts(self) -> dict[str, int]:
        return {
            "n_pairs": len(self),
            "n_unique_captions": len(np.unique(self.caption_idx)),
            "n_unique_clips": len(np.unique(self.clip_idx)),
        }

    def pairs(self) -> list[tuple[str, str, float]]:
        """(caption, clip id, similarity) per pair; convenient for small sets and tests."""
        return [
            (self.captions[c], self.clips[a], float(s))
            for c, a, s in zip(self.caption_idx, self.clip_idx, self.sims, strict=True)
        ]

    def save(self, directory: str | Path) -> Path:
        """Write the folder atomically: a temporary sibling folder, then a rename."""
        check_no_task_audio(self.clips)
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        for stale in directory.parent.glob(f".{directory.name}.tmp-*"):
            shutil.rmtree(stale)  # an earlier, killed attempt's
        tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
        tmp.mkdir()
        np.savez_compressed(
            tmp / "pairs.npz", caption_idx=self.caption_idx, clip_idx=self.clip_idx, sims=self.sims
        )
        (tmp / "captions.json").write_text(json.dumps(self.captions, ensure_ascii=False))
        (tmp / "clips.json").write_text(json.dumps(self.clips, ensure_ascii=False))
        meta = {
            "strategy": self.strategy,
            "task": self.task,
            "sigmas": self.sigmas,
            **self.counts(),
            "max_sims": self.max_sims,
            "searched": self.searched,
        }
        (tmp / "counts.json").write_text(json.dumps(meta, indent=1))
        # A folder cannot replace a non-empty folder in one rename: move the old one aside.
        old = directory.parent / f".{directory.name}.old-{os.getpid()}"
        if directory.exists():
            directory.rename(old)
        tmp.rename(directory)
        if old.exists():
            shutil.rmtree(old)
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ImprovementSet:
        directory = Path(directory)
        for name in ("pairs.npz", "captions.json", "clips.json", "counts.json"):
            if not (directory / name).is_file():
                raise UserError(
                    f"{directory / name}: missing; this is not an Improvement-Set folder "
                    "(run curation again)"
                )
        meta = json.loads((directory / "counts.json").read_text())
        with np.load(directory / "pairs.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("caption_idx", "clip_idx", "sims")}
        return cls(
            strategy=meta["strategy"],
            task=meta["task"],
            sigmas=meta["sigmas"],
            captions=json.loads((directory / "captions.json").read_text()),
            clips=json.loads((directory / "clips.json").read_text()),
            max_sims=meta.get("max_sims", {}),
            searched=meta.get("searched", {}),
            **arrays,
        )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def require_nonempty(imp: ImprovementSet) -> ImprovementSet:
    """Return `imp`, or raise EmptyImprovementSetError naming the step, threshold and counts."""
    if len(imp) > 0:
        return imp
    head = f"{imp.strategy} for {imp.task}" if imp.task else imp.strategy
    s = imp.searched
    if imp.strategy == "du":
        step, what = "sigma", f"{s.get('captions', 0)} captions x {s.get('clips', 0)} wild clips"
    elif imp.strategy == "ds" or s.get("captions", 0) == 0:
        # ADS with no DS caption failed at the DS step already.
        step = "sigma_ds"
        what = (
            f"{s.get('teacher_captions', 0)} teacher captions x {s.get('prompts', 0)} class prompts"
        )
    else:
        step, what = (
            "sigma_ads",
            f"{s.get('captions', 0)} DS captions x {s.get('clips', 0)} wild clips",
        )
    noun = "caption" if step == "sigma_ds" else "pair"
    raise EmptyImprovementSetError(
        f"{head}: no {noun} reached {step}={imp.sigmas.get(step)} ({what}; max similarity "
        f"{_fmt(imp.max_sims.get(step))}); lower {step}"
    )
