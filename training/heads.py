"""Segmentation heads: DANet dual attention (Fu et al., CVPR 2019) and the PSP head of DEXTR.

Heads map a backbone feature map (B, C, h, w) to a tuple of one-channel logit maps
at the same (h, w): the main output first, then auxiliary outputs for the
multi-term loss (DANet: position branch, channel branch; PSP: none). All ops are
plain matmul / softmax / conv, exportable to ONNX at opset 17.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU, 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class PositionAttention(nn.Module):
    """DANet position attention (PAM): (B, C, H, W) -> (B, C, H, W).

    With N = H*W positions, q = Wq x (C/8 channels), k = Wk x (C/8), v = Wv x (C):
    S = softmax_j(q_i . k_j) (B, N, N); out_i = gamma * sum_j S_ij v_j + x_i, gamma
    initialised to 0 so the module starts as the identity.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if channels < reduction:
            raise ValueError(f"channels ({channels}) must be at least the reduction ({reduction})")
        self.query = nn.Conv2d(channels, channels // reduction, 1)
        self.key = nn.Conv2d(channels, channels // reduction, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The (B, N, N) attention map S, rows indexed by the query position."""
        query = self.query(x).flatten(2).transpose(1, 2)  # (B, N, C/8)
        key = self.key(x).flatten(2)  # (B, C/8, N)
        return torch.softmax(torch.bmm(query, key), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = self.value(x).flatten(2)  # (B, C, N)
        out = torch.bmm(value, self.attention(x).transpose(1, 2))  # (B, C, N)
        return self.gamma * out.view_as(x) + x


class ChannelAttention(nn.Module):
    """DANet channel attention (CAM): (B, C, H, W) -> (B, C, H, W).

    With A the (B, C, N) reshaped input: E = A A^T (B, C, C); X = softmax_j(max_j' E_ij' - E_ij)
    (DANet's form, which favours dissimilar channels and is numerically safe);
    out = gamma * X A + x, gamma initialised to 0.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    @staticmethod
    def attention(x: torch.Tensor) -> torch.Tensor:
        """The (B, C, C) attention map X, float32 (E sums N squares: it overflows fp16)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            flat = x.flatten(2).float()
            energy = torch.bmm(flat, flat.transpose(1, 2))
            energy = torch.amax(energy, dim=-1, keepdim=True) - energy
            return torch.softmax(energy, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.bmm(self.attention(x).to(x.dtype), x.flatten(2))
        return self.gamma * out.view_as(x) + x


class DANetHead(nn.Module):
    """Dual attention head: (B, in_channels, h, w) -> (fused, position, channel) logits (B, 1, h, w).

    Each branch is a 3x3 conv-BN-ReLU down to ``channels``, its attention module and
    another 3x3 conv-BN-ReLU, as in DANet; the two branch features are summed and
    classified by a 1x1 conv. Each branch also has its own 1x1 classifier.
    ``channels`` defaults to in_channels // 4 (DANet's choice: 512 for ResNet-101).
    """

    def __init__(self, in_channels: int, channels: int | None = None, num_classes: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        channels = channels or max(in_channels // 4, 8)
        self.position_in = conv_bn_relu(in_channels, channels)
        self.position = PositionAttention(channels)
        self.position_out = conv_bn_relu(channels, channels)
        self.channel_in = conv_bn_relu(in_channels, channels)
        self.channel = ChannelAttention()
        self.channel_out = conv_bn_relu(channels, channels)
        self.classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))
        self.position_classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))
        self.channel_classifier = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(channels, num_classes, 1))
        self.channels = channels

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position = self.position_out(self.position(self.position_in(features)))
        channel = self.channel_out(self.channel(self.channel_in(features)))
        return (
            self.classifier(position + channel),
            self.position_classifier(position),
            self.channel_classifier(channel),
        )


class PSPHead(nn.Module):
    """DEXTR's pyramid pooling head: (B, in_channels, h, w) -> (logits (B, 1, h, w),).

    Average pooling to each bin size, 1x1 conv-BN-ReLU to in_channels // 4, bilinear
    upsampling, concatenation with the input, 1x1 conv-BN-ReLU to ``channels`` and a
    1x1 classifier: the base model of the ablation (table 1). Adaptive pooling to
    bins that do not divide h and w does not export to ONNX; this head is for training.
    """

    def __init__(self, in_channels: int, channels: int = 512, bins: tuple[int, ...] = (1, 2, 3, 6), num_classes: int = 1) -> None:
        super().__init__()
        reduced = max(in_channels // 4, 1)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(size), conv_bn_relu(in_channels, reduced, kernel_size=1)) for size in bins
        )
        self.bottleneck = conv_bn_relu(in_channels + reduced * len(bins), channels, kernel_size=1)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.channels = channels

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor]:
        size = features.shape[-2:]
        pooled = [
            nn.functional.interpolate(stage(features), size=size, mode="bilinear", align_corners=True)
            for stage in self.stages
        ]
        return (self.classifier(self.bottleneck(torch.cat([*pooled, features], dim=1))),)


HEADS = ("danet", "psp")


def create_head(name: str, in_channels: int, channels: int | None = None, dropout: float = 0.1) -> nn.Module:
    """``"danet"`` or ``"psp"`` head on ``in_channels`` features; ``channels`` is its width."""
    if name == "danet":
        return DANetHead(in_channels, channels, dropout=dropout)
    if name == "psp":
        return PSPHead(in_channels, channels or 512)
    raise ValueError(f"unknown head {name!r}; choose one of {HEADS}")
