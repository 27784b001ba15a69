"""The dataset adapters on small trees in each official layout, with real audio files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clapsweep.data.adapters import audioset, expected_audio
from clapsweep.data.datasets import (
    ROLES,
    DatasetError,
    Pair,
    load_dataset,
    task_classes,
    teacher_pairs,
    wild_clips,
)
from clapsweep.data.manifest import Manifest, Record
from clapsweep.errors import UserError


def write_audio(path: Path, seconds: float = 0.2, rate: int = 44100, channels: int = 1, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = round(seconds * rate)
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, (frames, channels))
    sf.write(path, noise, rate, **kw)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_corrupt(path: Path) -> None:
    write_text(path, "this is not audio " * 20)


def write_empty(path: Path) -> None:
    write_text(path, "")


# --- fixture trees, one per dataset, in the layouts of docs/datasets.md -----------------------


def make_esc50(root: Path) -> None:
    d = root / "esc50"
    write_text(
        d / "meta" / "esc50.csv",
        "filename,fold,target,category,esc10,src_file,take\n"
        "1-100032-A-0.wav,1,0,dog,True,100032,A\n"
        "1-115545-A-48.wav,1,48,fireworks,False,115545,A\n"
        "5-9032-A-14.wav,5,14,chirping_birds,False,9032,A\n"
        "2-0000-A-1.wav,2,1,rooster,False,0000,A\n"
        "3-0000-A-2.wav,3,2,pig,False,0000,A\n"
        "4-0000-A-3.wav,4,3,cow,False,0000,A\n",
    )
    write_audio(d / "audio" / "1-100032-A-0.wav", 0.2)
    write_audio(d / "audio" / "1-115545-A-48.wav", 0.3)
    write_audio(d / "audio" / "5-9032-A-14.wav", 0.2)
    write_corrupt(d / "audio" / "2-0000-A-1.wav")
    write_empty(d / "audio" / "3-0000-A-2.wav")
    # 4-0000-A-3.wav is absent.


def make_us8k(root: Path) -> None:
    d = root / "us8k"
    write_text(
        d / "metadata" / "UrbanSound8K.csv",
        "slice_file_name,fsID,start,end,salience,fold,classID,class\n"
        "100032-3-0-0.wav,100032,0.0,0.317551,1,5,3,dog_bark\n"
        "100263-2-0-117.wav,100263,58.5,62.5,1,10,2,children_playing\n"
        "101415-3-0-2.wav,101415,1.0,5.0,1,1,3,dog_bark\n",
    )
    write_audio(d / "audio" / "fold5" / "100032-3-0-0.wav", 0.2, 44100, 2)
    write_audio(d / "audio" / "fold10" / "100263-2-0-117.wav", 0.25, 48000, 1)
    write_audio(d / "audio" / "fold1" / "101415-3-0-2.wav", 0.5, 22050, 1, subtype="PCM_24")


def make_tut17(root: Path) -> None:
    dev = root / "tut17" / "TUT-acoustic-scenes-2017-development"
    write_text(
        dev / "meta.txt",
        "audio/a001_0_10.wav\tresidential_area\ta001\r\n"
        "audio/b020_10_20.wav\tcafe/restaurant\tb020\r\n",
    )
    write_audio(dev / "audio" / "a001_0_10.wav", 0.2, 44100, 2)
    write_audio(dev / "audio" / "b020_10_20.wav", 0.2, 44100, 2)
    ev = root / "tut17" / "TUT-acoustic-scenes-2017-evaluation"
    write_text(ev / "meta.txt", "audio/1.wav\tbeach\n")
    write_audio(ev / "audio" / "1.wav", 0.2, 44100, 2)


FSD_DEV_INFO = {
    "64760": {"title": "guitar.wav", "description": "A  guitar\n strum,\tslowly", "tags": ["x"]},
    "16399": {"title": "Door  knock", "description": "", "tags": []},
}
FSD_EVAL_INFO = {"37199": {"title": "rain", "description": "Rain on a roof.", "tags": []}}


def make_fsd50k(root: Path) -> None:
    d = root / "fsd50k"
    write_text(
        d / "FSD50K.ground_truth" / "dev.csv",
        "fname,labels,mids,split\n"
        '64760,"Electric_guitar,Guitar","/m/02sgy,/m/0342h",train\n'
        "16399,Knock,/m/07r4wb8,val\n",
    )
    write_text(d / "FSD50K.ground_truth" / "eval.csv", "fname,labels,mids\n37199,Rain,/m/06mb1\n")
    write_text(d / "FSD50K.metadata" / "dev_clips_info_FSD50K.json", json.dumps(FSD_DEV_INFO))
    write_text(d / "FSD50K.metadata" / "eval_clips_info_FSD50K.json", json.dumps(FSD_EVAL_INFO))
    write_audio(d / "FSD50K.dev_audio" / "64760.wav", 0.2)
    write_audio(d / "FSD50K.dev_audio" / "16399.wav", 0.4)
    write_audio(d / "FSD50K.eval_audio" / "37199.wav", 0.2)


def make_clotho(root: Path) -> None:
    d = root / "clotho"
    write_text(
        d / "clotho_captions_development.csv",
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        '"Distorted AM Radio noise.wav",A radio  hisses.,Static noise.,Radio static.,'
        "Noise from a radio.,A radio is being tuned.\n",
    )
    write_audio(d / "development" / "Distorted AM Radio noise.wav", 0.2)
    # The validation audio in the alternative folder name; no evaluation split at all.
    write_text(
        d / "clotho_captions_validation.csv",
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\nrain.wav,a,b,c,d,e\n",
    )
    write_audio(d / "clotho_audio_validation" / "rain.wav", 0.2)


def make_audiocaps(root: Path) -> None:
    d = root / "audiocaps"
    write_text(
        d / "dataset" / "train.csv",
        "audiocap_id,youtube_id,start_time,caption\n"
        "91139,r1H4Z_5Y0EI,30,A man talks  then a dog barks\n"
        "11,--0w1YA1Hm4,30,Rain falls\n"
        "58146,r1H4Z_5Y0EI,30,a dog barks after a man speaks\n"
        "777,abcdefghijk,0,never downloaded\n",
    )
    write_text(
        d / "dataset" / "val.csv",
        "audiocap_id,youtube_id,start_time,caption\n5,vvvvvvvvvvv,10,Birds sing\n",
    )
    write_audio(d / "audio" / "train" / "r1H4Z_5Y0EI.wav", 0.2, 32000)
    write_audio(d / "audio" / "train" / "Y--0w1YA1Hm4.flac", 0.2, 16000)
    write_audio(d / "audio" / "val" / "vvvvvvvvvvv.wav", 0.2, 32000)


MACS_YAML = """\
files:
- filename: airport-lisbon-1000-40000-a.wav
  annotations:
  - annotator_id: 1
    sentence: adults   talking and footsteps
    tags: [adults_talking, footsteps]
  - annotator_id: 2
    sentence: people walking in an airport
    tags: [footsteps]
  - annotator_id: 3
    sentence: announcement in a hall
    tags: [announcement]
- filename: park-helsinki-241-7185-a.wav
  annotations:
  - annotator_id: 1
    sentence: birds singing
    tags: [birds_singing]
  - annotator_id: 4
    sentence: children shouting far away
    tags: [children_voices]
"""


def make_macs(root: Path) -> None:
    d = root / "macs"
    write_text(d / "MACS.yaml", MACS_YAML)
    write_audio(d / "audio" / "airport-lisbon-1000-40000-a.wav", 0.2, 48000, 2, subtype="PCM_24")
    write_audio(d / "audio" / "park-helsinki-241-7185-a.wav", 0.2, 48000, 2, subtype="PCM_24")


AUDIOSET_CSV = """\
# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=2041789, num_segs=2041789, num_unique_labels=527, num_positive_labels=5980763
# YTID, start_seconds, end_seconds, positive_labels
---1_cCGK4M, 0.000, 10.000, "/m/01g50p,/m/0284vy3,/m/06d_3"
--0w1YA1Hm4, 30.000, 40.000, "/m/06mb1"
--aE2O5G5WE, 0.000, 10.000, "/m/03fwl,/m/04rlf,/m/09x0r"
-0BIyqJj9ZU, 30.000, 40.000, "/m/07rgt08"
"""


def make_audioset(root: Path) -> None:
    d = root / "audioset"
    write_text(d / "unbalanced_train_segments.csv", AUDIOSET_CSV)
    audio = d / "audio" / "unbalanced_train"
    write_audio(audio / "---1_cCGK4M.wav", 0.2, 32000)
    write_audio(audio / "--0w1YA1Hm4.wav", 0.2, 32000)  # also in AudioCaps: excluded
    write_audio(audio / "Y--aE2O5G5WE_0.000_10.000.wav", 0.3, 32000)
    # -0BIyqJj9ZU was never downloaded.


MAKERS = [make_esc50, make_us8k, make_tut17, make_fsd50k, make_clotho, make_audiocaps]
MAKERS += [make_macs, make_audioset]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for make in MAKERS:
        make(root)
    return root


def by_id(manifest: Manifest) -> dict[str, Record]:
    return {r.id: r for r in manifest.records}


# --- tasks ------------------------------------------------------------------------------------


def test_esc50_records_and_skipped_files(root):
    m = load_dataset("esc50", root)
    assert m.dataset == "esc50" and m.root == str(root / "esc50")
    assert [r.id for r in m.records] == [
        "esc50/1-100032-A-0",
        "esc50/1-115545-A-48",
        "esc50/5-9032-A-14",
    ]
    dog = m.records[0]
    assert dog.path == str(root / "esc50" / "audio" / "1-100032-A-0.wav")
    assert Path(dog.path).is_absolute()
    assert dog.labels == ["dog"] and dog.captions == [] and dog.fold == "1"
    assert (dog.duration, dog.sample_rate, dog.channels) == (pytest.approx(0.2), 44100, 1)
    assert m.records[1].duration == pytest.approx(0.3)
    assert m.records[2].labels == ["chirping_birds"] and m.records[2].fold == "5"
    reasons = dict(m.skipped)
    assert reasons[str(root / "esc50" / "audio" / "4-0000-A-3.wav")] == "missing"
    assert reasons[str(root / "esc50" / "audio" / "3-0000-A-2.wav")] == "empty"
    assert reasons[str(root / "esc50" / "audio" / "2-0000-A-1.wav")].startswith("unreadable: ")
    assert len(m.skipped) == 3
    assert task_classes(m) == ["chirping_birds", "dog", "fireworks"]


def test_us8k_mixed_rates_and_channels(root):
    m = by_id(load_dataset("us8k", root))
    assert sorted(m) == ["us8k/100032-3-0-0", "us8k/100263-2-0-117", "us8k/101415-3-0-2"]
    a, b, c = m["us8k/100032-3-0-0"], m["us8k/100263-2-0-117"], m["us8k/101415-3-0-2"]
    assert (a.fold, a.labels, a.sample_rate, a.channels) == ("5", ["dog_bark"], 44100, 2)
    assert (b.fold, b.labels, b.sample_rate, b.channels) == ("10", ["children_playing"], 48000, 1)
    assert (c.fold, c.sample_rate, c.duration) == ("1", 22050, pytest.approx(0.5))
    assert b.path.endswith("/us8k/audio/fold10/100263-2-0-117.wav")


def test_tut17_pools_development_and_evaluation(root):
    m = load_dataset("tut17", root)
    ids = [r.id for r in m.records]
    assert ids == [
        "tut17/development/a001_0_10",
        "tut17/development/b020_10_20",
        "tut17/evaluation/1",
    ]
    records = by_id(m)
    assert records["tut17/development/b020_10_20"].labels == ["cafe/restaurant"]
    assert records["tut17/evaluation/1"].labels == ["beach"]
    assert records["tut17/evaluation/1"].fold == "evaluation"
    assert all(r.channels == 2 and r.sample_rate == 44100 for r in m.records)
    assert task_classes(m) == ["beach", "cafe/restaurant", "residential_area"]


# --- teacher datasets -------------------------------------------------------------------------


def test_fsd50k_description_else_title(root):
    m = by_id(load_dataset("fsd50k", root))
    assert sorted(m) == ["fsd50k/16399", "fsd50k/37199", "fsd50k/64760"]
    assert m["fsd50k/64760"].captions == ["A guitar strum, slowly"]
    assert m["fsd50k/64760"].fold == "train" and m["fsd50k/64760"].labels == []
    assert m["fsd50k/16399"].captions == ["Door knock"]
    assert m["fsd50k/16399"].fold == "val" and m["fsd50k/16399"].duration == pytest.approx(0.4)
    assert m["fsd50k/37199"].captions == ["Rain on a roof."]
    assert m["fsd50k/37199"].fold == "eval"
    assert m["fsd50k/37199"].path.endswith("/FSD50K.eval_audio/37199.wav")


# Freesound descriptions (and titles) are HTML as typed on freesound.org:
# (description, title, expected caption).
FSD_HTML = {
    "1": (
        'Recorded with <a href="http://www.zoom.co.jp/h4n" rel="nofollow">Zoom H4n</a> at night.',
        "zoom.wav",
        "Recorded with Zoom H4n at night.",
    ),
    "2": (
        "<p><b>Loud</b> door <i>slam</i>.</p><p>Second take<br />with reverb<br>and hiss</p>",
        "door.wav",
        "Loud door slam. Second take with reverb and hiss",
    ),
    "3": (
        "Tom &amp; Jerry &quot;live&quot;, it&#39;s&nbsp;raining",
        "tom.wav",
        'Tom & Jerry "live", it\'s raining',
    ),
    "4": (
        "Rain on a tin roof. https://example.com/rain?id=1 Recorded by me\nwww.foo.org",
        "rain.wav",
        "Rain on a tin roof. Recorded by me",
    ),
    "5": ("Thunder (http://example.com/thunder), far away", "thunder.wav", "Thunder, far away"),
    "6": ("&lt;b&gt; is not a tag, 5 < 6", "lt.wav", "<b> is not a tag, 5 < 6"),
    "7": (
        '<a href="http://example.com/x">http://example.com/x</a>',
        "Bird &amp; <b>song</b>.wav",
        "Bird & song.wav",
    ),
    "8": ('<a href="https://example.com/y"></a>', "Creaky  door", "Creaky door"),
    "9": ("<p> &nbsp; </p><br />", "<i>wind</i> http://example.com", "wind"),
}


@pytest.fixture(scope="module")
def fsd_html_root(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("fsd_html") / "fsd50k"
    rows = "".join(f"{fname},Sound,/m/x,train\n" for fname in FSD_HTML)
    write_text(d / "FSD50K.ground_truth" / "dev.csv", "fname,labels,mids,split\n" + rows)
    info = {
        f: {"title": t, "description": desc, "tags": []} for f, (desc, t, _) in FSD_HTML.items()
    }
    write_text(d / "FSD50K.metadata" / "dev_clips_info_FSD50K.json", json.dumps(info))
    for fname in FSD_HTML:
        write_audio(d / "FSD50K.dev_audio" / f"{fname}.wav", 0.1)
    return d.parent


@pytest.mark.parametrize("fname", list(FSD_HTML))
def test_fsd50k_caption_strips_html(fsd_html_root, fname):
    m = by_id(load_dataset("fsd50k", fsd_html_root))
    assert m[f"fsd50k/{fname}"].captions == [FSD_HTML[fname][2]]


def test_fsd50k_caption_link_only_description_falls_back_to_title(fsd_html_root):
    m = by_id(load_dataset("fsd50k", fsd_html_root))
    assert m["fsd50k/7"].captions == ["Bird & song.wav"]
    assert "http" not in " ".join(c for r in m.values() for c in r.captions)
    assert "<a" not in " ".join(c for r in m.values() for c in r.captions)


def test_clotho_five_captions_and_folder_names(root):
    m = by_id(load_dataset("clotho", root))
    assert sorted(m) == ["clotho/Distorted AM Radio noise", "clotho/rain"]
    radio = m["clotho/Distorted AM Radio noise"]
    assert radio.captions == [
        "A radio hisses.",
        "Static noise.",
        "Radio static.",
        "Noise from a radio.",
        "A radio is being tuned.",
    ]
    assert radio.fold == "development"
    assert m["clotho/rain"].fold == "validation"
    assert m["clotho/rain"].path.endswith("/clotho/clotho_audio_validation/rain.wav")


def test_audiocaps_groups_captions_by_youtube_id(root):
    m = load_dataset("audiocaps", root)
    records = by_id(m)
    assert sorted(records) == [
        "audiocaps/--0w1YA1Hm4",
        "audiocaps/r1H4Z_5Y0EI",
        "audiocaps/vvvvvvvvvvv",
    ]
    assert records["audiocaps/r1H4Z_5Y0EI"].captions == [
        "A man talks then a dog barks",
        "a dog barks after a man speaks",
    ]
    rain = records["audiocaps/--0w1YA1Hm4"]
    assert rain.path.endswith("/audio/train/Y--0w1YA1Hm4.flac") and rain.sample_rate == 16000
    assert records["audiocaps/vvvvvvvvvvv"].fold == "val"
    assert m.skipped == [
        (str(root / "audiocaps" / "audio" / "train" / "abcdefghijk.wav"), "missing")
    ]


def test_macs_sentences(root):
    m = by_id(load_dataset("macs", root))
    airport = m["macs/airport-lisbon-1000-40000-a"]
    assert airport.captions == [
        "adults talking and footsteps",
        "people walking in an airport",
        "announcement in a hall",
    ]
    assert (airport.fold, airport.sample_rate, airport.channels) == ("train", 48000, 2)
    assert len(m["macs/park-helsinki-241-7185-a"].captions) == 2


# --- in-the-wild pool -------------------------------------------------------------------------


def test_audioset_excludes_audiocaps_and_keeps_no_labels(root):
    m = load_dataset("audioset", root)
    assert [r.id for r in m.records] == ["audioset/---1_cCGK4M", "audioset/--aE2O5G5WE"]
    assert all(r.captions == [] and r.labels == [] for r in m.records)
    assert all(r.fold == "unbalanced_train" for r in m.records)
    assert m.records[1].path.endswith("/Y--aE2O5G5WE_0.000_10.000.wav")
    assert m.records[1].duration == pytest.approx(0.3)
    audio = root / "audioset" / "audio" / "unbalanced_train"
    assert sorted(m.skipped) == [
        (str(audio / "--0w1YA1Hm4.wav"), "in_audiocaps"),
        (str(audio / "-0BIyqJj9ZU.wav"), "missing"),
    ]
    assert wild_clips(m) == m.records


def test_audioset_without_audiocaps_excludes_nothing(root, tmp_path):
    m = audioset(root / "audioset", audiocaps_folder=tmp_path / "no-audiocaps")
    assert [r.id for r in m.records] == [
        "audioset/---1_cCGK4M",
        "audioset/--0w1YA1Hm4",
        "audioset/--aE2O5G5WE",
    ]
    assert m.skipped_counts() == {"missing": 1}


def test_manifest_round_trips_and_is_deterministic(root, tmp_path):
    first = load_dataset("us8k", root)
    first.save(tmp_path / "m.json")
    assert Manifest.load(tmp_path / "m.json") == first == load_dataset("us8k", root)


# --- errors -----------------------------------------------------------------------------------


def test_unknown_dataset_lists_the_names(tmp_path):
    with pytest.raises(UserError, match="unknown dataset 'esc51'.*esc50, us8k, tut17"):
        load_dataset("esc51", tmp_path)


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetError) as e:
        load_dataset("esc50", tmp_path)
    assert str(e.value).startswith(f"esc50: {tmp_path / 'esc50'} not found")


def test_missing_metadata_file(tmp_path):
    (tmp_path / "esc50" / "audio").mkdir(parents=True)
    with pytest.raises(DatasetError) as e:
        load_dataset("esc50", tmp_path)
    assert str(e.value) == (
        f"esc50: {tmp_path / 'esc50' / 'meta' / 'esc50.csv'} not found; expected the ESC-50 "
        "layout (meta/esc50.csv, audio/*.wav), see docs/datasets.md"
    )


def test_missing_required_split_of_a_teacher_dataset(tmp_path):
    write_text(tmp_path / "audiocaps" / "dataset" / "val.csv", "youtube_id,caption\n")
    with pytest.raises(DatasetError, match="audiocaps: .*/dataset/train.csv not found"):
        load_dataset("audiocaps", tmp_path)


def test_missing_csv_column_is_named(tmp_path):
    csv_path = tmp_path / "us8k" / "metadata" / "UrbanSound8K.csv"
    write_text(csv_path, "slice_file_name,fsID,fold,classID\n1-1-0-0.wav,1,1,3\n")
    with pytest.raises(DatasetError) as e:
        load_dataset("us8k", tmp_path)
    assert f"{csv_path} has no column 'class'" in str(e.value)


def test_macs_entry_without_sentence(tmp_path):
    write_text(
        tmp_path / "macs" / "MACS.yaml", "files:\n- filename: a.wav\n  annotations:\n  - tags: []\n"
    )
    with pytest.raises(DatasetError, match="MACS.yaml has an entry without 'sentence'"):
        load_dataset("macs", tmp_path)


def test_tut17_line_without_scene(tmp_path):
    meta = tmp_path / "tut17" / "TUT-acoustic-scenes-2017-development" / "meta.txt"
    write_text(meta, "audio/a.wav\tbeach\taa\naudio/b.wav\n")
    with pytest.raises(DatasetError, match="meta.txt line 2 has no scene column"):
        load_dataset("tut17", tmp_path)


def test_audioset_short_row(tmp_path):
    write_text(tmp_path / "audioset" / "unbalanced_train_segments.csv", "# c\n# c\n# c\nabc, 0.0\n")
    with pytest.raises(DatasetError, match="line 4 has 2 column"):
        load_dataset("audioset", tmp_path)


# --- teacher pairs and the data fraction -------------------------------------------------------


def test_teacher_pairs_pools_every_caption(root):
    manifests = [load_dataset(n, root) for n, role in ROLES.items() if role == "teacher"]
    pairs = teacher_pairs(manifests)
    # fsd50k 3 clips x 1, clotho 2 x 5, audiocaps 2 + 1 + 1, macs 3 + 2
    assert len(pairs) == 3 + 10 + 4 + 5
    assert [p.id for p in pairs] == sorted(p.id for p in pairs)
    assert (
        Pair(
            "audiocaps/r1H4Z_5Y0EI#1",
            "audiocaps/r1H4Z_5Y0EI",
            str(root / "audiocaps" / "audio" / "train" / "r1H4Z_5Y0EI.wav"),
            "a dog barks after a man speaks",
        )
        in pairs
    )


def synthetic(dataset: str, clips: int, captions: int = 1) -> Manifest:
    records = [
        Record(f"{dataset}/{i:04d}", dataset, f"/a/{i}.wav", [f"c{j}" for j in range(captions)])
        for i in range(clips)
    ]
    return Manifest(dataset, "/a", records)


def ids(pairs: list[Pair]) -> set[str]:
    return {p.id for p in pairs}


def test_fraction_subsets_are_nested_stable_and_sized():
    pool = [synthetic("clotho", 150, 2), synthetic("macs", 100)]  # N = 400
    ten, fifty, full = (teacher_pairs(pool, f, seed=3) for f in (0.1, 0.5, 1.0))
    assert (len(ten), len(fifty), len(full)) == (40, 200, 400)
    assert ids(ten) < ids(fifty) < ids(full)
    assert teacher_pairs(pool, 0.1, seed=3) == ten
    assert [p.id for p in ten] == sorted(ids(ten))
    other = teacher_pairs(pool, 0.1, seed=4)
    assert len(other) == 40 and ids(other) != ids(ten)
    assert len(teacher_pairs(pool, 0.123, seed=3)) == round(0.123 * 400) == 49
    assert len(teacher_pairs(pool, 0.001)) == 1  # round(0.4) = 0, but a positive fraction keeps one
    assert teacher_pairs(pool, 0.0) == []


def test_adding_unrelated_pairs_does_not_reshuffle():
    clotho = synthetic("clotho", 200)
    both = teacher_pairs([clotho, synthetic("fsd50k", 100)], 0.3, seed=1)
    kept = {p.id for p in both if p.record_id.startswith("clotho/")}
    # The clotho pairs kept from the pool are the top of clotho's own ranking.
    assert 0 < len(kept) < 90
    assert kept == ids(teacher_pairs([clotho], len(kept) / 200, seed=1))


def test_fraction_out_of_range_and_non_teacher_manifest():
    with pytest.raises(UserError, match="fraction must be in \\[0, 1\\], got 1.5"):
        teacher_pairs([synthetic("clotho", 3)], 1.5)
    with pytest.raises(UserError, match="esc50 is not a teacher dataset"):
        teacher_pairs([synthetic("esc50", 3)])


def test_duplicate_rows_and_header_only_wav(tmp_path):
    d = tmp_path / "esc50"
    write_text(
        d / "meta" / "esc50.csv",
        "filename,fold,target,category\na.wav,1,0,dog\na.wav,2,0,dog\nzero.wav,1,0,dog\n",
    )
    write_audio(d / "audio" / "a.wav", 0.2)
    write_audio(d / "audio" / "zero.wav", 0.0)  # a valid header with no frames
    assert (d / "audio" / "zero.wav").stat().st_size > 0
    m = load_dataset("esc50", tmp_path)
    assert [(r.id, r.fold) for r in m.records] == [("esc50/a", "1")]
    assert m.skipped == [
        (str(d / "audio" / "a.wav"), "duplicate id"),
        (str(d / "audio" / "zero.wav"), "empty"),
    ]


# --- naming conventions of the common download tools ------------------------------------------

AUDIOCAPS_HEADER = "audiocap_id,youtube_id,start_time,caption\n"


def write_audiocaps_csv(path: Path, rows: list[tuple[str, int, str]]) -> None:
    body = "".join(f"{i},{ytid},{start},{text}\n" for i, (ytid, start, text) in enumerate(rows))
    write_text(path, AUDIOCAPS_HEADER + body)


AC_TRAIN = [("r1H4Z_5Y0EI", 30, "a dog barks"), ("--0w1YA1Hm4", 0, "rain"), ("abc", 130, "x")]


@pytest.mark.parametrize("base", ["AUDIOCAPS", "."])
def test_audiocaps_aac_datasets_names_find_every_clip(tmp_path, base):
    # aac-datasets: <root>/AUDIOCAPS/csv_files_v1/<split>.csv and
    # <root>/AUDIOCAPS/audio_32000Hz/<split>/<youtube_id>_<start_time>.flac; the dataset folder
    # may hold AUDIOCAPS/ or be it.
    d = tmp_path / "audiocaps" / base
    write_audiocaps_csv(d / "csv_files_v1" / "train.csv", AC_TRAIN)
    write_audiocaps_csv(d / "csv_files_v1" / "val.csv", [("vvvvvvvvvvv", 10, "birds")])
    for ytid, start, _ in AC_TRAIN:
        write_audio(d / "audio_32000Hz" / "train" / f"{ytid}_{start}.flac", 0.1, 32000)
    write_audio(d / "audio_32000Hz" / "val" / "vvvvvvvvvvv_10.flac", 0.1, 32000)
    m = load_dataset("audiocaps", tmp_path)
    assert [r.id for r in m.records] == [
        "audiocaps/--0w1YA1Hm4",
        "audiocaps/abc",
        "audiocaps/r1H4Z_5Y0EI",
        "audiocaps/vvvvvvvvvvv",
    ]
    assert m.skipped == [] and m.convention == "aac-datasets"
    assert by_id(m)["audiocaps/vvvvvvvvvvv"].fold == "val"
    assert by_id(m)["audiocaps/abc"].source == "youtube:abc"


def test_audiocaps_aac_datasets_name_with_another_start_is_missing(tmp_path):
    d = tmp_path / "audiocaps" / "AUDIOCAPS"
    write_audiocaps_csv(d / "csv_files_v1" / "train.csv", [("r1H4Z_5Y0EI", 30, "a dog")])
    write_audio(d / "audio_32000Hz" / "train" / "r1H4Z_5Y0EI_31.flac", 0.1, 32000)
    m = load_dataset("audiocaps", tmp_path)
    assert m.records == [] and m.skipped_counts() == {"missing": 1} and m.convention == ""


def test_audiocaps_download_names_files_by_audiocap_id(tmp_path):
    # audiocaps-download: <audio_32000Hz>/<split>/<audiocap_id>.ogg, one copy per caption row.
    d = tmp_path / "audiocaps"
    write_audiocaps_csv(d / "dataset" / "train.csv", AC_TRAIN + [("r1H4Z_5Y0EI", 30, "more")])
    audio = d / "AUDIOCAPS" / "audio_32000Hz" / "train"
    write_audio(audio / "3.ogg", 0.1, 32000, format="OGG", subtype="VORBIS")  # r1H4Z_5Y0EI
    write_audio(audio / "1.ogg", 0.1, 32000, format="OGG", subtype="VORBIS")  # --0w1YA1Hm4
    m = load_dataset("audiocaps", tmp_path)
    assert [r.id for r in m.records] == ["audiocaps/--0w1YA1Hm4", "audiocaps/r1H4Z_5Y0EI"]
    assert by_id(m)["audiocaps/r1H4Z_5Y0EI"].captions == ["a dog barks", "more"]
    assert m.convention == "audiocaps-download" and m.skipped_counts() == {"missing": 1}


def test_audiocaps_2_0_metadata_and_v1_preferred(tmp_path):
    d = tmp_path / "audiocaps"
    write_audiocaps_csv(d / "dataset2.0" / "train.csv", [("aaaaaaaaaaa", 0, "v2 caption")])
    write_audio(d / "audio" / "train" / "aaaaaaaaaaa.wav", 0.1)
    write_audio(d / "audio" / "train" / "bbbbbbbbbbb.wav", 0.1)
    m = load_dataset("audiocaps", tmp_path)
    assert [(r.id, r.captions) for r in m.records] == [("audiocaps/aaaaaaaaaaa", ["v2 caption"])]
    assert m.convention == "official"
    # With both folders present (a clone of the repository), v1 (the paper's) is read.
    write_audiocaps_csv(d / "dataset" / "train.csv", [("bbbbbbbbbbb", 0, "v1 caption")])
    assert [r.id for r in load_dataset("audiocaps", tmp_path).records] == ["audiocaps/bbbbbbbbbbb"]


def test_audiocaps_aac_datasets_v2_csv_folder(tmp_path):
    d = tmp_path / "audiocaps" / "AUDIOCAPS"
    write_audiocaps_csv(d / "csv_files_v2" / "train.csv", [("aaaaaaaaaaa", 20, "v2")])
    write_audio(d / "audio_32000Hz" / "train" / "aaaaaaaaaaa_20.flac", 0.1, 32000)
    m = load_dataset("audiocaps", tmp_path)
    assert [r.id for r in m.records] == ["audiocaps/aaaaaaaaaaa"]
    assert m.convention == "aac-datasets"


def test_audiocaps_audio_named_like_an_audioset_segment(tmp_path):
    d = tmp_path / "audiocaps"
    write_audiocaps_csv(d / "dataset" / "train.csv", [("aaaaaaaaaaa", 30, "x"), ("b", 0, "y")])
    write_audio(d / "audio" / "train" / "Yaaaaaaaaaaa_30.000_40.000.wav", 0.1)
    write_audio(d / "audio" / "train" / "b_0_9.wav", 0.1)  # not the 10 s segment 0-10
    m = load_dataset("audiocaps", tmp_path)
    assert [r.id for r in m.records] == ["audiocaps/aaaaaaaaaaa"]
    assert m.convention == "Y<youtube_id>_<start>_<end> (s)"
    assert m.skipped_counts() == {"missing": 1}


AS_ID = "-0BIyqJj9ZU"


def audioset_root(tmp_path: Path, files: list[str], folder="audio/unbalanced_train") -> Path:
    d = tmp_path / "audioset"
    write_text(
        d / "unbalanced_train_segments.csv",
        f"# a\n# b\n# YTID, start_seconds, end_seconds, positive_labels\n"
        f'{AS_ID}, 30.000, 40.000, "/m/07rgt08"\n',
    )
    for name in files:
        write_audio(d / folder / name, 0.1, 16000)
    return d


@pytest.mark.parametrize(
    "name, convention",
    [
        (f"{AS_ID}.wav", "official"),
        (f"Y{AS_ID}.wav", "Y<YTID>"),
        (f"{AS_ID}_30_40.wav", "<YTID>_<start>_<end> (s)"),
        (f"{AS_ID}_30.000_40.000.flac", "<YTID>_<start>_<end> (s)"),
        (f"Y{AS_ID}_30.0_40.0.wav", "Y<YTID>_<start>_<end> (s)"),
        (f"{AS_ID}_30000_40000.flac", "<YTID>_<start>_<end> (ms)"),
        (f"Y{AS_ID}_30000_40000.wav", "Y<YTID>_<start>_<end> (ms)"),
    ],
)
def test_audioset_naming_conventions(tmp_path, name, convention):
    d = audioset_root(tmp_path, [name])
    m = audioset(d, audiocaps_folder=tmp_path / "none")
    assert [r.id for r in m.records] == [f"audioset/{AS_ID}"]
    assert m.records[0].path.endswith(f"/{name}") and m.records[0].source == f"youtube:{AS_ID}"
    assert m.convention == convention


@pytest.mark.parametrize(
    "name",
    [
        f"{AS_ID}_31_40.wav",
        f"{AS_ID}_30_41.wav",
        f"Y{AS_ID}_3000_4000.wav",  # neither seconds nor milliseconds of 30-40
        f"{AS_ID}_30000_40.wav",
        f"X{AS_ID}_30_40.wav",
        f"{AS_ID[1:]}_30_40.wav",
    ],
)
def test_audioset_other_segment_names_do_not_match(tmp_path, name):
    m = audioset(audioset_root(tmp_path, [name]), audiocaps_folder=tmp_path / "none")
    assert m.records == [] and m.skipped_counts() == {"missing": 1} and m.convention == ""


def test_audioset_audiosetdl_folder_in_milliseconds(tmp_path):
    # audiosetdl: <root>/data/<segments csv name>/audio/<YTID>_<start ms>_<end ms>.flac
    name = f"{AS_ID}_30000_40000.flac"
    d = audioset_root(tmp_path, [name], folder="data/unbalanced_train_segments/audio")
    m = audioset(d, audiocaps_folder=tmp_path / "none")
    assert m.records[0].path.endswith(f"/data/unbalanced_train_segments/audio/{name}")
    assert m.convention == "<YTID>_<start>_<end> (ms)"


def test_audioset_convention_is_the_one_most_files_matched(tmp_path):
    d = tmp_path / "audioset"
    rows = "".join(f'{i:011d}, {i}.000, {i + 10}.000, "/m/x"\n' for i in range(4))
    write_text(d / "unbalanced_train_segments.csv", "# a\n# b\n# c\n" + rows)
    audio = d / "audio" / "unbalanced_train"
    write_audio(audio / f"Y{0:011d}.wav", 0.1, 16000)
    for i in (1, 2, 3):
        write_audio(audio / f"{i:011d}_{i * 1000}_{(i + 10) * 1000}.wav", 0.1, 16000)
    m = audioset(d, audiocaps_folder=tmp_path / "none")
    assert len(m.records) == 4 and m.convention == "<YTID>_<start>_<end> (ms)"


def make_clotho_aac(root: Path, base: str = "CLOTHO_v2.1") -> Path:
    d = root / "clotho" / base
    write_text(
        d / "clotho_csv_files" / "clotho_captions_development.csv",
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        "café.wav,a,b,c,d,e\nrain.wav,a,b,c,d,e\n",
    )
    # The metadata CSV as Clotho publishes it: ISO-8859-1, not UTF-8.
    (d / "clotho_csv_files" / "clotho_metadata_development.csv").write_bytes(
        "file_name,keywords,sound_id,sound_link,start_end_samples,manufacturer,license\n"
        'café.wav,bar;cups,48226,https://freesound.org/x,"[0, 1]",Zoé,cc\n'
        "rain.wav,rain,  ,,,,\n".encode("iso-8859-1")
    )
    for name in ("café.wav", "rain.wav"):
        write_audio(d / "clotho_audio_files" / "development" / name, 0.1)
    return d


@pytest.mark.parametrize("base", ["CLOTHO_v2.1", "."])
def test_clotho_aac_datasets_layout_and_sound_ids(tmp_path, base):
    make_clotho_aac(tmp_path, base)
    m = load_dataset("clotho", tmp_path)
    assert [r.id for r in m.records] == ["clotho/café", "clotho/rain"]
    assert m.convention == "aac-datasets" and m.skipped == []
    assert [r.source for r in m.records] == ["freesound:48226", ""]


def test_macs_aac_datasets_and_tau_archive_folders(tmp_path):
    d = tmp_path / "macs"
    write_text(d / "MACS" / "MACS.yaml", MACS_YAML)
    write_audio(d / "MACS" / "audio" / "airport-lisbon-1000-40000-a.wav", 0.1, 48000)
    tau = d / "TAU-urban-acoustic-scenes-2019-development" / "audio"
    write_audio(tau / "park-helsinki-241-7185-a.wav", 0.1, 48000)
    m = load_dataset("macs", tmp_path)
    assert [r.id for r in m.records] == [
        "macs/airport-lisbon-1000-40000-a",
        "macs/park-helsinki-241-7185-a",
    ]
    assert m.convention in ("aac-datasets", "TAU archive") and m.skipped == []


def test_official_layouts_say_official(root):
    for name in ("esc50", "us8k", "tut17", "fsd50k", "clotho", "audiocaps", "macs", "audioset"):
        assert load_dataset(name, root).convention == "official", name


def test_no_readable_audio_keeps_the_manifest_and_says_where_it_looked(tmp_path):
    write_audiocaps_csv(tmp_path / "audiocaps" / "dataset" / "train.csv", AC_TRAIN)
    m = load_dataset("audiocaps", tmp_path)
    assert m.records == [] and m.skipped_counts() == {"missing": 3} and m.convention == ""
    assert m.looked_for == expected_audio("audiocaps")
    assert "audio/<split>/<youtube_id>.wav" in m.looked_for
    assert "<youtube_id>_<start_time>.flac (aac-datasets)" in m.looked_for


# --- sources ----------------------------------------------------------------------------------


def test_sources_name_the_recording(root):
    assert by_id(load_dataset("esc50", root))["esc50/1-100032-A-0"].source == "freesound:100032"
    assert by_id(load_dataset("us8k", root))["us8k/100263-2-0-117"].source == "freesound:100263"
    assert by_id(load_dataset("fsd50k", root))["fsd50k/64760"].source == "freesound:64760"
    ac = by_id(load_dataset("audiocaps", root))
    assert ac["audiocaps/r1H4Z_5Y0EI"].source == "youtube:r1H4Z_5Y0EI"
    assert load_dataset("audioset", root).records[0].source == "youtube:---1_cCGK4M"
    assert {r.source for r in load_dataset("macs", root).records} == {""}
    assert {r.source for r in load_dataset("clotho", root).records} == {""}  # no metadata CSV


def test_manifest_saved_before_the_new_fields_loads(tmp_path):
    old = {
        "dataset": "esc50",
        "root": "/a",
        "records": [{"id": "esc50/x", "dataset": "esc50", "path": "/a/x.wav", "fold": "1"}],
        "skipped": [["/a/y.wav", "missing"]],
    }
    (tmp_path / "m.json").write_text(json.dumps(old))
    m = Manifest.load(tmp_path / "m.json")
    assert m.records[0].source == "" and m.convention == "" and m.looked_for == ""
    assert m.skipped == [("/a/y.wav", "missing")]
    m.convention, m.records[0].source = "official", "freesound:1"
    m.save(tmp_path / "n.json")
    assert Manifest.load(tmp_path / "n.json") == m


# --- unreadable metadata ----------------------------------------------------------------------


def test_cp949_csv_names_the_line_and_the_fix(tmp_path):
    csv_path = tmp_path / "clotho" / "clotho_captions_development.csv"
    text = (
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\na.wav,개가 짖는다,b,c,d,e\n"
    )
    csv_path.parent.mkdir(parents=True)
    csv_path.write_bytes(text.encode("cp949"))
    with pytest.raises(DatasetError) as e:
        load_dataset("clotho", tmp_path)
    message = str(e.value)
    assert isinstance(e.value, UserError) and "\n" not in message
    assert message.startswith(f"clotho: {csv_path} is not UTF-8 text (line 2: byte 0x")
    assert "re-save it as UTF-8: iconv -f cp949 -t utf-8" in message


def test_utf16_csv_is_named_as_such(tmp_path):
    csv_path = tmp_path / "esc50" / "meta" / "esc50.csv"
    csv_path.parent.mkdir(parents=True)
    csv_path.write_bytes("filename,fold,category\na.wav,1,dog\n".encode("utf-16"))
    with pytest.raises(DatasetError, match=r"is not UTF-8 text \(line 1.*iconv -f utf-16"):
        load_dataset("esc50", tmp_path)


@pytest.mark.parametrize(
    "dataset, relative, text, line",
    [
        ("macs", "MACS.yaml", "files:\n- filename: caf\u00e9.wav\n", 2),
        ("audioset", "unbalanced_train_segments.csv", "# a\n# b\n# c\ncaf\u00e9, 0, 10, x\n", 4),
        ("tut17", "TUT-acoustic-scenes-2017-development/meta.txt", "a.wav\tx\ncaf\u00e9\tx\n", 2),
        ("fsd50k", "FSD50K.metadata/dev_clips_info_FSD50K.json", '{\n"1": "caf\u00e9"}', 2),
    ],
)
def test_every_metadata_reader_rejects_non_utf8(tmp_path, dataset, relative, text, line):
    d = tmp_path / dataset
    if dataset == "fsd50k":
        write_text(d / "FSD50K.ground_truth" / "dev.csv", "fname,split\n1,train\n")
    path = d / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("cp1252"))
    with pytest.raises(DatasetError) as e:
        load_dataset(dataset, tmp_path)
    assert str(e.value).startswith(f"{dataset}: {path} is not UTF-8 text (line {line}: byte 0xe9)")
    assert "iconv -f cp1252 -t utf-8" in str(e.value)


def test_semicolon_csv_says_so(tmp_path):
    write_text(tmp_path / "esc50" / "meta" / "esc50.csv", "filename;fold;category\na.wav;1;dog\n")
    with pytest.raises(DatasetError) as e:
        load_dataset("esc50", tmp_path)
    assert "has no column 'filename' (found: filename;fold;category)" in str(e.value)
    assert "the header looks ';'-separated; expected commas" in str(e.value)


def test_tab_separated_csv_says_so(tmp_path):
    write_text(
        tmp_path / "us8k" / "metadata" / "UrbanSound8K.csv",
        "slice_file_name\tfsID\tfold\tclass\na.wav\t1\t1\tdog_bark\n",
    )
    with pytest.raises(DatasetError, match=r"the header looks '\\t'-separated; expected commas"):
        load_dataset("us8k", tmp_path)


def test_missing_column_in_a_comma_csv_gives_no_delimiter_hint(tmp_path):
    write_text(tmp_path / "esc50" / "meta" / "esc50.csv", "filename,fold\na.wav,1\n")
    with pytest.raises(DatasetError) as e:
        load_dataset("esc50", tmp_path)
    assert "no column 'category' (found: filename, fold)" in str(e.value)
    assert "separated" not in str(e.value)


def test_audioset_and_tut17_delimiters(tmp_path):
    write_text(
        tmp_path / "audioset" / "unbalanced_train_segments.csv", "# c\n# c\n# c\nabc;0;10;x\n"
    )
    with pytest.raises(
        DatasetError,
        match="line 4 has 1 column\\(s\\); the line looks ';'-separated; expected commas",
    ):
        load_dataset("audioset", tmp_path)
    meta = tmp_path / "tut17" / "TUT-acoustic-scenes-2017-development" / "meta.txt"
    write_text(meta, "audio/a.wav,beach,a001\n")
    with pytest.raises(
        DatasetError,
        match="line 1 has no scene column; the line looks ','-separated; expected tabs",
    ):
        load_dataset("tut17", tmp_path)


def test_malformed_yaml_and_json_name_the_line(tmp_path):
    write_text(tmp_path / "macs" / "MACS.yaml", "files:\n- filename: a.wav\n  annotations: [\n")
    with pytest.raises(DatasetError, match=r"MACS.yaml is not valid YAML \(line \d+: "):
        load_dataset("macs", tmp_path)
    d = tmp_path / "fsd50k"
    write_text(d / "FSD50K.ground_truth" / "dev.csv", "fname,split\n1,train\n")
    write_text(d / "FSD50K.metadata" / "dev_clips_info_FSD50K.json", '{\n"1": {"title": }\n}')
    with pytest.raises(
        DatasetError, match=r"is not valid JSON \(line 2, column 16: Expecting value\)"
    ):
        load_dataset("fsd50k", tmp_path)
