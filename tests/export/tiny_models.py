"""Tiny networks for the export tests, importable by test modules (``from tiny_models import ...``)."""

from __future__ import annotations

from dataclasses import fields

import torch
from torch import nn

from fairs_sdk.config import InputSpec
from fairs_sdk.training.model import ModelConfig

SIZE = 64
#: SPEC 1b's channels with both click maps: C = 6.
SIX_CHANNELS = ("rgb", "sfg", "positive_clicks", "negative_clicks")
SIX_SPEC = InputSpec(input_size=SIZE, input_channels=SIX_CHANNELS)


class TinyNet(nn.Module):
    """(N, C, S, S) normalised input -> (N, 1, S, S) logits: a strided convolution, BN, ReLU,
    a second convolution and a bilinear resize back to S (the ops of the real network, small)."""

    def __init__(self, channels: int, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )
        with torch.no_grad():
            self.body[1].running_mean.uniform_(-0.1, 0.1)
            self.body[1].running_var.uniform_(0.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.body(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


def tiny_checkpoint(spec: InputSpec, channels: int | None = None):
    """An in-memory :class:`Checkpoint` of a :class:`TinyNet` for ``spec`` (``channels``: its stem, default C)."""
    from fairs_sdk.export.checkpoint import Checkpoint, config_digest

    declared = {"input_channels": spec.input_channels} if "input_channels" in {f.name for f in fields(ModelConfig)} else {}
    model_config = ModelConfig(backbone="tiny_conv", head="conv", **declared)
    config = {"model": model_config.to_dict(), "input": spec.to_dict()}
    model = TinyNet(channels or spec.channel_count).eval()
    return Checkpoint(model, model_config, spec, config, config_digest(config))


def six_channel_state(state: dict) -> dict:
    """A checkpoint dict like ``state`` (a FAIRSNet's) rebuilt for :data:`SIX_CHANNELS`, random weights.

    Sets the model section's ``input_channels`` (or the ``in_chans`` of older training code)
    and the input spec's ``input_channels``.
    """
    from fairs_sdk.training.model import build_model

    names = {f.name for f in fields(ModelConfig)}
    model_section = dict(state["config"]["model"])
    if "input_channels" in names:
        model_section["input_channels"] = list(SIX_CHANNELS)
    if "in_chans" in names:
        model_section["in_chans"] = SIX_SPEC.channel_count
    config = {**state["config"], "model": model_section, "input": {**state["config"]["input"], "input_channels": list(SIX_CHANNELS)}}
    return {**state, "model": build_model(ModelConfig.from_dict(model_section)).state_dict(), "config": config}
