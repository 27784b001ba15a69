"""The CLAP model: log-mel front-end, audio and caption towers, MS-CLAP projections.

Module names follow MS-CLAP (microsoft/CLAP, `msclap/models/clap.py`), so the state dict
keys are exactly

    audio_encoder.base.<Cnn14 or SmallCNN keys>
    audio_encoder.projection.{linear1,linear2,layer_norm}.*
    caption_encoder.base.<transformers model keys>
    caption_encoder.projection.{linear1,linear2,layer_norm}.*
    logit_scale

and an MS-CLAP 2022 checkpoint loads by name (`models.interop.load_msclap`). The front-end
holds no state: it is rebuilt from the FrontendConfig.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from clapsweep.audio import LogMel
from clapsweep.config import FrontendConfig, ModelConfig
from clapsweep.models.cnn14 import Cnn14
from clapsweep.models.small_cnn import SmallCNN
from clapsweep.models.text import TextEncoder


class Projection(nn.Module):
    """MS-CLAP projection: linear1 -> GELU -> linear2 -> dropout, residual, LayerNorm."""

    def __init__(self, d_in: int, d_out: int, p: float = 0.5) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.linear1(x)
        e2 = self.drop(self.linear2(F.gelu(e1)))
        return self.layer_norm(e1 + e2)


class AudioEncoder(nn.Module):
    """Log-mel -> projected audio embedding (not normalised)."""

    def __init__(self, model_cfg: ModelConfig, n_mels: int) -> None:
        super().__init__()
        if model_cfg.audio == "cnn14":
            self.base: nn.Module = Cnn14(n_mels)
        else:
            self.base = SmallCNN(n_mels, model_cfg.audio_width)
        self.projection = Projection(self.base.out_dim, model_cfg.dim, model_cfg.dropout)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.projection(self.base(logmel))


class CaptionEncoder(TextEncoder):
    """A TextEncoder (state `base.*`) followed by the projection (state `projection.*`)."""

    def __init__(self, model_cfg: ModelConfig, pretrained: bool = True) -> None:
        super().__init__(
            model_cfg.text, model_cfg.text_pooling, model_cfg.text_max_tokens, pretrained
        )
        self.projection = Projection(self.hidden_size, model_cfg.dim, model_cfg.dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.projection(super().forward(input_ids, attention_mask))


class CLAP(nn.Module):
    """Contrastive audio-text model; embeddings are L2-normalised, logits scaled."""

    def __init__(
        self, model_cfg: ModelConfig, frontend_cfg: FrontendConfig, pretrained_text: bool = True
    ) -> None:
        super().__init__()
        self.dim = model_cfg.dim
        self.frontend = LogMel(frontend_cfg)
        self.audio_encoder = AudioEncoder(model_cfg, frontend_cfg.n_mels)
        self.caption_encoder = CaptionEncoder(model_cfg, pretrained_text)
        # Scalar like MS-CLAP's, so its checkpoint's `logit_scale` loads as is.
        init = math.log(1.0 / model_cfg.init_temperature)
        self.logit_scale = nn.Parameter(torch.tensor(init, dtype=torch.float32))

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.caption_encoder.tokenize(texts)

    def encode_audio(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, samples) at the front-end's rate -> (B, dim), unit norm."""
        return F.normalize(self.audio_encoder(self.frontend(wave)), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Tokens from `tokenize` -> (B, dim), unit norm."""
        return F.normalize(self.caption_encoder(input_ids, attention_mask), dim=-1)

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The text tower's pooled output before projection (cacheable while it is frozen)."""
        return TextEncoder.forward(self.caption_encoder, input_ids, attention_mask)

    def logits_from_text_features(self, wave: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Like forward, with the text tower's pooled output given instead of tokens."""
        audio = self.encode_audio(wave)
        text = F.normalize(self.caption_encoder.projection(features), dim=-1)
        return self.scale() * audio @ text.t()

    def scale(self) -> torch.Tensor:
        """exp(logit_scale). As in CLIP, the trainer clamps the parameter itself to at most
        log 100 after each step; a clamp here would zero its gradient whenever the scale
        starts above 100 (tau = 0.007 gives 142.9) and freeze it there."""
        return self.logit_scale.exp()

    def forward(
        self, wave: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Logits per audio (B, B): scale * audio_embeddings @ text_embeddings.T."""
        audio = self.encode_audio(wave)
        text = self.encode_text(input_ids, attention_mask)
        return self.scale() * audio @ text.t()
