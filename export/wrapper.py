"""The exported graph: raw pixels and SFG in, probabilities out (the ONNX contract).

Like segment_anything's ONNX wrapper, a thin module around the trained network that
moves pre- and post-processing into the graph, so the runtime feeds raw data.
"""

from __future__ import annotations

import torch
from torch import nn

from fairs_sdk.config import InputSpec
from fairs_sdk.training.model import FAIRSNet, InputNormalizer

__all__ = ["ExportWrapper"]


class ExportWrapper(nn.Module):
    """(N, 4, S, S) float32 [RGB 0..255, SFG 0..1] -> (N, 1, S, S) float32 probabilities.

    RGB is normalised with ``spec.mean``/``spec.std``, the network runs in eval mode
    and a sigmoid turns its logits into probabilities.
    """

    def __init__(self, model: FAIRSNet, spec: InputSpec) -> None:
        super().__init__()
        self.model = model.eval()
        self.normalizer = InputNormalizer(spec.mean, spec.std)
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(self.normalizer(x[:, :3], x[:, 3:4]))
        return torch.sigmoid(logits)
