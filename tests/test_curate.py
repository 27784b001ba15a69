"""DU / DS / ADS curation on hand-made embeddings whose cosines are known exactly."""

import json
import math

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from clapsweep.curate import (
    EmptyImprovementSetError,
    ImprovementSet,
    LeakageError,
    ads_pairs,
    build_ads,
    build_ds,
    build_du,
    check_no_task_audio,
    ds_select,
    du_pairs,
    prompt_similarity,
    require_nonempty,
    threshold_pairs,
)
from clapsweep.errors import UserError

S3 = math.sqrt(3.0)


def unit(deg: float) -> list[float]:
    r = math.radians(deg)
    return [math.cos(r), math.sin(r)]


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# Captions and prompts in 3-d. Max cosine over the prompts p0 = e1, p1 = (0, 1/2, sqrt3/2):
# c0 = e1 -> 1 (p0); c1 = e2 -> 0.5 (p1); c2 = e3 -> sqrt3/2 (p1); c3 = (e1+e2)/sqrt2 -> 1/sqrt2 (p0)
CAPTIONS = t([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
PROMPTS = t([[1, 0, 0], [0, 0.5, S3 / 2]])
CAPTION_TEXT = ["c0 ünïcode", "c1", "c2", "c3"]
# Wild audio: a0 = e2 (only c1 matches, not a DS caption at 0.7), a1 = e3 (c2), a2 = e1 (c0, c3)
WILD = t([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
WILD_IDS = ["audioset/a0", "audioset/a1", "audioset/a2"]


def brute_force(text: torch.Tensor, audio: torch.Tensor, sigma: float):
    tn = torch.nn.functional.normalize(text.double(), dim=1)
    an = torch.nn.functional.normalize(audio.double(), dim=1)
    sims = (tn @ an.T).numpy()
    ti, ai = np.nonzero(sims >= sigma)
    order = np.lexsort((ti, ai))
    return ti[order], ai[order], sims[ti[order], ai[order]]


# --- threshold_pairs ---------------------------------------------------------------------------


def test_threshold_boundary_is_inclusive():
    text = t([unit(0)])
    # cos 0 = 1, cos 60 = 0.5, cos 61 = 0.4848, cos 90 = 0; scaled rows test the normalisation
    audio = t([[3.0, 0.0], [1.0, S3], unit(61), unit(90)])
    ti, ai, s = threshold_pairs(text, audio, 0.5)
    assert ti.tolist() == [0, 0] and ai.tolist() == [0, 1]
    np.testing.assert_allclose(s, [1.0, 0.5], atol=1e-6)
    assert ti.dtype == np.int64 and ai.dtype == np.int64 and s.dtype == np.float32
    # identical direction reaches sigma = 1.0 exactly
    ti, ai, _ = threshold_pairs(text, audio, 1.0)
    assert ai.tolist() == [0]
    # just above cos 60: the 60-degree clip drops out
    _, ai, _ = threshold_pairs(text, audio, 0.5 + 1e-4)
    assert ai.tolist() == [0]


def test_sorted_by_audio_then_text():
    text = t([unit(0), unit(10), unit(-10)])
    audio = t([unit(5), unit(0)])
    ti, ai, s = threshold_pairs(text, audio, 0.9, chunk=2)
    assert list(zip(ai.tolist(), ti.tolist(), strict=True)) == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    expected = [math.cos(math.radians(d)) for d in (5, 5, 15, 0, 10, 10)]
    np.testing.assert_allclose(s, expected, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_chunked_equals_unchunked_and_brute_force(chunk):
    g = torch.Generator().manual_seed(0)
    text = torch.randn(50, 8, generator=g)
    audio = torch.randn(41, 8, generator=g)
    ref = threshold_pairs(text, audio, 0.3, chunk=10**6)
    got = threshold_pairs(text, audio, 0.3, chunk=chunk)
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[2], ref[2], atol=1e-6)
    bt, ba, bs = brute_force(text, audio, 0.3)
    assert len(bt) > 50  # the threshold keeps a real share of the 2050 pairs
    assert np.array_equal(got[0], bt) and np.array_equal(got[1], ba)
    np.testing.assert_allclose(got[2], bs, atol=1e-6)


def test_top_k_keeps_the_k_most_similar_captions_per_clip():
    text = t([unit(30), unit(0), unit(20), unit(10)])  # cos 0.866, 1, 0.940, 0.985 to unit(0)
    audio = t([unit(0), unit(90)])
    ti, ai, s = threshold_pairs(text, audio, 0.9, top_k=2)
    assert ai.tolist() == [0, 0] and ti.tolist() == [1, 3]  # sorted by text index in the output
    np.testing.assert_allclose(s, [1.0, math.cos(math.radians(10))], atol=1e-6)
    # the cap does not add pairs below sigma: only 3 captions reach 0.9
    ti, _, _ = threshold_pairs(text, audio, 0.9, top_k=10)
    assert ti.tolist() == [1, 2, 3]


@pytest.mark.parametrize("chunk", [1, 2, 3, 64])
def test_top_k_is_chunk_independent_with_ties(chunk):
    g = torch.Generator().manual_seed(1)
    text = torch.randn(30, 6, generator=g)
    text[10] = text[3]  # exact ties: the lower caption index wins
    text[20] = text[3]
    audio = torch.cat([text[3:4], torch.randn(20, 6, generator=g)])
    ref = threshold_pairs(text, audio, 0.2, top_k=2, chunk=10**6)
    got = threshold_pairs(text, audio, 0.2, top_k=2, chunk=chunk)
    assert np.array_equal(got[0], ref[0]) and np.array_equal(got[1], ref[1])
    assert ref[0][ref[1] == 0].tolist() == [3, 10]
    # each clip: at most 2 captions, and they are its 2 best above sigma
    bt, ba, bs = brute_force(text, audio, 0.2)
    for clip in range(audio.shape[0]):
        best = np.sort(bs[ba == clip])[::-1][:2]
        np.testing.assert_allclose(np.sort(got[2][got[1] == clip])[::-1], best, atol=1e-6)


def test_bf16_input_on_cpu_is_computed_in_float32():
    text = t([unit(0)]).bfloat16()
    audio = t([[1.0, S3]]).bfloat16()
    _, ai, s = threshold_pairs(text, audio, 0.45)
    assert ai.tolist() == [0] and s.dtype == np.float32
    exact = float(torch.nn.functional.normalize(audio.float(), dim=1)[0, 0])
    assert abs(s[0] - exact) < 1e-6


def test_empty_inputs_give_empty_arrays():
    ti, ai, s = threshold_pairs(torch.zeros(0, 4), torch.randn(5, 4), 0.5, top_k=3)
    assert len(ti) == len(ai) == len(s) == 0
    ti, ai, s = threshold_pairs(torch.randn(5, 4), torch.zeros(0, 4), 0.5)
    assert len(ti) == 0


class LargestTensor(TorchFunctionMode):
    """Records the largest tensor any torch call returns while the mode is active."""

    def __init__(self):
        super().__init__()
        self.numel = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for x in out if isinstance(out, tuple | list) else (out,):
            if isinstance(x, torch.Tensor):
                self.numel = max(self.numel, x.numel())
        return out


def test_search_memory_is_bounded_by_chunk():
    # 20000 x 20000 similarities would be 4e8 floats (1.6 GB); chunk 2048 caps blocks at 4.2e6.
    g = torch.Generator().manual_seed(0)
    text = torch.randn(20000, 16, generator=g)
    audio = torch.randn(20000, 16, generator=g)
    audio[:10] = text[:10] * 2  # 10 planted pairs at cosine 1; random 16-d pairs stay < 0.999
    with LargestTensor() as seen:
        ti, ai, _ = threshold_pairs(text, audio, 0.999, chunk=2048)
    assert ti.tolist() == list(range(10)) and ai.tolist() == list(range(10))
    assert seen.numel == 2048 * 2048


# --- DU / DS / ADS -------------------------------------------------------------------------------


def test_du_pairs_is_threshold_pairs():
    ti, ai, s = du_pairs(CAPTIONS, WILD, 0.7)
    assert list(zip(ti.tolist(), ai.tolist(), strict=True)) == [
        (1, 0),
        (3, 0),
        (2, 1),
        (0, 2),
        (3, 2),
    ]
    np.testing.assert_allclose(s, [1, 1 / math.sqrt(2), 1, 1, 1 / math.sqrt(2)], atol=1e-6)


def test_prompt_similarity_is_the_max_over_prompts():
    for chunk in (1, 3, 100):
        np.testing.assert_allclose(
            prompt_similarity(CAPTIONS, PROMPTS, chunk=chunk),
            [1.0, 0.5, S3 / 2, 1 / math.sqrt(2)],
            atol=1e-6,
        )


def test_ds_select_thresholds_the_max_over_prompts():
    idx, sims = ds_select(CAPTIONS, PROMPTS, 0.7)
    assert idx.tolist() == [0, 2, 3]  # c2 via prompt 1, c0 and c3 via prompt 0
    np.testing.assert_allclose(sims, [1.0, S3 / 2, 1 / math.sqrt(2)], atol=1e-6)
    idx, _ = ds_select(CAPTIONS, PROMPTS, 0.5)  # c1's max is exactly 0.5: included
    assert idx.tolist() == [0, 1, 2, 3]


def test_ads_uses_only_ds_captions():
    ci, ai, s = ads_pairs(CAPTIONS, PROMPTS, WILD, 0.7, 0.7, chunk=2)
    # c1 matches a0 at cosine 1 but is not a DS caption: a0 gets only c3 (a DS caption)
    assert list(zip(ci.tolist(), ai.tolist(), strict=True)) == [(3, 0), (2, 1), (0, 2), (3, 2)]
    np.testing.assert_allclose(s, [1 / math.sqrt(2), 1, 1, 1 / math.sqrt(2)], atol=1e-6)
    ci, ai, _ = ads_pairs(CAPTIONS, PROMPTS, WILD, 0.7, 0.75)
    assert ci.tolist() == [2, 0] and ai.tolist() == [1, 2]
    ci, ai, _ = ads_pairs(CAPTIONS, PROMPTS, WILD, 0.7, 0.7, top_k=1)
    assert ci.tolist() == [3, 2, 0] and ai.tolist() == [0, 1, 2]


def test_build_ds_pairs_captions_with_their_own_audio():
    caption_clips = ["clotho/x", "clotho/y", "fsd50k/z", "clotho/x"]
    imp = build_ds(CAPTIONS, PROMPTS, 0.7, CAPTION_TEXT, caption_clips, "esc50")
    assert imp.pairs() == [
        ("c0 ünïcode", "clotho/x", pytest.approx(1.0)),
        ("c2", "fsd50k/z", pytest.approx(S3 / 2)),
        ("c3", "clotho/x", pytest.approx(1 / math.sqrt(2))),
    ]
    assert imp.counts() == {"n_pairs": 3, "n_unique_captions": 3, "n_unique_clips": 2}
    assert imp.max_sims["sigma_ds"] == pytest.approx(1.0)


def test_build_ads_tables_and_counts():
    imp = build_ads(CAPTIONS, PROMPTS, WILD, 0.7, 0.75, CAPTION_TEXT, WILD_IDS, "esc50")
    assert len(imp) == 2
    assert imp.captions == ["c0 ünïcode", "c2"]  # only the used entries are kept
    assert imp.clips == ["audioset/a1", "audioset/a2"]
    assert imp.pairs() == [
        ("c2", "audioset/a1", pytest.approx(1.0)),
        ("c0 ünïcode", "audioset/a2", pytest.approx(1.0)),
    ]
    assert imp.counts() == {"n_pairs": 2, "n_unique_captions": 2, "n_unique_clips": 2}
    assert imp.searched == {"teacher_captions": 4, "prompts": 2, "captions": 3, "clips": 3}
    assert imp.max_sims["sigma_ads"] == pytest.approx(1.0)


# --- empty sets and leakage --------------------------------------------------------------------


def test_empty_ads_message_names_threshold_counts_and_max():
    wild = t([[0, 0.6, 0.8]])  # cosines to DS captions c0, c2, c3: 0, 0.8, 0.424
    imp = build_ads(CAPTIONS, PROMPTS, wild, 0.7, 0.9, CAPTION_TEXT, ["audioset/w"], "esc50")
    assert len(imp) == 0
    with pytest.raises(EmptyImprovementSetError) as e:
        require_nonempty(imp)
    assert str(e.value) == (
        "ads for esc50: no pair reached sigma_ads=0.9 (3 DS captions x 1 wild clips; "
        "max similarity 0.8); lower sigma_ads"
    )
    assert isinstance(e.value, UserError)


def test_empty_ds_step_is_reported_for_ds_and_ads():
    caps, text = CAPTIONS[1:3], ["c1", "c2"]  # max over prompts: 0.5 and 0.866
    imp = build_ds(caps, PROMPTS, 0.9, text, ["clotho/y", "clotho/z"], "us8k")
    with pytest.raises(EmptyImprovementSetError, match=r"^ds for us8k: no caption reached ") as e:
        require_nonempty(imp)
    assert "sigma_ds=0.9 (2 teacher captions x 2 class prompts; max similarity 0.866)" in str(
        e.value
    )
    imp = build_ads(caps, PROMPTS, WILD, 0.9, 0.5, text, WILD_IDS, "tut17")
    with pytest.raises(EmptyImprovementSetError, match=r"^ads for tut17: no caption reached "):
        require_nonempty(imp)


def test_empty_du_message_and_nonempty_passes():
    imp = build_du(t([unit(0)]), t([[0.0, 1.0]]), 0.75, ["c"], ["audioset/w"])
    with pytest.raises(EmptyImprovementSetError) as e:
        require_nonempty(imp)
    assert str(e.value) == (
        "du: no pair reached sigma=0.75 (1 captions x 1 wild clips; max similarity 0); lower sigma"
    )
    full = build_du(t([unit(0)]), t([unit(0)]), 0.75, ["c"], ["audioset/w"])
    assert require_nonempty(full) is full


def test_leakage_check():
    check_no_task_audio(["audioset/abc", "clotho/x", "esc50_extra/1", "audioset/esc50/2"])
    with pytest.raises(LeakageError, match=r"1 clip\(s\).*us8k/7061-6-0-0") as e:
        check_no_task_audio(["audioset/abc", "us8k/7061-6-0-0"])
    assert isinstance(e.value, UserError)
    with pytest.raises(LeakageError):
        check_no_task_audio(["mytask/a"], task_datasets=("mytask",))


def test_task_audio_never_enters_a_set(tmp_path):
    with pytest.raises(LeakageError):
        build_du(CAPTIONS, WILD, 0.7, CAPTION_TEXT, ["audioset/a0", "esc50/1-100-A-0", "x/y"])
    imp = build_du(CAPTIONS, WILD, 0.7, CAPTION_TEXT, WILD_IDS)
    imp.clips[0] = "tut17/a001_0_10"  # tampered after curation: save still refuses
    with pytest.raises(LeakageError):
        imp.save(tmp_path / "du")
    assert list(tmp_path.iterdir()) == []


# --- file format ---------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    imp = build_ads(CAPTIONS, PROMPTS, WILD, 0.7, 0.75, CAPTION_TEXT, WILD_IDS, "esc50")
    out = imp.save(tmp_path / "sets" / "ads-esc50")
    assert sorted(p.name for p in out.iterdir()) == [
        "captions.json",
        "clips.json",
        "counts.json",
        "pairs.npz",
    ]
    counts = json.loads((out / "counts.json").read_text())
    assert counts["n_pairs"] == 2 and counts["n_unique_clips"] == 2
    assert counts["strategy"] == "ads" and counts["sigmas"] == {"sigma_ds": 0.7, "sigma_ads": 0.75}
    back = ImprovementSet.load(out)
    assert back.pairs() == imp.pairs()
    assert (back.strategy, back.task, back.sigmas) == ("ads", "esc50", imp.sigmas)
    assert back.max_sims == pytest.approx(imp.max_sims) and back.searched == imp.searched
    assert back.caption_idx.dtype == np.int64 and back.sims.dtype == np.float32
    # overwrite in place: the new content replaces the old, no temporary folder is left
    build_du(CAPTIONS, WILD, 0.99, CAPTION_TEXT, WILD_IDS).save(out)
    again = ImprovementSet.load(out)
    assert again.strategy == "du" and again.task == "" and len(again) == 3
    assert [p.name for p in (tmp_path / "sets").iterdir()] == ["ads-esc50"]


def test_empty_set_round_trips(tmp_path):
    imp = build_du(t([unit(0)]), t([[0.0, 1.0]]), 0.75, ["c"], ["audioset/w"])
    back = ImprovementSet.load(imp.save(tmp_path / "e"))
    assert len(back) == 0 and back.captions == [] and back.max_sims == {"sigma": 0.0}


def test_load_missing_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"pairs\.npz: missing"):
        ImprovementSet.load(tmp_path / "nothing")


def test_build_du_honours_top_k():
    """top_k reaches the search through build_du itself (not only threshold_pairs)."""
    g = torch.Generator().manual_seed(0)
    captions = torch.randn(20, 8, generator=g)
    wild = captions[:5] + 0.01 * torch.randn(5, 8, generator=g)
    caps = [f"c{i}" for i in range(20)]
    clips = [f"audioset/w{i}" for i in range(5)]
    full = build_du(captions, wild, -1.0, caps, clips)
    capped = build_du(captions, wild, -1.0, caps, clips, top_k=1)
    assert len(full.caption_idx) == 100 and len(capped.caption_idx) == 5
    assert sorted(capped.caption_idx.tolist()) == list(range(5))  # each clip's own caption
