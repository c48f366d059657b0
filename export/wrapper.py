"""The exported graph: raw pixels and guidance planes in, probabilities out (the ONNX contract).

Like segment_anything's ONNX wrapper, a thin module around the trained network that
moves pre- and post-processing into the graph, so the runtime feeds raw data.
"""

from __future__ import annotations

import torch
from torch import nn

from fairs_sdk.config import CHANNEL_WIDTHS, InputSpec
from fairs_sdk.training.model import InputNormalizer

__all__ = ["ExportWrapper"]


class ExportWrapper(nn.Module):
    """(N, C, S, S) float32 -> (N, 1, S, S) float32 probabilities.

    The input holds ``spec.input_channels`` in order (C = ``spec.channel_count``, SPEC 1b):
    ``rgb`` raw 0..255, the guidance planes (``sfg``, click maps) in [0, 1]. The RGB planes
    are normalised with ``spec.mean``/``spec.std`` by training's :class:`InputNormalizer`
    and the guidance planes pass unchanged; the network (any module taking the normalised
    (N, C, S, S) input to (N, 1, S, S) logits) runs in eval mode, and a sigmoid turns its
    logits into probabilities.
    """

    def __init__(self, model: nn.Module, spec: InputSpec) -> None:
        super().__init__()
        self.model = model.eval()
        self.normalizer = InputNormalizer(spec.mean, spec.std)
        self.spec = spec
        names = spec.input_channels
        #: First plane of the RGB channels in the input.
        self.rgb_start = sum(CHANNEL_WIDTHS[n] for n in names[: names.index("rgb")])
        self.rgb_stop = self.rgb_start + CHANNEL_WIDTHS["rgb"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start, stop = self.rgb_start, self.rgb_stop
        normalised = self.normalizer(x[:, start:stop], x[:, stop:])
        if start:
            normalised = torch.cat([x[:, :start], normalised], dim=1)
        return torch.sigmoid(self.model(normalised))
