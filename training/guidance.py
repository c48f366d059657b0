"""Guidance maps for the 4th input channel: FAIRS's SFG, or DEXTR's Gaussian heat map (ablation only).

The runtime (``fairs_sdk``) implements only the SFG. The Gaussian heat map exists so
that the ablation of paper table 1 (+SFG against a plain heat map) can be trained
and evaluated with the same pipeline; such models cannot be exported.
"""

from __future__ import annotations

import numpy as np

from fairs_sdk.sfg import as_points, soft_focus

GUIDANCE_KINDS = ("sfg", "gaussian")


def gaussian_heatmap(
    shape: tuple[int, int],
    extreme: np.ndarray,
    positive: np.ndarray | None = None,
    negative: np.ndarray | None = None,
    sigma: float = 10.0,
) -> np.ndarray:
    """DEXTR's heat map: (H, W) float32 in [0, 1], points (x, y) in canvas pixels.

    The maximum of unit-peak Gaussians (std ``sigma``) centred on the extreme points
    and positive clicks; each negative click multiplies the map by (1 - its Gaussian),
    so that corrective clicks of both kinds reach the network as in the SFG.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    height, width = shape
    extreme = as_points(extreme, "extreme", min_count=2)
    attract = np.vstack([extreme, as_points(positive, "positive")])
    repel = as_points(negative, "negative")
    ys = np.arange(height, dtype=np.float64)[:, None]
    xs = np.arange(width, dtype=np.float64)[None, :]

    def gaussian(point: np.ndarray) -> np.ndarray:
        return np.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2.0 * sigma**2))

    heat = np.zeros((height, width), dtype=np.float64)
    for point in attract:
        np.maximum(heat, gaussian(point), out=heat)
    for point in repel:
        heat *= 1.0 - gaussian(point)
    return heat.astype(np.float32)


def guidance_map(
    kind: str,
    shape: tuple[int, int],
    extreme: np.ndarray,
    positive: np.ndarray | None,
    negative: np.ndarray | None,
    beta: float,
    kappa: float,
    sigma: float,
) -> np.ndarray:
    """(H, W) float32 guidance of ``kind`` ("sfg" or "gaussian"); points (x, y) canvas pixels."""
    if kind == "sfg":
        return soft_focus(shape, extreme, positive, negative, beta=beta, kappa=kappa, sigma=sigma)
    if kind == "gaussian":
        return gaussian_heatmap(shape, extreme, positive, negative, sigma)
    raise ValueError(f"guidance must be one of {GUIDANCE_KINDS}, got {kind!r}")
