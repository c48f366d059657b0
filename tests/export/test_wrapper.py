"""export.wrapper: the RGB planes are normalised where the model declares them, the rest pass as they are."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fairs_sdk.config import InputSpec
from fairs_sdk.export.wrapper import ExportWrapper


class _Recorder(nn.Module):
    """Keeps the input it is given; returns zero logits."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.clone()
        return torch.zeros_like(x[:, :1])


@pytest.mark.parametrize(
    "channels",
    [("rgb", "sfg"), ("rgb", "sfg", "positive_clicks", "negative_clicks"), ("negative_clicks", "rgb", "sfg")],
    ids=["rgb_sfg", "six", "rgb_in_the_middle"],
)
def test_only_the_rgb_planes_are_normalised(channels: tuple[str, ...]) -> None:
    spec = InputSpec(input_size=16, input_channels=channels)
    recorder = _Recorder()
    wrapper = ExportWrapper(recorder, spec)
    x = torch.rand(2, spec.channel_count, 16, 16) * 255.0
    probabilities = wrapper(x)
    start = wrapper.rgb_start
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    expected = x.clone()
    expected[:, start : start + 3] = (x[:, start : start + 3] / 255.0 - mean) / std
    assert recorder.seen.shape == x.shape, f"the network got {tuple(recorder.seen.shape)}, the input was {tuple(x.shape)}"
    torch.testing.assert_close(recorder.seen, expected, msg=lambda m: f"{channels}: {m}")
    assert torch.all(probabilities == 0.5), "sigmoid of zero logits must be 0.5"
