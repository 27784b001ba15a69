"""The trainer: replay sampling, deterministic resume, soft-label students, corrupt clips."""

import numpy as np
import pytest
import soundfile as sf
import torch

from clapsweep.config import FrontendConfig, ModelConfig, TrainConfig
from clapsweep.data.cache import AudioCache
from clapsweep.data.datasets import Pair
from clapsweep.loader import MAIN, REPLAY, epoch_batches
from clapsweep.models.clap import CLAP
from clapsweep.train import TrainData, train

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


def _train(out, pairs, cfg, report=None, data=None):
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
    )
    return model, result


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
