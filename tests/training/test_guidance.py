"""Guidance: DEXTR's Gaussian heat map (ablation) and the encoders that put it, or the SFG, in the sfg plane."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fairs_sdk.config import InputSpec
from fairs_sdk.encoder import InputEncoder, click_map
from fairs_sdk.training.guidance import HeatmapEncoder, gaussian_heatmap, make_encoder

EXTREME = np.array([[10.0, 30.0], [50.0, 30.0], [30.0, 12.0], [30.0, 48.0]])


def test_heatmap_peaks_at_each_extreme_point() -> None:
    heat = gaussian_heatmap((60, 64), EXTREME, sigma=5.0)
    for x, y in EXTREME.astype(int):
        assert heat[y, x] == pytest.approx(1.0), f"heat map at extreme point ({x}, {y}) is {heat[y, x]}, not 1"
    assert heat.dtype == np.float32 and heat.shape == (60, 64)


def test_heatmap_is_a_gaussian_of_the_nearest_point() -> None:
    heat = gaussian_heatmap((60, 64), EXTREME, sigma=5.0)
    assert heat[30, 15] == pytest.approx(math.exp(-0.5), rel=1e-5), "one sigma from a point must give exp(-1/2)"
    nearest = 18.0  # the centre (30, 30) is 18 px from (30, 12) and (30, 48), 20 px from the others
    assert heat[30, 30] == pytest.approx(math.exp(-(nearest**2) / 50.0), rel=1e-5), "the maximum must come from the nearest point"


def test_positive_click_adds_a_peak_and_negative_click_removes_one() -> None:
    plain = gaussian_heatmap((60, 64), EXTREME, sigma=5.0)
    clicked = gaussian_heatmap((60, 64), EXTREME, positive=[[30, 30]], negative=[[10, 30]], sigma=5.0)
    assert clicked[30, 30] == pytest.approx(1.0, abs=1e-3), "a positive click must put a (near) unit peak on its pixel"
    assert clicked[30, 10] == pytest.approx(0.0, abs=1e-6), "a negative click must zero the map on its pixel"
    assert plain[30, 10] == pytest.approx(1.0)


def test_make_encoder_picks_the_runtime_encoder_for_sfg() -> None:
    spec = InputSpec(input_size=64)
    encoder = make_encoder(spec, "sfg")
    assert type(encoder) is InputEncoder, f"sfg models must use the runtime's own encoder, got {type(encoder).__name__}"


def test_heatmap_encoder_replaces_only_the_sfg_plane() -> None:
    spec = InputSpec(input_size=64, input_channels=("rgb", "positive_clicks", "sfg", "negative_clicks"))
    positive, negative = np.array([[30.0, 30.0]]), np.array([[12.0, 50.0]])
    encoder = make_encoder(spec, "gaussian")
    assert isinstance(encoder, HeatmapEncoder)
    planes = encoder.guidance(EXTREME, positive, negative)
    assert planes.shape == (3, 64, 64) and planes.dtype == np.float32
    np.testing.assert_array_equal(planes[1], gaussian_heatmap((64, 64), EXTREME, positive, negative, sigma=spec.sigma))
    np.testing.assert_array_equal(planes[0], click_map(64, positive, spec.sigma), "click maps are the shared encoder's")
    np.testing.assert_array_equal(planes[2], click_map(64, negative, spec.sigma), "click maps are the shared encoder's")
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    full = encoder.encode_canvas(pixels, EXTREME, positive, negative)
    np.testing.assert_array_equal(full[0:3], pixels.transpose(2, 0, 1).astype(np.float32), "RGB must be the crop")
    np.testing.assert_array_equal(full[[3, 4, 5]], planes, "encode_canvas must use the heat-map guidance")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gaussian_heatmap((8, 8), EXTREME, sigma=0.0), "sigma must be positive"),
        (lambda: gaussian_heatmap((8, 8), EXTREME[:1]), "extreme"),
        (lambda: make_encoder(InputSpec(), "disk"), "guidance must be one of"),
    ],
    ids=["sigma", "one-point", "unknown-kind"],
)
def test_bad_input_raises(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
