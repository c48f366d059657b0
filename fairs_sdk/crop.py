"""Crop around the clicks, resize to the model's canvas, and paste the output back.

SPEC section 2, as DEXTR does it. Boxes are ``(x0, y0, x1, y1)`` integer image
pixels, half-open (``x1``/``y1`` excluded), so the crop is ``x1 - x0`` wide. Points
are (x, y) with pixel centres at integer coordinates; parts of a box outside the
image read as zeros (never clamped), as in training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from fairs_sdk.config import CROP_SIDES

__all__ = ["crop_box", "corner_sides", "crop_resize", "to_canvas", "paste_back"]


def crop_box(points: np.ndarray, relax: int | Sequence[int]) -> tuple[int, int, int, int]:
    """Bounding box of ``points`` ((n, 2) as (x, y)) enlarged by ``relax`` px on each side.

    ``relax`` is one margin for every side, or four: (left, top, right, bottom).
    Returns (x0, y0, x1, y1), half-open; it may extend past the image.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if pts.shape[0] == 0 or not np.all(np.isfinite(pts)):
        raise ValueError(f"crop_box needs finite (x, y) points, got {pts.tolist()}")
    margins = (relax,) * 4 if isinstance(relax, (int, np.integer)) else tuple(relax)
    if len(margins) != 4:
        raise ValueError(f"crop_box takes one margin or four (left, top, right, bottom), got {relax!r}")
    left, top, right, bottom = margins
    x0 = math.floor(pts[:, 0].min()) - left
    y0 = math.floor(pts[:, 1].min()) - top
    x1 = math.floor(pts[:, 0].max()) + right + 1
    y1 = math.floor(pts[:, 1].max()) + bottom + 1
    return int(x0), int(y0), int(x1), int(y1)


def corner_sides(points: np.ndarray) -> frozenset[str]:
    """Sides of the points' box (names from :data:`~fairs_sdk.config.CROP_SIDES`) touched by a
    point that touches two of them.

    ``points`` is (n, 2) (x, y). Three extreme points leave one side of the object's box
    open, and one of them then sits on a corner of their box: the open side is one of
    that point's two sides. Empty when no point touches two sides.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    touched = np.stack([pts[:, 0] == lo[0], pts[:, 1] == lo[1], pts[:, 0] == hi[0], pts[:, 1] == hi[1]], axis=1)
    on_corner = touched[touched.sum(axis=1) >= 2].any(axis=0)
    return frozenset(side for side, hit in zip(CROP_SIDES, on_corner) if hit)


def _pad_crop(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """image[y0:y1, x0:x1] with zeros where the box leaves the image."""
    x0, y0, x1, y1 = box
    h, w = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx0 < sx1 and sy0 < sy1:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def crop_resize(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    size: int,
    interpolation: int = cv2.INTER_LINEAR,
) -> np.ndarray:
    """Zero-padded crop of ``image`` ((H, W) or (H, W, C)) resized to (size, size[, C]).

    The dtype is kept. Use ``cv2.INTER_NEAREST`` for label masks.
    """
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty crop box {box}")
    crop = _pad_crop(image, box)
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def to_canvas(points: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Map image (x, y) points into the (size x size) canvas of ``box``; (n, 2) float64.

    Uses the pixel-centre convention of ``cv2.resize``: u = (x - x0 + 0.5) * s - 0.5.
    """
    x0, y0, x1, y1 = box
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    scale = np.array([size / (x1 - x0), size / (y1 - y0)])
    return (pts - np.array([x0, y0]) + 0.5) * scale - 0.5


def paste_back(
    canvas: np.ndarray, box: tuple[int, int, int, int], image_shape: tuple[int, ...]
) -> np.ndarray:
    """Resize a (size, size) float map back to ``box`` and paste it into an (H, W) zero map.

    Returns (H, W) float32; pixels outside the box are 0.
    """
    x0, y0, x1, y1 = box
    h, w = image_shape[:2]
    out = np.zeros((h, w), dtype=np.float32)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx0 >= sx1 or sy0 >= sy1:
        return out
    resized = cv2.resize(
        canvas.astype(np.float32, copy=False), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR
    )
    out[sy0:sy1, sx0:sx1] = resized[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    return out
