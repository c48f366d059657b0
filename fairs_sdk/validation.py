"""Checks of what users hand to the runtime: images, points, clicks, thresholds, batch sizes.

Every check raises :class:`InputError` (a ``ValueError``) with a message that names
the argument and what is wrong with it; values are refused, never coerced (no
strings, bools or objects for numbers, no numbers for bools). Points are (x, y)
real numbers with pixel (row i, column j) at (x, y) = (j, i); a point is inside an
(H, W) image when -0.5 <= x <= W - 0.5 and -0.5 <= y <= H - 0.5 (anywhere on a
pixel's area).

Limits: images up to :data:`MAX_IMAGE_PIXELS` pixels and :data:`MAX_IMAGE_SIDE` per
side; at most :data:`MAX_POINTS` points in each of an object's extreme points,
positive clicks and negative clicks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Union

import numpy as np

from fairs_sdk.sfg import MAX_POINTS, as_points

__all__ = [
    "InputError",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "MAX_POINTS",
    "check_image",
    "check_points",
    "check_click",
    "check_threshold",
    "check_batch_size",
]

#: Largest image accepted, in pixels (H * W): 100 megapixels, e.g. 12000 x 8000.
MAX_IMAGE_PIXELS = 100_000_000
#: Largest image side accepted, in pixels (OpenCV's resize takes sides up to 32767).
MAX_IMAGE_SIDE = 32_767

Points = Union[Sequence[Sequence[float]], np.ndarray]


class InputError(ValueError):
    """An image, point list, click, threshold or batch size that the runtime cannot use; the message says why."""


def check_image(image: np.ndarray, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Return ``image`` as an (H, W, 3) uint8 RGB array, converting where the SPEC allows.

    Accepted: (H, W, 3) RGB, (H, W) or (H, W, 1) grayscale (replicated to 3
    channels) and (H, W, 4) RGBA (alpha dropped), all uint8. The result shares
    memory with ``image`` when no conversion is needed.
    """
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a NumPy array, got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise InputError(
            f"image must be 2-D (H, W) or 3-D (H, W, C), got {image.ndim}-D with shape {image.shape}"
        )
    if image.dtype != np.uint8:
        raise InputError(f"image must be uint8 (0..255), got dtype {image.dtype}")
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise InputError(f"image is empty: shape {image.shape}")
    if h > MAX_IMAGE_SIDE or w > MAX_IMAGE_SIDE or h * w > max_pixels:
        raise InputError(
            f"image of {w} x {h} pixels is too large: the limit is {max_pixels:,} pixels "
            f"and {MAX_IMAGE_SIDE} per side; downscale it first"
        )
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    channels = image.shape[2]
    if channels == 3:
        return image
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 4:
        return np.ascontiguousarray(image[:, :, :3])
    raise InputError(
        f"image must have 1 (gray), 3 (RGB) or 4 (RGBA) channels, got {channels} (shape {image.shape})"
    )


def check_points(
    points: Points | None,
    name: str,
    image_shape: tuple[int, ...],
    min_count: int = 0,
    distinct: bool = False,
) -> np.ndarray:
    """Return ``points`` as an (n, 2) float64 array of (x, y) inside an image of ``image_shape``.

    Args:
        points: (n, 2) (x, y) real numbers (ints or floats; not strings or bools);
            ``None`` or empty means none; at most :data:`MAX_POINTS` pairs.
        name: the argument's name, for messages.
        image_shape: (H, W[, C]) of the image the points are on.
        min_count: fewest points accepted.
        distinct: require at least two different points (extreme points).
    """
    arr = as_points(points, name, min_count, error=InputError)
    h, w = image_shape[:2]
    outside = (arr[:, 0] < -0.5) | (arr[:, 0] > w - 0.5) | (arr[:, 1] < -0.5) | (arr[:, 1] > h - 0.5)
    if outside.any():
        i = int(np.argmax(outside))
        raise InputError(
            f"{name}[{i}] = ({arr[i, 0]:g}, {arr[i, 1]:g}) is outside the {w} x {h} image "
            f"(x must be in [-0.5, {w - 0.5:g}], y in [-0.5, {h - 0.5:g}])"
        )
    if distinct and arr.shape[0] > 0 and np.all(arr == arr[0]):
        raise InputError(f"{name} are all the same point ({arr[0, 0]:g}, {arr[0, 1]:g}); they must span the object")
    return arr


def _is_real(value: object) -> bool:
    """True for Python and NumPy ints and floats; False for bools, strings and everything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_click(x: float, y: float, positive: bool, image_shape: tuple[int, ...]) -> tuple[float, float, bool]:
    """Return one corrective click as (x, y, positive): real numbers inside the image, a real bool.

    ``positive`` must be ``True`` or ``False`` (Python or NumPy bool): ``"no"``, 0 or
    1 are refused, as strings or bools are for ``x`` and ``y``.
    """
    if not isinstance(positive, (bool, np.bool_)):
        raise InputError(f"positive must be True or False, got {positive!r} ({type(positive).__name__})")
    name = "positive_click" if positive else "negative_click"
    for axis, value in (("x", x), ("y", y)):
        if not _is_real(value):
            raise InputError(f"{name} {axis} must be a number, got {value!r} ({type(value).__name__})")
    point = check_points(np.array([[x, y]], dtype=np.float64), name, image_shape)
    return float(point[0, 0]), float(point[0, 1]), bool(positive)


def check_threshold(threshold: float) -> float:
    """Return ``threshold`` as a float in [0, 1]; it must be an int or float (not a bool or string)."""
    if not _is_real(threshold):
        raise InputError(f"threshold must be a number in [0, 1], got {threshold!r} ({type(threshold).__name__})")
    t = float(threshold)
    if not (math.isfinite(t) and 0.0 <= t <= 1.0):
        raise InputError(f"threshold must be in [0, 1], got {threshold!r}")
    return t


def check_batch_size(batch_size: int) -> int:
    """Return ``batch_size`` as an int >= 1; it must be an int (not a bool, float or string)."""
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, numbers.Integral):
        raise InputError(f"batch_size must be an int >= 1, got {batch_size!r} ({type(batch_size).__name__})")
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)
