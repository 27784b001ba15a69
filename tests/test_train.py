"""The trainer: replay sampling, deterministic resume, soft-label students, corrupt clips."""

import contextlib
import math
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import small_tmpfs

from clapsweep.config import FrontendConfig, ModelConfig, TrainConfig
from clapsweep.data.cache import AudioCache
from clapsweep.data.datasets import Pair
from clapsweep.errors import UserError
from clapsweep.loader import MAIN, REPLAY, epoch_batches
from clapsweep.losses import clap_loss, soft_clap_loss
from clapsweep.models.clap import CLAP
from clapsweep.train import TrainData, _batch_loss, load_weights, planned_steps, train


@pytest.fixture(autouse=True)
def _no_weights_left(tmp_path):
    """A model.pt that trains MiniLM is 87 MB: none outlives its test."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


FRONT = FrontendConfig(
    sample_rate=8000, clip_seconds=0.5, n_fft=256, win_length=256, hop_length=128, n_mels=16,
    f_max=4000.0,
)  # fmt: skip
MODEL = ModelConfig(audio="small_cnn", audio_width=4, text="minilm", text_pooling="mean", dim=16)
WORDS = ["a dog barks", "rain falls", "a bell rings", "an engine hums", "birds sing", "wind"]


def test_replay_fraction_is_r_and_seeded():
    draws = [
        b[0].source
        for epoch in range(200)
        for b in epoch_batches(100, 50, 10, 0.3, seed=1, epoch=epoch)
    ]
    assert len(draws) == 2000
    assert abs(draws.count(REPLAY) / len(draws) - 0.3) < 0.03
    a = epoch_batches(100, 50, 10, 0.3, seed=1, epoch=5)
    assert a == epoch_batches(100, 50, 10, 0.3, seed=1, epoch=5)
    assert a != epoch_batches(100, 50, 10, 0.3, seed=2, epoch=5)


def test_epoch_covers_main_set_once_without_replay():
    batches = epoch_batches(10, 0, 4, 0.0, seed=0, epoch=0)
    idx = [item.index for b in batches for item in b]
    assert sorted(idx) == list(range(10))  # batches of 4, 4, 2
    assert all(item.source == MAIN for b in batches for item in b)
    # A trailing batch of one pair has no negative: dropped.
    assert [len(b) for b in epoch_batches(9, 0, 4, 0.0, seed=0, epoch=0)] == [4, 4]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    out = []
    for i in range(8):
        path = root / f"c{i}.wav"
        t = np.arange(int(16000 * 0.7)) / 16000
        sf.write(
            path,
            0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.01 * rng.normal(size=t.size),
            16000,
        )
        out.append(Pair(f"p{i}", f"c{i}", str(path), WORDS[i % len(WORDS)]))
    return out


def _train(out, pairs, cfg, report=None, data=None, on_epoch=None):
    torch.manual_seed(0)
    model = CLAP(MODEL, FRONT)
    data = data or TrainData(main=pairs)
    result = train(
        model,
        data,
        cfg,
        out,
        AudioCache(None, FRONT.sample_rate),
        FRONT.clip_samples,
        report=report,
        on_epoch=on_epoch,
    )
    return model, result


def test_an_epoch_hook_cannot_change_the_training(tmp_path, pairs):
    """A search's per-epoch validation runs in the training: a hook that draws random
    numbers and leaves the model in train mode must not change one weight (dropout on)."""
    cfg = TrainConfig(batch_size=4, epochs=3, lr=1e-3, seed=3, replay=0.0)
    ref, _ = _train(tmp_path / "a", pairs, cfg)
    seen = []

    def hook(epochs_done, model):
        seen.append((epochs_done, model.training))
        torch.rand(1000)  # the global stream the training's dropout draws from
        model.train()

    hooked, _ = _train(tmp_path / "b", pairs, cfg, on_epoch=hook)
    assert seen == [(1, False), (2, False), (3, False)]  # after each epoch, in eval mode
    for (name, a), b in zip(ref.state_dict().items(), hooked.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_interrupted_run_resumes_to_identical_weights(tmp_path, pairs):
    cfg = TrainConfig(batch_size=4, epochs=2, lr=1e-3, seed=3, log_every=1)
    ref, result = _train(tmp_path / "a", pairs, cfg)
    assert result["steps"] == 4 and result["epochs"] == 2

    def crash(event):
        if event["step"] == 3:  # in the second epoch, after the first epoch's checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "b", pairs, cfg, report=crash)
    resumed, result = _train(tmp_path / "b", pairs, cfg)
    assert result["steps"] == 4
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_soft_label_student_with_replay_trains(tmp_path, pairs):
    teacher = (torch.randn(8, 16), torch.randn(8, 16))
    data = TrainData(
        main=pairs[:6],
        replay=pairs[6:],
        main_teacher=teacher,
        replay_teacher=(teacher[0][6:], teacher[1][6:]),
    )
    cfg = TrainConfig(batch_size=2, epochs=1, beta=0.3, replay=0.5, soft_target="paper", seed=0)
    _, result = _train(tmp_path, pairs, cfg, data=data)
    assert result["steps"] == 3 and np.isfinite(result["final_loss"])


def test_corrupt_clip_is_skipped_and_counted(tmp_path, pairs):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    data = TrainData(main=[*pairs[:3], Pair("bad", "bad", str(bad), "noise")])
    cfg = TrainConfig(batch_size=4, epochs=1, seed=0)
    _, result = _train(tmp_path / "o", pairs, cfg, data=data)
    assert result["skipped_clips"] == 1 and result["steps"] == 1
    assert result["unreadable_clips"] == [str(bad)]


def test_training_that_cannot_fit_its_checkpoints_stops_before_the_first_step(tmp_path, pairs):
    """On a 4 MiB tmpfs (a real small filesystem; root only) the checkpoints of a model that
    trains its text tower (7 x 90 MB of trainable weights and moments) cannot fit: ENOSPC with the need, before any step
    and before anything is written, so the sweep stops with its disk-full message at once."""
    import errno

    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        steps = []
        cfg = TrainConfig(batch_size=4, epochs=1, seed=0, log_every=1, freeze_text=False)
        with pytest.raises(OSError) as caught:
            _train(disk / "o", pairs, cfg, report=steps.append)
        assert caught.value.errno == errno.ENOSPC and "MB is needed" in caught.value.strerror
        assert caught.value.filename == str(disk / "o" / "checkpoint.pt")
        assert steps == [] and list((disk / "o").iterdir()) == []


# ----------------------------------------------------------------------------- batches


@pytest.mark.parametrize("n_replay", [5, 40, 300])
def test_no_batch_holds_a_pair_twice(n_replay):
    """Replay and main batches are drawn without repeats, whatever the set sizes (a repeated
    pair is its own negative in the contrastive loss)."""
    for epoch in range(20):
        for batch in epoch_batches(37, n_replay, 16, 0.5, seed=epoch, epoch=epoch, n_batches=30):
            idx = [item.index for item in batch]
            assert len(idx) == len(set(idx)) >= 2
            assert len(idx) <= 16


def test_streams_cover_each_set_before_repeating():
    """Each source is read in permutations: the first pass over a source sees every pair once."""
    batches = epoch_batches(10, 25, 5, 0.5, seed=4, epoch=0, n_batches=40)
    for source, n in ((MAIN, 10), (REPLAY, 25)):
        seen = [i.index for b in batches if b[0].source == source for i in b]
        assert sorted(seen[:n]) == list(range(n))


def test_teacher_epoch_gives_every_strategy_the_same_steps():
    """The authors' loop: an epoch has the teacher set's batches, whatever the main set's size."""
    cfg = TrainConfig(batch_size=32, epochs=3)
    assert {planned_steps(cfg, n, 1000) for n in (2, 50, 100_000)} == {3 * 32}
    assert planned_steps(TrainConfig(batch_size=32, epochs=3, epoch="improvement"), 64, 1000) == 6
    assert planned_steps(TrainConfig(batch_size=32, epochs=3, steps_per_epoch=7), 64, 1000) == 21
    assert len(epoch_batches(50, 900, 32, 0.5, seed=0, epoch=0, n_batches=31)) == 31


# ----------------------------------------------------------------------------- soft labels


def _wired_batch(model, pairs):
    """A replay batch and a main batch of real crops, with the teacher embeddings of each
    source made very different (audio vs text, main vs replay), and the student's logits."""
    g = torch.Generator().manual_seed(0)

    def alike(n):  # rows that are all similar: much soft mass off the diagonal
        return 1.0 + 0.2 * torch.randn(n, 16, generator=g)

    main_t = (alike(5), torch.randn(5, 16, generator=g))
    replay_t = (torch.randn(3, 16, generator=g), alike(3))
    data = TrainData(main=pairs[:5], replay=pairs[5:], main_teacher=main_t, replay_teacher=replay_t)
    cache = AudioCache(None, FRONT.sample_rate)
    waves = [cache.load(p.path)[: FRONT.clip_samples] for p in pairs]
    caps = [p.caption for p in pairs]
    batches = {
        "main": {"audio": torch.stack(waves[1:4]), "captions": caps[1:4], "source": MAIN,
                 "index": torch.tensor([0, 1, 2]) + 1},
        "replay": {"audio": torch.stack(waves[5:8]), "captions": caps[5:8], "source": REPLAY,
                   "index": torch.tensor([0, 1, 2])},
    }  # fmt: skip
    return data, batches


def test_batch_loss_uses_the_batch_sources_teacher_embeddings(pairs):
    """Fails if audio and text teacher embeddings are swapped, or if a replay batch takes the
    main set's teacher rows: each mistake gives a different loss on this hand-built batch."""
    model = CLAP(MODEL, FRONT)
    data, batches = _wired_batch(model, pairs)
    cfg = TrainConfig(beta=0.5, soft_target="normalized")
    for name, batch in batches.items():
        n = len(batch["captions"])
        # Hand-made, clearly asymmetric logits stand in for the student's forward pass, so
        # the audio-row and text-column targets cannot be exchanged unnoticed.
        logits = torch.randn(n, n, generator=torch.Generator().manual_seed(n))
        got = _batch_loss(model, lambda *_, x=logits: x, None, batch, data, cfg,
                          torch.device("cpu"), contextlib.nullcontext())  # fmt: skip
        own = data.main_teacher if name == "main" else data.replay_teacher
        other = data.replay_teacher if name == "main" else data.main_teacher
        idx = batch["index"]
        right = soft_clap_loss(logits, own[0][idx], own[1][idx], 0.5, "normalized")
        swapped = soft_clap_loss(logits, own[1][idx], own[0][idx], 0.5, "normalized")
        assert torch.allclose(got, right, atol=1e-6), name
        assert not torch.allclose(got, swapped, atol=1e-4), name
        if name == "replay":
            wrong = soft_clap_loss(logits, other[0][idx], other[1][idx], 0.5, "normalized")
            assert not torch.allclose(got, wrong, atol=1e-4)


def test_student_logs_how_soft_its_targets_are(tmp_path, pairs):
    """Per epoch: the off-diagonal target mass of audio and text rows and the row sums; the
    authors' `paper` targets are not distributions (row sums above 1), `normalized` ones are."""
    g = torch.Generator().manual_seed(1)
    teacher = (torch.randn(8, 16, generator=g).abs(), torch.randn(8, 16, generator=g).abs())
    data = TrainData(main=pairs, main_teacher=teacher)
    reports = []
    stats = {}
    for mode in ("paper", "normalized"):
        cfg = TrainConfig(batch_size=4, epochs=2, beta=0.3, soft_target=mode, seed=0)
        _, result = _train(tmp_path / mode, pairs, cfg, report=reports.append, data=data)
        stats[mode] = result["soft_labels"]
        assert [s["epoch"] for s in stats[mode]] == [0, 1]
    for s in stats["paper"]:
        assert s["row_sum_audio"] > 1.5 and s["row_sum_text"] > 1.5
        assert s["off_diagonal_audio"] > 0.3
    for s in stats["normalized"]:
        assert s["row_sum_audio"] == pytest.approx(1.0) and s["row_sum_text"] == pytest.approx(1.0)
        assert 0.0 < s["off_diagonal_text"] <= 0.3 + 1e-6  # at most beta off the diagonal
    assert any("soft/off_diagonal_audio" in r for r in reports)


# ----------------------------------------------------------------------------- temperature


def test_paper_temperature_stays_learnable(tmp_path, pairs):
    """tau = 0.007 starts the logit scale at 142.9: its gradient must not be zero, and after a
    step the parameter is clamped to log 100 (CLIP), from where it can still move."""
    model = CLAP(ModelConfig(**{**MODEL.__dict__, "init_temperature": 0.007}), FRONT)
    cache = AudioCache(None, FRONT.sample_rate)
    audio = torch.stack([cache.load(p.path)[: FRONT.clip_samples] for p in pairs[:4]])
    tokens = model.tokenize([p.caption for p in pairs[:4]])
    loss = clap_loss(model(audio, tokens["input_ids"], tokens["attention_mask"]))
    loss.backward()
    assert model.logit_scale.grad is not None and model.logit_scale.grad.abs().item() > 0
    cfg = TrainConfig(batch_size=4, epochs=2, lr=1e-2, seed=0)
    model = CLAP(ModelConfig(**{**MODEL.__dict__, "init_temperature": 0.007}), FRONT)
    train(model, TrainData(main=pairs), cfg, tmp_path, cache, FRONT.clip_samples)
    assert model.logit_scale.item() <= math.log(100.0) + 1e-6
    assert model.logit_scale.item() != pytest.approx(math.log(100.0), abs=1e-7)


# ----------------------------------------------------------------------------- streams


def test_streams_come_from_the_stage_not_the_process(tmp_path, pairs):
    """Same stream -> same bytes whatever the process RNG did before; another stream (another
    stage of the same seed) -> other dropout and crops; the process RNG is left untouched."""
    cfg = TrainConfig(batch_size=4, epochs=1, seed=0)
    cache = AudioCache(None, FRONT.sample_rate)

    def weights(out, stream, noise):
        torch.manual_seed(noise)  # whatever ran before in this process
        torch.rand(7)
        model = CLAP(MODEL, FRONT)
        with torch.no_grad():  # the same start, so only the training streams differ
            for p in model.parameters():
                p.copy_(torch.linspace(-0.1, 0.1, p.numel()).reshape(p.shape))
        state = torch.get_rng_state()
        train(model, TrainData(main=pairs), cfg, out, cache, FRONT.clip_samples, stream=stream)
        assert torch.equal(torch.get_rng_state(), state)
        return (out / "model.pt").read_bytes()

    a = weights(tmp_path / "a", "teacher-1", noise=1)
    assert a == weights(tmp_path / "b", "teacher-1", noise=2)
    assert a != weights(tmp_path / "c", "student-2", noise=1)


def test_finished_run_keeps_only_weights_and_frozen_tower_by_hash(tmp_path, pairs):
    cfg = TrainConfig(batch_size=4, epochs=1, seed=0, freeze_text=True)
    model, _ = _train(tmp_path, pairs, cfg)
    assert not (tmp_path / "checkpoint.pt").exists()
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert not any(k.startswith("caption_encoder.base.") for k in saved["model"])
    assert set(saved["frozen"]) == {"caption_encoder.base."}
    again = CLAP(MODEL, FRONT)
    load_weights(again, tmp_path / "model.pt")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with torch.no_grad():  # a different text tower than the one trained with
        again.caption_encoder.base.embeddings.word_embeddings.weight.add_(1.0)
    with pytest.raises(UserError, match="frozen weights caption_encoder.base"):
        load_weights(again, tmp_path / "model.pt")


def test_a_one_pair_set_is_a_user_error(tmp_path, pairs):
    with pytest.raises(UserError, match="training needs at least 2 pairs .* got 1; for a student"):
        _train(tmp_path, pairs, TrainConfig(batch_size=4, epochs=1), data=TrainData(main=pairs[:1]))
