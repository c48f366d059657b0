"""The network input of one object: crop, canvas and guidance channels (SPEC 1, 1b, 2).

The one encoder shared by the runtime, training, iterative click rounds, export
samples and the benchmarks. The model's :class:`~fairs_sdk.config.InputSpec` lists
its input channels in order; :class:`InputEncoder` builds exactly that list:

- ``rgb`` (3): the crop, raw RGB 0..255 as float32 (normalisation is the model's);
- ``sfg`` (1): the soft focus map psi of the extreme points and clicks;
- ``positive_clicks`` (1): G_pos alone, ``negative_clicks`` (1): G_neg alone.

Points are (x, y) floats; image pixel (row i, column j) sits at (x, y) = (j, i).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairs_sdk import crop
from fairs_sdk.config import InputSpec
from fairs_sdk.sfg import gaussian_fwhm, kernel_threads, soft_focus

__all__ = ["Encoded", "InputEncoder", "click_map"]

_NO_POINTS = np.empty((0, 2), dtype=np.float64)


@dataclass(frozen=True)
class Encoded:
    """One object's network input and where it came from.

    Attributes:
        input: (C, S, S) float32, the channels of ``InputSpec.input_channels`` in order.
        box: (x0, y0, x1, y1) crop box in image pixels, half-open.
        image_shape: (H, W) of the image.
    """

    input: np.ndarray
    box: tuple[int, int, int, int]
    image_shape: tuple[int, int]


def click_map(size: int, clicks: np.ndarray, sigma: float) -> np.ndarray:
    """G(x) of SPEC 1 for (m, 2) canvas clicks on a (size, size) canvas: (size, size) float32, 0 for none."""
    if len(clicks) == 0:
        return np.zeros((size, size), dtype=np.float32)
    coords = np.arange(size, dtype=np.float64)
    return gaussian_fwhm(coords[None, :], coords[:, None], clicks, sigma).astype(np.float32)


class InputEncoder:
    """Builds the (C, S, S) input a model declares, from an image and its points.

    Args:
        spec: the model's input conventions; ``spec.input_channels`` fixes C and order.
        sfg_threads: Numba threads for the SFG kernel (``None``: Numba's setting).

    Points given to the methods are already checked (finite (n, 2) float64 arrays);
    :mod:`fairs_sdk.validation` checks user input where it enters.
    """

    def __init__(self, spec: InputSpec, sfg_threads: int | None = None) -> None:
        self.spec = spec
        self.sfg_threads = sfg_threads
        self.channels = spec.input_channels
        self.channel_count = spec.channel_count

    def margins(self, extreme: np.ndarray, positive: np.ndarray = _NO_POINTS) -> tuple[int, int, int, int]:
        """The crop's margins, image px, (left, top, right, bottom): ``relax`` (SPEC 2), and for
        fewer than four extreme points also ``partial_relax`` of the longer side of the points'
        and positive clicks' box, on the sides ``partial_relax_sides`` names."""
        points = np.concatenate([extreme, positive])
        return self.spec.margins_for(len(extreme), float(np.ptp(points, axis=0).max()), crop.corner_sides(points))

    def crop_box(self, extreme: np.ndarray, positive: np.ndarray = _NO_POINTS) -> tuple[int, int, int, int]:
        """Box of the extreme points and positive clicks enlarged by :meth:`margins`."""
        return crop.crop_box(np.concatenate([extreme, positive]), self.margins(extreme, positive))

    def crop_pixels(self, image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """(S, S, 3) uint8 zero-padded crop of an (H, W, 3) uint8 image."""
        return crop.crop_resize(image, box, self.spec.input_size)

    def guidance(
        self, extreme: np.ndarray, positive: np.ndarray = _NO_POINTS, negative: np.ndarray = _NO_POINTS
    ) -> np.ndarray:
        """The non-RGB channels, in the declared order, from canvas points: (C - 3, S, S) float32."""
        spec = self.spec
        s = spec.input_size
        maps = []
        for name in self.channels:
            if name == "sfg":
                with kernel_threads(self.sfg_threads):
                    maps.append(
                        soft_focus((s, s), extreme, positive, negative, beta=spec.beta, kappa=spec.kappa, sigma=spec.sigma)
                    )
            elif name == "positive_clicks":
                maps.append(click_map(s, positive, spec.sigma))
            elif name == "negative_clicks":
                maps.append(click_map(s, negative, spec.sigma))
        if not maps:
            return np.zeros((0, s, s), dtype=np.float32)
        return np.stack(maps).astype(np.float32, copy=False)

    def encode_canvas(
        self,
        pixels: np.ndarray,
        extreme: np.ndarray,
        positive: np.ndarray = _NO_POINTS,
        negative: np.ndarray = _NO_POINTS,
    ) -> np.ndarray:
        """(C, S, S) float32 from an (S, S, 3) uint8 canvas and canvas points."""
        s = self.spec.input_size
        out = np.empty((self.channel_count, s, s), dtype=np.float32)
        guidance = iter(self.guidance(extreme, positive, negative))
        c = 0
        for name in self.channels:
            if name == "rgb":
                out[c : c + 3] = pixels.transpose(2, 0, 1)
                c += 3
            else:
                out[c] = next(guidance)
                c += 1
        return out

    def encode(
        self,
        image: np.ndarray,
        extreme: np.ndarray,
        positive: np.ndarray = _NO_POINTS,
        negative: np.ndarray = _NO_POINTS,
    ) -> Encoded:
        """The input of one object: crop box (SPEC 2), crop, points mapped to the canvas, channels.

        Args:
            image: (H, W, 3) uint8 RGB.
            extreme, positive, negative: (n, 2) float64 (x, y) image pixels.
        """
        s = self.spec.input_size
        box = self.crop_box(extreme, positive)
        pixels = self.crop_pixels(image, box)
        x = self.encode_canvas(
            pixels, crop.to_canvas(extreme, box, s), crop.to_canvas(positive, box, s), crop.to_canvas(negative, box, s)
        )
        return Encoded(x, box, (int(image.shape[0]), int(image.shape[1])))
