"""What each dataset's layout looks like and where its adapter looks for audio: the texts of
the error messages and of a Manifest's `looked_for` (the full spec is docs/datasets.md)."""

from __future__ import annotations

# What each layout looks like, for error messages (the full spec is docs/datasets.md).
LAYOUTS = {
    "fsd50k": "the FSD50K layout (FSD50K.ground_truth/dev.csv, FSD50K.metadata/"
    "dev_clips_info_FSD50K.json, FSD50K.dev_audio/*.wav)",
    "clotho": "the Clotho v2.1 layout (clotho_captions_development.csv, development/*.wav; "
    "or aac-datasets' CLOTHO_v2.1/clotho_csv_files/, CLOTHO_v2.1/clotho_audio_files/)",
    "audiocaps": "the AudioCaps layout (dataset/train.csv or dataset2.0/train.csv, "
    "audio/train/<youtube_id>.wav; or aac-datasets' AUDIOCAPS/csv_files_v1/train.csv, "
    "AUDIOCAPS/audio_32000Hz/train/<youtube_id>_<start_time>.flac)",
    "macs": "the MACS layout (MACS.yaml, audio/*.wav; or aac-datasets' MACS/MACS.yaml, "
    "MACS/audio/*.wav)",
    "audioset": "the AudioSet layout (unbalanced_train_segments.csv, "
    "audio/unbalanced_train/<YTID>.wav)",
    "esc50": "the ESC-50 layout (meta/esc50.csv, audio/*.wav)",
    "us8k": "the UrbanSound8K layout (metadata/UrbanSound8K.csv, audio/fold<n>/*.wav)",
    "tut17": "the TUT Acoustic Scenes 2017 layout (TUT-acoustic-scenes-2017-development/meta.txt, "
    "TUT-acoustic-scenes-2017-development/audio/*.wav)",
}

# Where each adapter looks for a clip's audio, convention by convention (see expected_audio).
AUDIO_NAMES = {
    "fsd50k": "FSD50K.dev_audio/<fname>.wav and FSD50K.eval_audio/<fname>.wav (official)",
    "clotho": "<split>/<file_name> or clotho_audio_<split>/<file_name> (official), "
    "CLOTHO_v2.1/clotho_audio_files/<split>/<file_name> (aac-datasets)",
    "audiocaps": "audio/<split>/<youtube_id>.wav (official) or Y<youtube_id>.wav, "
    "AUDIOCAPS/audio_<rate>Hz/<split>/<youtube_id>_<start_time>.flac (aac-datasets), "
    "<audiocap_id>.ogg in either folder (audiocaps-download), "
    "audio/<split>/[Y]<youtube_id>_<start>_<end>.wav in seconds or milliseconds "
    "(AudioSet downloaders)",
    "macs": "audio/<filename> (official), MACS/audio/<filename> (aac-datasets), "
    "TAU-urban-acoustic-scenes-2019-development/audio/<filename> (TAU archive)",
    "audioset": "audio/unbalanced_train/ or data/unbalanced_train_segments/audio/ holding "
    "<YTID>.wav (official), Y<YTID>.wav, or [Y]<YTID>_<start>_<end>.wav with the times in "
    "seconds (30, 30.0, 30.000) or milliseconds (30000)",
    "esc50": "audio/<filename> (official)",
    "us8k": "audio/fold<fold>/<slice_file_name> (official)",
    "tut17": "TUT-acoustic-scenes-2017-<part>/audio/<file>.wav as listed in meta.txt (official)",
}

# File name suffixes looked up when a layout names a clip without its extension.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64", ".opus")


def expected_audio(name: str) -> str:
    """Where, and under which file names, the adapter of dataset `name` looks for audio."""
    return AUDIO_NAMES[name]
