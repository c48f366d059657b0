"""Simulated region errors: whole image regions given the wrong label, for training clicks.

On its own training crops the stage-1 decoder makes small errors, so a click branch
trained on them learns to flip the clicked spot, not the region around it; on new
images the errors are often whole regions (half a paraglider's wing, a kite's board).
A region error is a part of the crop that looks alike (a cluster of the encoder's
features) pushed to the wrong side: a part of the object to background, or a part of
the background to object. Added to the no-click logits while training, it gives the
click branch region-sized mistakes to undo. Nothing here runs at inference.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["feature_regions", "region_error", "ERROR_LOGIT"]

#: Logits added (object parts) or subtracted (background parts): more than the stage-1
#: decoder's confident outputs (|logit| about 5 to 10), so the region flips.
ERROR_LOGIT = 12.0


def feature_regions(features: np.ndarray, cells: np.ndarray, clusters: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w) int32 k-means cluster (0..clusters-1) of each cell of (C, h, w) ``features`` where
    ``cells`` (h, w) bool is set, by cosine distance; -1 elsewhere."""
    c, h, w = features.shape
    labels = np.full((h, w), -1, np.int32)
    count = int(cells.sum())
    if count < clusters:
        return labels
    samples = np.ascontiguousarray(features[:, cells].T, dtype=np.float32)
    samples /= np.linalg.norm(samples, axis=1, keepdims=True) + 1e-6
    cv2.setRNGSeed(int(rng.integers(1 << 30)))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1e-3)
    _, found, _ = cv2.kmeans(samples, clusters, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    labels[cells] = found.ravel()
    return labels


def region_error(
    features: np.ndarray,
    target: np.ndarray,
    rng: np.random.Generator,
    clusters: int = 3,
    area_range: tuple[float, float] = (0.05, 0.6),
    object_share: float = 0.5,
) -> np.ndarray:
    """(S, S) float32 logits that flip one region of the crop; zeros if no region fits.

    ``features`` (C, h, w) the crop's encoder features (S a multiple of h); ``target``
    (S, S) bool object mask. One side is drawn: the object with ``object_share``, else the background. That side's
    cells (the object's, or the background's that lie within the object's box enlarged by
    a quarter each way) are clustered by their features; the region is one connected part
    of a cluster after a 3 x 3 opening (no one-cell strips), between ``area_range`` times
    the object's area, and on the background
    side touching the object. Its logits are -ERROR_LOGIT on the object side and
    +ERROR_LOGIT on the background side.
    """
    size = target.shape
    h, w = features.shape[1:]
    cell_object = cv2.resize(target.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0.5
    area = int(cell_object.sum())
    if area < 4:
        return np.zeros(size, np.float32)
    object_side = bool(rng.random() < object_share)
    if object_side:
        cells = cell_object
    else:
        ys, xs = np.nonzero(cell_object)
        pad_y, pad_x = (ys.max() - ys.min()) // 4 + 1, (xs.max() - xs.min()) // 4 + 1
        cells = np.zeros((h, w), bool)
        cells[max(0, ys.min() - pad_y) : ys.max() + pad_y + 1, max(0, xs.min() - pad_x) : xs.max() + pad_x + 1] = True
        cells &= ~cell_object
        touching = cv2.dilate(cell_object.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    labels = feature_regions(features, cells, clusters + (0 if object_side else 1), rng)
    low, high = area_range[0] * area, area_range[1] * area
    candidates = []
    square = np.ones((3, 3), np.uint8)
    for label in range(labels.max() + 1):
        # opened, so that one-cell strips (the rim of cells along every boundary) drop out
        cluster = cv2.morphologyEx((labels == label).astype(np.uint8), cv2.MORPH_OPEN, square)
        count, parts = cv2.connectedComponents(cluster, connectivity=8)
        sizes = np.bincount(parts.ravel(), minlength=count)
        for part in range(1, count):
            if low <= sizes[part] <= high and (object_side or (touching & (parts == part)).any()):
                candidates.append(parts == part)
    if not candidates:
        return np.zeros(size, np.float32)
    region = candidates[int(rng.integers(len(candidates)))]
    region = cv2.resize(region.astype(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST) > 0
    region &= target if object_side else ~target
    return np.where(region, np.float32(-ERROR_LOGIT if object_side else ERROR_LOGIT), np.float32(0.0))
