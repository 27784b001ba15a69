"""The dataset adapters on small trees in each official layout, with real audio files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clapsweep.data.adapters import audioset
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
