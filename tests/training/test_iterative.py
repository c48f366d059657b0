"""Iterative click training: clicks on the model's own errors, re-encoded into every guidance plane."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fairs_sdk.config import InputSpec
from fairs_sdk.encoder import click_map
from fairs_sdk.sfg import soft_focus
from fairs_sdk.training.channels import channel_slices
from fairs_sdk.training.iterative import add_corrective_clicks
from fairs_sdk.training.samples import pad_points

SIZE = 64
SPEC = InputSpec(input_size=SIZE)
CLICK_SPEC = InputSpec(input_size=SIZE, input_channels=("rgb", "sfg", "positive_clicks", "negative_clicks"))


class ConstantModel(nn.Module):
    """Logits of one sign everywhere; records the mode it was called in."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.value.expand(x.shape[0], 1, *x.shape[-2:])


def square_batch(spec: InputSpec = SPEC) -> dict[str, torch.Tensor]:
    """One sample: a 21 x 21 object square at rows/cols 20..40, its extreme points, no clicks.

    Random RGB planes, the SFG in its plane, empty click maps.
    """
    target = torch.zeros(1, 1, SIZE, SIZE)
    target[..., 20:41, 20:41] = 1.0
    extreme = np.array([(20, 30), (40, 30), (30, 20), (30, 40)], dtype=np.float64)
    net_input = torch.zeros(1, spec.channel_count, SIZE, SIZE)
    net_input[0, channel_slices(spec.input_channels)["rgb"]] = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    net_input[0, channel_slices(spec.input_channels)["sfg"]] = torch.from_numpy(soft_focus((SIZE, SIZE), extreme))
    return {
        "input": net_input,
        "target": target,
        "valid": torch.ones(1, 1, SIZE, SIZE),
        "extreme": torch.from_numpy(pad_points(extreme, 4))[None],
        "positive": torch.from_numpy(pad_points(np.empty((0, 2)), 2))[None],
        "negative": torch.from_numpy(pad_points(np.empty((0, 2)), 2))[None],
    }


def test_missed_object_gets_a_positive_click_at_its_centre() -> None:
    batch = square_batch()
    out = add_corrective_clicks(ConstantModel(-5.0), batch, SPEC, rounds=1)
    positive = out["positive"][0].numpy()
    assert positive.shape == (1, 2) and np.allclose(positive[0], (30, 30)), f"positive clicks {positive.tolist()}"
    assert out["negative"].shape[1] == 0, "no negative click was due"
    expected = soft_focus((SIZE, SIZE), batch["extreme"][0].numpy(), positive)
    assert np.allclose(out["input"][0, 3].numpy(), expected), "guidance channel must be the SFG with the new click"
    assert torch.equal(out["input"][0, :3], batch["input"][0, :3]), "RGB channels must not change"


def test_click_map_planes_follow_the_clicks() -> None:
    slices = channel_slices(CLICK_SPEC.input_channels)
    batch = square_batch(CLICK_SPEC)
    missed = add_corrective_clicks(ConstantModel(-5.0), batch, CLICK_SPEC, rounds=2)
    positive = missed["positive"][0].numpy().astype(np.float64)
    assert positive.shape == (2, 2), f"two rounds on a missed object: two positive clicks, got {positive.tolist()}"
    np.testing.assert_allclose(
        missed["input"][0, slices["positive_clicks"]][0].numpy(), click_map(SIZE, positive, CLICK_SPEC.sigma), atol=1e-6,
        err_msg="the positive click map must show both clicks",
    )
    assert float(missed["input"][0, slices["negative_clicks"]].abs().max()) == 0.0, "no negative click: empty map"
    expected_sfg = soft_focus((SIZE, SIZE), batch["extreme"][0].numpy(), positive)
    np.testing.assert_allclose(missed["input"][0, slices["sfg"]][0].numpy(), expected_sfg, atol=1e-6, err_msg="SFG must follow too")
    assert torch.equal(missed["input"][0, slices["rgb"]], batch["input"][0, slices["rgb"]]), "RGB planes must not change"

    over = add_corrective_clicks(ConstantModel(5.0), square_batch(CLICK_SPEC), CLICK_SPEC, rounds=1)
    negative = over["negative"][0].numpy().astype(np.float64)
    np.testing.assert_allclose(
        over["input"][0, slices["negative_clicks"]][0].numpy(), click_map(SIZE, negative, CLICK_SPEC.sigma), atol=1e-6,
        err_msg="the negative click map must show the click",
    )


def test_batch_that_does_not_fit_the_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        add_corrective_clicks(ConstantModel(-5.0), square_batch(SPEC), CLICK_SPEC, rounds=1)


def test_over_segmentation_gets_a_negative_click() -> None:
    out = add_corrective_clicks(ConstantModel(5.0), square_batch(), SPEC, rounds=1)
    assert out["negative"].shape[1] == 1 and out["positive"].shape[1] == 0, "one negative click expected"
    x, y = out["negative"][0, 0].tolist()
    assert not (20 <= x <= 40 and 20 <= y <= 40), f"negative click ({x}, {y}) lies on the object"


def test_one_click_per_round() -> None:
    out = add_corrective_clicks(ConstantModel(-5.0), square_batch(), SPEC, rounds=3)
    assert out["positive"].shape[1] == 3, f"{out['positive'].shape[1]} clicks after 3 rounds"


def test_perfect_prediction_adds_nothing_and_mode_is_restored() -> None:
    class Oracle(ConstantModel):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.modes.append(self.training)
            return square_batch()["target"] * 10 - 5

    model = Oracle(0.0).train()
    batch = square_batch()
    out = add_corrective_clicks(model, batch, SPEC, rounds=2)
    assert out["positive"].shape[1] == 0 and out["negative"].shape[1] == 0, "a perfect prediction needs no click"
    assert torch.equal(out["input"], batch["input"]), "input must be unchanged without clicks"
    assert model.modes == [False, False] and model.training, "rounds run in eval mode, then the mode is restored"
