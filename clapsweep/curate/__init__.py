"""Improvement-Set curation (paper §2.3): DU, DS and ADS pairs from teacher embeddings.

Everything here works on embeddings already computed by the teacher; the caller embeds the
teacher captions (text tower), the class prompts of a task (text tower) and the audio
(audio tower), all in the joint space.

- DU  (domain-unspecific): every (teacher caption, wild clip) pair with cosine >= sigma.
- DS  (domain-specific): the teacher pairs whose caption has a text-to-text cosine >= sigma_ds
  with at least one class prompt of the task (the max over the prompts), with their own audio.
- ADS (augmented domain-specific): the DS captions matched to wild clips with cosine
  >= sigma_ads.

Modules: `search` (the chunked similarity search, thresholds and top-k), `improvement_set`
(the ImprovementSet, its folder on disk, the leakage rule, require_nonempty) and `builders`
(build_du, build_ds, build_ads).
"""

from __future__ import annotations

from clapsweep.curate.builders import build_ads, build_ds, build_du
from clapsweep.curate.improvement_set import (
    TASK_DATASETS,
    EmptyImprovementSetError,
    ImprovementSet,
    LeakageError,
    check_no_task_audio,
    require_nonempty,
)
from clapsweep.curate.search import (
    DEFAULT_CHUNK,
    SIM_TOL,
    ads_pairs,
    ds_select,
    du_pairs,
    prompt_similarity,
    threshold_pairs,
)

__all__ = [
    "DEFAULT_CHUNK",
    "SIM_TOL",
    "TASK_DATASETS",
    "EmptyImprovementSetError",
    "ImprovementSet",
    "LeakageError",
    "ads_pairs",
    "build_ads",
    "build_ds",
    "build_du",
    "check_no_task_audio",
    "ds_select",
    "du_pairs",
    "prompt_similarity",
    "require_nonempty",
    "threshold_pairs",
]
