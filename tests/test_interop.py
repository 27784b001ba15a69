"""PANNs CNN14 and MS-CLAP 2022 checkpoints load strictly into our models.

The checkpoints are built here from key lists written down from the public code
(qiuqiangkong/audioset_tagging_cnn `pytorch/models.py` with torchlibrosa's `Spectrogram` and
`LogmelFilterBank`; microsoft/CLAP `msclap/models/clap.py`, `audio.py`, `configs/config_2022.yml`
with bert-base-uncased), not from our modules, with random values.
"""

from __future__ import annotations

import pytest
import torch

from clapsweep.config import FrontendConfig, ModelConfig
from clapsweep.models import CLAP, CheckpointError, Cnn14, load_msclap, load_panns_cnn14

Shapes = dict[str, tuple[int, ...]]


def bn(prefix: str, n: int) -> Shapes:
    stats = {f"{prefix}.{k}": (n,) for k in ("weight", "bias", "running_mean", "running_var")}
    return stats | {f"{prefix}.num_batches_tracked": ()}


def panns_cnn14_keys(n_fft: int = 1024, n_mels: int = 64, classes: int = 527) -> Shapes:
    """PANNs `Cnn14` state dict: torchlibrosa front-end, bn0, six conv blocks, fc1, fc_audioset."""
    bins = n_fft // 2 + 1
    keys: Shapes = {
        "spectrogram_extractor.stft.conv_real.weight": (bins, 1, n_fft),
        "spectrogram_extractor.stft.conv_imag.weight": (bins, 1, n_fft),
        "logmel_extractor.melW": (bins, n_mels),
        **bn("bn0", n_mels),
    }
    channels = [1, 64, 128, 256, 512, 1024, 2048]
    for i in range(1, 7):
        cin, cout = channels[i - 1], channels[i]
        keys[f"conv_block{i}.conv1.weight"] = (cout, cin, 3, 3)
        keys[f"conv_block{i}.conv2.weight"] = (cout, cout, 3, 3)
        keys |= bn(f"conv_block{i}.bn1", cout) | bn(f"conv_block{i}.bn2", cout)
    keys |= {
        "fc1.weight": (2048, 2048),
        "fc1.bias": (2048,),
        "fc_audioset.weight": (classes, 2048),
        "fc_audioset.bias": (classes,),
    }
    return keys


def bert_keys(hidden: int, layers: int, intermediate: int, vocab: int = 30522) -> Shapes:
    """transformers BertModel (with pooler) as saved in 2022, `position_ids` buffer included."""
    keys: Shapes = {
        "embeddings.position_ids": (1, 512),
        "embeddings.word_embeddings.weight": (vocab, hidden),
        "embeddings.position_embeddings.weight": (512, hidden),
        "embeddings.token_type_embeddings.weight": (2, hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
        "pooler.dense.weight": (hidden, hidden),
        "pooler.dense.bias": (hidden,),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}"
        for name in ("self.query", "self.key", "self.value", "output.dense"):
            keys[f"{p}.attention.{name}.weight"] = (hidden, hidden)
            keys[f"{p}.attention.{name}.bias"] = (hidden,)
        keys |= {
            f"{p}.attention.output.LayerNorm.weight": (hidden,),
            f"{p}.attention.output.LayerNorm.bias": (hidden,),
            f"{p}.intermediate.dense.weight": (intermediate, hidden),
            f"{p}.intermediate.dense.bias": (intermediate,),
            f"{p}.output.dense.weight": (hidden, intermediate),
            f"{p}.output.dense.bias": (hidden,),
            f"{p}.output.LayerNorm.weight": (hidden,),
            f"{p}.output.LayerNorm.bias": (hidden,),
        }
    return keys


def projection(prefix: str, d_in: int, d_out: int) -> Shapes:
    return {
        f"{prefix}.linear1.weight": (d_out, d_in),
        f"{prefix}.linear2.weight": (d_out, d_out),
        f"{prefix}.layer_norm.weight": (d_out,),
        f"{prefix}.layer_norm.bias": (d_out,),
    }


def msclap_2022_keys(hidden=768, layers=12, intermediate=3072, d_proj=1024) -> Shapes:
    """MS-CLAP 2022: Cnn14 (out_emb 2048) + bert-base-uncased, projections to d_proj."""
    keys = {f"audio_encoder.base.{k}": s for k, s in panns_cnn14_keys().items()}
    keys |= projection("audio_encoder.projection", 2048, d_proj)
    keys |= {
        f"caption_encoder.base.{k}": s for k, s in bert_keys(hidden, layers, intermediate).items()
    }
    keys |= projection("caption_encoder.projection", hidden, d_proj)
    return keys | {"logit_scale": ()}


def random_state(shapes: Shapes, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith(("num_batches_tracked", "position_ids")):
            state[key] = torch.randint(0, 1000, shape, generator=g)
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


def save(state: dict, path) -> str:
    torch.save({"model": state}, path)
    return str(path)


# ----------------------------------------------------------------------------- PANNs


@pytest.fixture(scope="module")
def panns(tmp_path_factory):
    state = random_state(panns_cnn14_keys())
    path = save(state, tmp_path_factory.mktemp("panns") / "Cnn14_mAP=0.431.pth")
    return state, path


@pytest.fixture(scope="module")
def cnn14() -> Cnn14:
    return Cnn14(n_mels=64)


def test_panns_checkpoint_loads_strictly(panns, cnn14):
    state, path = panns
    load_panns_cnn14(cnn14, path, FrontendConfig())  # n_fft 1024, 64 mels: shapes agree
    loaded = cnn14.state_dict()
    for key in ("bn0.running_mean", "conv_block6.conv2.weight", "fc1.bias", "fc_audioset.weight"):
        assert torch.equal(loaded[key], state[key])
    assert (
        loaded["conv_block3.bn2.num_batches_tracked"]
        == state["conv_block3.bn2.num_batches_tracked"]
    )
    # Every key of our model came from the file; only the three front-end keys were dropped.
    assert set(state) - set(loaded) == {
        "spectrogram_extractor.stft.conv_real.weight",
        "spectrogram_extractor.stft.conv_imag.weight",
        "logmel_extractor.melW",
    }
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())


def test_panns_frontend_shape_mismatch(panns, cnn14):
    _, path = panns
    with pytest.raises(CheckpointError, match=r"logmel_extractor\.melW.*\(513, 64\).*n_mels 128"):
        load_panns_cnn14(cnn14, path, FrontendConfig(n_mels=128))
    with pytest.raises(CheckpointError, match=r"conv_real\.weight.*n_fft 2048"):
        load_panns_cnn14(cnn14, path, FrontendConfig(n_fft=2048, win_length=2048))


def test_panns_missing_key_fails_and_leaves_model_untouched(panns, cnn14, tmp_path):
    state, _ = panns
    broken = {k: v for k, v in state.items() if k != "fc1.bias"}
    broken["fc1.weight"] = torch.zeros(2048, 2048)
    path = save(broken, tmp_path / "missing.pth")
    before = cnn14.fc1.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"missing\.pth.*1 missing key\(s\): fc1\.bias"):
        load_panns_cnn14(cnn14, path)
    assert torch.equal(cnn14.fc1.weight, before)


def test_panns_unexpected_key_fails(panns, cnn14, tmp_path):
    state, _ = panns
    path = save(state | {"spec_augmenter.extra": torch.ones(3)}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"1 unexpected key\(s\): spec_augmenter\.extra"):
        load_panns_cnn14(cnn14, path)


def test_panns_shape_mismatch_fails(panns, cnn14, tmp_path):
    state, _ = panns
    path = save(state | {"fc_audioset.weight": torch.ones(10, 2048)}, tmp_path / "shape.pth")
    with pytest.raises(
        CheckpointError, match=r"fc_audioset\.weight \(10, 2048\) vs model \(527, 2048\)"
    ):
        load_panns_cnn14(cnn14, path)


def test_position_ids_tolerated_and_bare_state_dict_accepted(panns, cnn14, tmp_path):
    state, _ = panns
    path = tmp_path / "bare.pth"
    torch.save(state | {"embeddings.position_ids": torch.arange(512)[None]}, path)
    load_panns_cnn14(cnn14, path)
    assert torch.equal(cnn14.fc1.weight, state["fc1.weight"])


def test_unreadable_checkpoints(cnn14, tmp_path):
    with pytest.raises(CheckpointError, match=r"nowhere\.pth: checkpoint file not found"):
        load_panns_cnn14(cnn14, tmp_path / "nowhere.pth")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes\.pth: not a PyTorch checkpoint"):
        load_panns_cnn14(cnn14, text)
    numbers = tmp_path / "numbers.pth"
    torch.save({"model": {"a": 1}}, numbers)
    with pytest.raises(CheckpointError, match=r"numbers\.pth: not a model checkpoint"):
        load_panns_cnn14(cnn14, numbers)


# ----------------------------------------------------------------------------- MS-CLAP


def test_our_clap_has_exactly_the_msclap_2022_keys(monkeypatch):
    """CNN14 + BERT-base (from BertConfig, no download) vs the MS-CLAP 2022 key list."""
    # Built on the meta device (shapes only, not 190 M parameters), where torchaudio cannot
    # build a mel filterbank; the front-end holds no state (test_models checks), so swap it.
    monkeypatch.setattr("clapsweep.models.clap.LogMel", lambda cfg: torch.nn.Identity())
    with torch.device("meta"):
        clap = CLAP(ModelConfig(audio="cnn14", text="bert-base-uncased"), FrontendConfig(), False)
    ours = {k: tuple(v.shape) for k, v in clap.state_dict().items()}
    theirs = {
        k: s
        for k, s in msclap_2022_keys().items()
        if not k.endswith("position_ids") and "_extractor." not in k
    }
    assert ours == theirs
    assert ours["audio_encoder.projection.linear1.weight"] == (1024, 2048)
    assert ours["caption_encoder.projection.linear1.weight"] == (1024, 768)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    from transformers import AutoTokenizer, BertConfig

    from clapsweep.models import resolve_text_model

    folder = tmp_path_factory.mktemp("tiny_bert")
    BertConfig(
        hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24
    ).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_text_model("minilm")).save_pretrained(folder)
    return str(folder)


def test_msclap_checkpoint_loads_strictly(tiny_bert, tmp_path):
    # The MS-CLAP layout with a 2-layer, 16-wide BERT to keep the file small.
    cfg = ModelConfig(audio="cnn14", text=tiny_bert, dim=32)
    clap = CLAP(cfg, FrontendConfig(), pretrained_text=False)
    state = random_state(msclap_2022_keys(hidden=16, layers=2, intermediate=24, d_proj=32), seed=1)
    path = save(state, tmp_path / "CLAP_weights_2022.pth")
    load_msclap(clap, path, FrontendConfig())
    loaded = clap.state_dict()
    assert set(loaded) == {
        k for k in state if not k.endswith("position_ids") and "_extractor." not in k
    }
    assert all(torch.equal(v, state[k]) for k, v in loaded.items())
    assert clap.logit_scale.item() == state["logit_scale"].item()

    # A missing and an extra key, each named, with the file.
    del state["caption_encoder.projection.layer_norm.bias"]
    state["caption_encoder.base.embeddings.extra"] = torch.ones(2)
    path = save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError) as err:
        load_msclap(clap, path)
    message = str(err.value)
    assert "broken.pth" in message
    assert "1 missing key(s): caption_encoder.projection.layer_norm.bias" in message
    assert "1 unexpected key(s): caption_encoder.base.embeddings.extra" in message


def test_msclap_needs_cnn14(tiny_bert, tmp_path):
    cfg = ModelConfig(audio="small_cnn", audio_width=4, text=tiny_bert, dim=32)
    clap = CLAP(cfg, FrontendConfig(), pretrained_text=False)
    with pytest.raises(CheckpointError, match="model.audio: cnn14"):
        load_msclap(clap, tmp_path / "CLAP_weights_2022.pth")
