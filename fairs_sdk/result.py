"""What a segmentation returns, and its conversions to COCO RLE and polygons.

COCO RLE is encoded here (no pycocotools at run time); it is byte-identical to
``pycocotools.mask.encode`` (the tests check), with ``counts`` as a ``str`` so it
goes straight into JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Result", "mask_to_rle", "rle_counts", "encode_counts", "mask_to_polygons"]


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO run lengths of an (H, W) mask: column-major, starting with a 0-run."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return []
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(edges).tolist()
    return ([0] + runs) if flat[0] else runs


def encode_counts(counts: list[int]) -> str:
    """COCO's compressed counts string (``rleToString`` of pycocotools' maskApi.c)."""
    out = bytearray()
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift, as in C for a signed long
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(c + 48)
    return out.decode("ascii")


def mask_to_rle(mask: np.ndarray) -> dict:
    """COCO compressed RLE of an (H, W) mask: ``{"size": [H, W], "counts": str}``."""
    h, w = mask.shape
    return {"size": [int(h), int(w)], "counts": encode_counts(rle_counts(mask))}


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[np.ndarray]:
    """Outer boundaries of the mask's connected parts, as (k, 2) int32 (x, y) pixel centres.

    Holes are not represented (COCO polygons cannot); use RLE for exact masks.
    Parts whose contour has fewer than ``min_points`` points (single pixels and
    lines) are dropped, as COCO needs at least 3 points per polygon.
    """
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    return [c.reshape(-1, 2).astype(np.int32) for c in contours if len(c) >= min_points]


@dataclass(frozen=True, eq=False)
class Result:
    """One object's segmentation, at the image's own size.

    Attributes:
        mask: (H, W) bool, ``probabilities >= threshold``.
        probabilities: (H, W) float32 in [0, 1]; 0 outside ``box``.
        box: (x0, y0, x1, y1) crop box in image pixels, half-open; it may extend
            past the image (the model saw zero padding there).
    """

    mask: np.ndarray
    probabilities: np.ndarray
    box: tuple[int, int, int, int]

    @property
    def area(self) -> int:
        """Number of object pixels."""
        return int(np.count_nonzero(self.mask))

    def bbox(self) -> tuple[int, int, int, int] | None:
        """Tight (x0, y0, x1, y1) half-open box of the mask's pixels; ``None`` if empty."""
        cols = np.flatnonzero(self.mask.any(axis=0))
        if cols.size == 0:
            return None
        rows = np.flatnonzero(self.mask.any(axis=1))
        return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1

    def to_rle(self) -> dict:
        """COCO compressed RLE of ``mask``: ``{"size": [H, W], "counts": str}``.

        ``pycocotools.mask.decode({"size": ..., "counts": counts.encode()})`` gives the mask back.
        """
        return mask_to_rle(self.mask)

    def to_polygons(self) -> list[np.ndarray]:
        """Outer boundaries of the mask, each (k, 2) int32 (x, y); see :func:`mask_to_polygons`."""
        return mask_to_polygons(self.mask)
