"""The guidance a model is trained with: FAIRS's SFG, or DEXTR's Gaussian heat map (ablation only).

The runtime (``fairs_sdk``) implements only the SFG. The Gaussian heat map exists so
that the ablation of paper table 1 (+SFG against a plain heat map) can be trained
and evaluated with the same pipeline: :func:`make_encoder` gives the shared
:class:`~fairs_sdk.encoder.InputEncoder`, or for "gaussian" one that puts the heat map
in the ``sfg`` plane. Such models cannot be exported.
"""

from __future__ import annotations

import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.encoder import InputEncoder
from fairs_sdk.sfg import as_points

__all__ = ["GUIDANCE_KINDS", "HeatmapEncoder", "gaussian_heatmap", "make_encoder"]

GUIDANCE_KINDS = ("sfg", "gaussian")
_NO_POINTS = np.empty((0, 2), dtype=np.float64)


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


class HeatmapEncoder(InputEncoder):
    """An :class:`~fairs_sdk.encoder.InputEncoder` whose ``sfg`` plane holds DEXTR's heat map.

    Every other plane (RGB, click maps) is the shared encoder's own. For the ablation
    only: the runtime computes the SFG, so such models cannot be exported.
    """

    def guidance(
        self, extreme: np.ndarray, positive: np.ndarray = _NO_POINTS, negative: np.ndarray = _NO_POINTS
    ) -> np.ndarray:
        """(C - 3, S, S) float32 from canvas points, the heat map where the SFG would be."""
        planes = super().guidance(extreme, positive, negative)  # the SFG it replaces costs ~1 ms
        size = self.spec.input_size
        for plane, name in enumerate(n for n in self.channels if n != "rgb"):
            if name == "sfg":
                planes[plane] = gaussian_heatmap((size, size), extreme, positive, negative, self.spec.sigma)
        return planes


def make_encoder(spec: InputSpec, guidance: str = "sfg", sfg_threads: int | None = None) -> InputEncoder:
    """The encoder of a model trained with ``guidance`` ("sfg": the runtime's own, or "gaussian")."""
    if guidance == "sfg":
        return InputEncoder(spec, sfg_threads=sfg_threads)
    if guidance == "gaussian":
        return HeatmapEncoder(spec, sfg_threads=sfg_threads)
    raise ValueError(f"guidance must be one of {GUIDANCE_KINDS}, got {guidance!r}")
