"""A small, fast CNN audio encoder for CPU work (the offline demo and tests).

Same shape of computation as CNN14 at a fraction of the cost: BatchNorm over the mel axis,
four blocks (one 3x3 conv + BatchNorm + ReLU + 2x2 avg-pool) of width w, 2w, 4w, 8w, then
mean over mels and max + mean over time. The output has `out_dim` = 8w features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clapsweep.models.cnn14 import mel_batch_norm, uses_channels_last


class SmallBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.bn(self.conv(x))), 2)


class SmallCNN(nn.Module):
    """Log-mel (B, 1, frames, n_mels) -> (B, out_dim); needs n_mels >= 16 and frames >= 16."""

    def __init__(self, n_mels: int, width: int = 32) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(n_mels)
        widths = (width, 2 * width, 4 * width, 8 * width)
        ins = (1, *widths[:-1])
        self.blocks = nn.Sequential(*(SmallBlock(a, b) for a, b in zip(ins, widths, strict=True)))
        self.out_dim = widths[-1]

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = mel_batch_norm(self.bn0, logmel)
        if uses_channels_last(self.blocks[1].conv.weight):
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(x).mean(dim=3)  # (B, C, T)
        return x.amax(dim=2) + x.mean(dim=2)
