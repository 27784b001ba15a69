"""One adapter per dataset: read its on-disk layout (docs/datasets.md) into a Manifest.

Each adapter takes the dataset's own folder (`<data root>/<name>`), reads the metadata with the
csv module, json or yaml, finds every clip's audio file and probes its header, and returns one
Record per readable clip. Audio is looked up under the official names and under the names the
common download tools give it (aac-datasets, the AudioSet downloaders); the Manifest says which
convention matched most files. Missing, empty and unreadable audio files are skipped with a
reason, never fatal. A metadata file that is missing, not UTF-8, split by another delimiter or
missing a column raises DatasetError naming the file and the fix: nothing can be read without it.

Modules: `layouts` (the layout and audio-name texts), `metadata` (the metadata readers and
their errors), `audiofiles` (the audio-folder index), `collector` (records and skipped files),
`html_text` (Freesound HTML as text), then the adapters by role: `teacher` (fsd50k, clotho,
audiocaps, macs), `wild` (audioset), `tasks` (esc50, us8k, tut17).
"""

from __future__ import annotations

from clapsweep.data.adapters.layouts import AUDIO_NAMES, AUDIO_SUFFIXES, LAYOUTS, expected_audio
from clapsweep.data.adapters.tasks import esc50, tut17, us8k
from clapsweep.data.adapters.teacher import (
    AUDIOCAPS_SPLITS,
    CLOTHO_SPLITS,
    audiocaps,
    clotho,
    fsd50k,
    macs,
)
from clapsweep.data.adapters.wild import audiocaps_youtube_ids, audioset

__all__ = [
    "ADAPTERS",
    "AUDIOCAPS_SPLITS",
    "AUDIO_NAMES",
    "AUDIO_SUFFIXES",
    "CLOTHO_SPLITS",
    "LAYOUTS",
    "audiocaps",
    "audiocaps_youtube_ids",
    "audioset",
    "clotho",
    "esc50",
    "expected_audio",
    "fsd50k",
    "macs",
    "tut17",
    "us8k",
]


ADAPTERS = {
    "fsd50k": fsd50k,
    "clotho": clotho,
    "audiocaps": audiocaps,
    "macs": macs,
    "audioset": audioset,
    "esc50": esc50,
    "us8k": us8k,
    "tut17": tut17,
}
