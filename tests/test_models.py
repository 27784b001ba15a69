"""Audio encoders, text encoder and the CLAP model, with the real offline MiniLM."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clapsweep.config import FrontendConfig, ModelConfig
from clapsweep.errors import UserError
from clapsweep.models import CLAP, Cnn14, Projection, SmallCNN, TextEncoder, resolve_text_model
from clapsweep.models.cnn14 import mel_batch_norm

FRONTEND = FrontendConfig(
    sample_rate=16000, clip_seconds=1.0, n_fft=512, win_length=512, hop_length=160, f_max=8000
)


@pytest.fixture(scope="module")
def clap() -> CLAP:
    cfg = ModelConfig(audio="small_cnn", audio_width=8, text="minilm", text_pooling="mean", dim=32)
    torch.manual_seed(0)
    return CLAP(cfg, FRONTEND).eval()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, minilm) -> str:
    """A local folder with a tiny BERT config and the MiniLM tokenizer (no weights)."""
    from transformers import BertConfig

    folder = tmp_path_factory.mktemp("tiny_bert")
    BertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24
    ).save_pretrained(folder)
    minilm.tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return TextEncoder("minilm", pooling="mean", max_tokens=100).eval()


def waves(batch: int, seconds: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return 0.1 * torch.randn(batch, int(16000 * seconds), generator=g)


# ----------------------------------------------------------------------------- audio encoders


def test_cnn14_panns_layout_and_embedding():
    torch.manual_seed(0)
    model = Cnn14(n_mels=64).eval()
    state = model.state_dict()
    assert state["bn0.running_mean"].shape == (64,)
    assert state["conv_block1.conv1.weight"].shape == (64, 1, 3, 3)
    assert state["conv_block6.conv2.weight"].shape == (2048, 2048, 3, 3)
    assert state["conv_block6.bn2.running_var"].shape == (2048,)
    assert state["fc1.weight"].shape == (2048, 2048)
    assert state["fc_audioset.weight"].shape == (527, 2048)
    assert "conv_block1.conv1.bias" not in state
    logmel = torch.randn(2, 1, 64, 64)  # 64 frames survive the five 2x2 poolings (2 left)
    with torch.no_grad():
        emb = model(logmel)
        again = model(logmel)
        channels_last = model.to(memory_format=torch.channels_last)(logmel)
    assert emb.shape == (2, 2048)
    assert (emb >= 0).all()  # relu(fc1) is the last op before (eval-mode) dropout
    assert torch.equal(emb, again)
    assert torch.allclose(channels_last, emb, atol=1e-4)


def test_bn0_normalises_each_mel_bin():
    bn0 = torch.nn.BatchNorm2d(64).eval()
    # In eval mode mel bin m maps to (x - mean_m) / sqrt(var_m + eps): mels act as channels.
    bn0.running_mean.copy_(torch.arange(64.0))
    bn0.running_var.fill_(4.0 - 1e-5)
    logmel = torch.arange(64.0).expand(1, 1, 8, 64) + 2.0
    out = mel_batch_norm(bn0, logmel)
    assert out.shape == (1, 1, 8, 64)
    assert torch.allclose(out, torch.ones_like(out))


def test_small_cnn_shapes_and_channels_last():
    torch.manual_seed(0)
    model = SmallCNN(n_mels=64, width=16).eval()
    assert model.out_dim == 128
    five_seconds = torch.randn(3, 1, 501, 64)  # 5 s at 16 kHz, hop 160
    with torch.no_grad():
        out = model(five_seconds)
        cl = model.to(memory_format=torch.channels_last)(five_seconds)
    assert out.shape == (3, 128)
    assert torch.allclose(cl, out, atol=1e-4)


# ----------------------------------------------------------------------------- projection


def test_projection_is_residual_layer_norm_of_two_linears():
    torch.manual_seed(0)
    proj = Projection(6, 4, p=0.5).eval()
    x = torch.randn(5, 6)
    e1 = x @ proj.linear1.weight.T
    e2 = F.gelu(e1) @ proj.linear2.weight.T
    expected = F.layer_norm(e1 + e2, (4,))  # fresh LayerNorm: weight 1, bias 0
    assert torch.allclose(proj(x), expected, atol=1e-6)
    assert proj.linear1.bias is None and proj.linear2.bias is None


# ----------------------------------------------------------------------------- text encoder


def test_resolve_text_model(tmp_path):
    folder = resolve_text_model("minilm")
    assert (Path(folder) / "config.json").is_file()
    assert resolve_text_model(str(tmp_path)) == str(tmp_path)
    assert resolve_text_model("bert-base-uncased") == "bert-base-uncased"


def test_tokenize_pads_to_longest_caption_and_truncates(minilm):
    short, long = "a dog", "a dog barks loudly in the park while cars pass by at night"
    n_short = len(minilm.tokenizer(short)["input_ids"])  # [CLS] a dog [SEP] -> 4
    n_long = len(minilm.tokenizer(long)["input_ids"])
    assert n_short == 4
    tokens = minilm.tokenize([short, long])
    assert tokens["input_ids"].shape == (2, n_long)
    assert n_long < 100
    assert tokens["attention_mask"].sum(dim=1).tolist() == [n_short, n_long]
    minilm.max_tokens = 8
    try:
        assert minilm.tokenize([short, long])["input_ids"].shape == (2, 8)
    finally:
        minilm.max_tokens = 100


def test_cls_and_mean_pooling(minilm):
    tokens = minilm.tokenize(["a dog barking", "rain falling on a tin roof all night long"])
    with torch.no_grad():
        hidden = minilm.model(**tokens).last_hidden_state
        mean = minilm(**tokens)
        minilm.pooling = "cls"
        try:
            cls = minilm(**tokens)
        finally:
            minilm.pooling = "mean"
    mask = tokens["attention_mask"][0].bool()
    assert torch.allclose(cls, hidden[:, 0], atol=1e-6)
    assert torch.allclose(mean[0], hidden[0][mask].mean(dim=0), atol=1e-5)
    assert not torch.allclose(cls, mean, atol=1e-2)


def test_mean_pooling_ignores_padding(minilm):
    caption = "a dog barking"
    with torch.no_grad():
        alone = minilm(**minilm.tokenize([caption]))[0]
        padded = minilm.tokenize([caption, "heavy rain with distant thunder and a passing train"])
        in_batch = minilm(**padded)[0]
    assert padded["attention_mask"][0].sum() < padded["input_ids"].shape[1]  # really padded
    assert torch.allclose(alone, in_batch, atol=1e-5)


def test_pretrained_minilm_similarities(minilm):
    texts = ["a dog barking", "the sound of a barking dog", "rain falling on a roof"]
    with torch.no_grad():
        emb = F.normalize(minilm(**minilm.tokenize(texts)), dim=-1)
    assert float(emb[0] @ emb[1]) > 0.8
    assert float(emb[0] @ emb[2]) < 0.5


def test_unavailable_text_models_are_user_errors(tmp_path):
    for pretrained in (True, False):
        with pytest.raises(UserError, match="no-such-org/no-such-model.*text: minilm"):
            TextEncoder("no-such-org/no-such-model", pretrained=pretrained)
    with pytest.raises(UserError, match=f"folder {tmp_path} is not a transformers model folder"):
        TextEncoder(str(tmp_path))


def test_local_folder_from_config(tiny_bert):
    enc = TextEncoder(tiny_bert, pooling="cls", max_tokens=16, pretrained=False).eval()
    assert enc.hidden_size == 16
    with torch.no_grad():
        assert enc(**enc.tokenize(["a dog", "a cat meows"])).shape == (2, 16)


# ----------------------------------------------------------------------------- CLAP


def test_clap_forward_embeddings_and_logits(clap):
    tokens = clap.tokenize(["a dog barking", "rain", "a car horn honks twice in the street"])
    wave = waves(3)
    with torch.no_grad():
        logits = clap(wave, tokens["input_ids"], tokens["attention_mask"])
        audio = clap.encode_audio(wave)
        text = clap.encode_text(tokens["input_ids"], tokens["attention_mask"])
    assert logits.shape == (3, 3)
    assert audio.shape == (3, 32) and text.shape == (3, 32)
    assert torch.allclose(audio.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(text.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(logits, (audio @ text.T) / 0.07, atol=1e-4)


def test_clap_state_dict_has_msclap_names_and_no_frontend(clap):
    keys = list(clap.state_dict())
    tops = {k.split(".")[0] + "." + k.split(".")[1] if "." in k else k for k in keys}
    assert tops == {
        "audio_encoder.base",
        "audio_encoder.projection",
        "caption_encoder.base",
        "caption_encoder.projection",
        "logit_scale",
    }
    assert "caption_encoder.base.embeddings.word_embeddings.weight" in keys
    assert clap.state_dict()["logit_scale"].shape == ()


def test_logit_scale_initial_value(clap):
    assert math.isclose(clap.scale().item(), 1 / 0.07, rel_tol=1e-6)


def test_init_temperature_is_config(tiny_bert):
    cfg = ModelConfig(audio="small_cnn", audio_width=4, text=tiny_bert, dim=8, init_temperature=0.5)
    model = CLAP(cfg, FRONTEND, pretrained_text=False)
    assert math.isclose(model.logit_scale.item(), math.log(2.0), rel_tol=1e-6)
    assert math.isclose(model.scale().item(), 2.0, rel_tol=1e-6)
