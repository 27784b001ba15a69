"""Leakage between datasets: downstream clips cut from the same recording as training clips.

ESC-50, UrbanSound8K, FSD50K and Clotho are cut from Freesound sounds, AudioCaps and AudioSet from
YouTube videos. The adapters put that origin in `Record.source` ("freesound:<id>",
"youtube:<id>"), so a task clip whose source is also a teacher clip's source may have been heard
(the same recording, often the same seconds) while training: its zero-shot accuracy is then not
zero-shot. `overlap` counts such clips per task; `teacher_overlap_ids` names the teacher clips that
`data.exclude_overlap` drops. Clips without a source (MACS, TUT17) never overlap.
"""

from __future__ import annotations

from clapsweep.data.manifest import Manifest


def _sources(manifest: Manifest) -> set[str]:
    return {r.source for r in manifest.records if r.source}


def overlap(
    manifests: dict[str, Manifest], teacher: list[str], wild: str, tasks: list[str]
) -> dict[str, dict]:
    """Per task in `tasks`: {clips, with_source, teacher, by_teacher: {dataset: n}, wild}.

    `teacher` counts the task clips sharing a source with any teacher dataset's clips,
    `by_teacher` with each one, `wild` with the wild pool; `with_source` is how many task clips
    have a source at all (zero means nothing could be checked). Datasets absent from
    `manifests` are left out.
    """
    by_teacher = {n: _sources(manifests[n]) for n in teacher if n in manifests}
    wild_sources = _sources(manifests[wild]) if wild in manifests else set()
    every_teacher = set().union(*by_teacher.values())
    report = {}
    for task in (t for t in tasks if t in manifests):
        sources = [r.source for r in manifests[task].records if r.source]
        report[task] = {
            "clips": len(manifests[task].records),
            "with_source": len(sources),
            "teacher": sum(s in every_teacher for s in sources),
            "by_teacher": {
                n: sum(s in shared for s in sources) for n, shared in by_teacher.items()
            },
            "wild": sum(s in wild_sources for s in sources),
        }
    return report


def teacher_overlap_ids(
    manifests: dict[str, Manifest], teacher: list[str], tasks: list[str]
) -> set[str]:
    """Ids of the teacher records whose source is also the source of a clip of a task."""
    task_sources = set().union(*(_sources(manifests[t]) for t in tasks if t in manifests))
    return {
        r.id
        for n in teacher
        if n in manifests
        for r in manifests[n].records
        if r.source and r.source in task_sources
    }
