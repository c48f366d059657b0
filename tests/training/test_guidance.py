"""Guidance maps: DEXTR's Gaussian heat map (ablation) and the dispatch to the SFG."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fairs_sdk.sfg import soft_focus
from fairs_sdk.training.guidance import gaussian_heatmap, guidance_map

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


def test_guidance_map_dispatches() -> None:
    sfg = guidance_map("sfg", (60, 64), EXTREME, None, None, beta=5.0, kappa=2.0, sigma=10.0)
    np.testing.assert_allclose(sfg, soft_focus((60, 64), EXTREME, beta=5.0, kappa=2.0, sigma=10.0), atol=1e-7)
    gaussian = guidance_map("gaussian", (60, 64), EXTREME, None, None, beta=5.0, kappa=2.0, sigma=10.0)
    np.testing.assert_array_equal(gaussian, gaussian_heatmap((60, 64), EXTREME, sigma=10.0))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gaussian_heatmap((8, 8), EXTREME, sigma=0.0), "sigma must be positive"),
        (lambda: gaussian_heatmap((8, 8), EXTREME[:1]), "extreme"),
        (lambda: guidance_map("disk", (8, 8), EXTREME, None, None, 5.0, 2.0, 10.0), "guidance must be one of"),
    ],
    ids=["sigma", "one-point", "unknown-kind"],
)
def test_bad_input_raises(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
