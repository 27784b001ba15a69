"""CNN14 audio encoder in the PANNs layout (Kong et al., 2020), without its front-end.

The module and parameter names follow PANNs' `Cnn14` (and MS-CLAP's copy of it), so their
checkpoints load by name: `bn0`, `conv_block1..6.{conv1,conv2,bn1,bn2}`, `fc1`,
`fc_audioset`. PANNs computes the log-mel inside the model (`spectrogram_extractor`,
`logmel_extractor`); here the input is already the log-mel (B, 1, frames, n_mels) from
`clapsweep.audio.LogMel`, and `models.interop` checks and drops those front-end keys.

`forward` returns what PANNs calls `embedding` (2048-d). `fc_audioset` is kept only so
that checkpoints match; it plays no part in the embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHANNELS = (64, 128, 256, 512, 1024, 2048)


def uses_channels_last(weight: torch.Tensor) -> bool:
    """True when a 4-D conv weight was converted with `.to(memory_format=channels_last)`."""
    return not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)


def mel_batch_norm(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm over the mel axis of (B, 1, T, M), as PANNs' `bn0` does (mels as channels)."""
    return bn(x.transpose(1, 3)).transpose(1, 3)


class ConvBlock(nn.Module):
    """Two 3x3 convolutions (no bias), each followed by BatchNorm and ReLU, then avg-pooling."""

    def __init__(self, in_channels: int, out_channels: int, pool: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = pool
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight)  # PANNs' initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        return x


class Cnn14(nn.Module):
    """CNN14 on log-mel input (B, 1, frames, n_mels) -> (B, 2048) embedding."""

    out_dim = 2048

    def __init__(self, n_mels: int = 64, classes_num: int = 527) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(n_mels)
        ins = (1, *CHANNELS[:-1])
        # Blocks 1-5 halve time and frequency; block 6 keeps them (PANNs' pool size 1x1).
        for i, (cin, cout) in enumerate(zip(ins, CHANNELS, strict=True), start=1):
            self.add_module(f"conv_block{i}", ConvBlock(cin, cout, pool=2 if i < 6 else 1))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes_num)
        for fc in (self.fc1, self.fc_audioset):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)

    def blocks(self) -> list[ConvBlock]:
        return [getattr(self, f"conv_block{i}") for i in range(1, 7)]

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = mel_batch_norm(self.bn0, logmel)
        if uses_channels_last(self.conv_block2.conv1.weight):
            x = x.contiguous(memory_format=torch.channels_last)
        for block in self.blocks():
            x = F.dropout(block(x), p=0.2, training=self.training)
        x = x.mean(dim=3)  # over mels -> (B, C, T)
        x = x.amax(dim=2) + x.mean(dim=2)  # max + mean over time
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.fc1(x))
        return F.dropout(x, p=0.5, training=self.training)
