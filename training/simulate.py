"""Simulated user input of SPEC section 4: extreme points, three points, corrective clicks.

NumPy + OpenCV only (no torch), so evaluation scripts can use it without a model.
Masks are (H, W) bool or 0/1 arrays indexed [row, col]; points are (x, y) float64
in image pixels, x = column, y = row, pixel centres at integer coordinates.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: Default uniform noise on each extreme-point coordinate during training, px (SPEC 4).
EXTREME_POINT_NOISE = 10.0
#: Distance band from the object boundary for training corrective clicks, px (paper 4.5).
CLICK_DISTANCE_RANGE = (15.0, 60.0)


def _as_bool_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be (H, W), got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def _middle(values: np.ndarray) -> int:
    """The middle entry of sorted ``values`` (the lower middle for an even count)."""
    return int(np.sort(values)[(len(values) - 1) // 2])


def extreme_points(mask: np.ndarray) -> np.ndarray:
    """Left-, right-, top- and bottom-most object pixels of ``mask``: (4, 2) float64 (x, y).

    Where several pixels tie (e.g. a vertical left edge), the middle one of the tie is
    taken (the lower middle for an even count).

    Raises:
        ValueError: the mask is empty or not 2-D.
    """
    mask = _as_bool_mask(mask)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("extreme_points needs a non-empty mask")
    left, right, top, bottom = xs.min(), xs.max(), ys.min(), ys.max()
    return np.array(
        [
            (left, _middle(ys[xs == left])),
            (right, _middle(ys[xs == right])),
            (_middle(xs[ys == top]), top),
            (_middle(xs[ys == bottom]), bottom),
        ],
        dtype=np.float64,
    )


def snap_to_mask(mask: np.ndarray, point: np.ndarray, radius: float) -> np.ndarray:
    """The object pixel nearest to ``point`` (x, y) within ``radius`` px; (2,) float64.

    Raises:
        ValueError: no object pixel lies within ``radius``.
    """
    mask = _as_bool_mask(mask)
    h, w = mask.shape
    r = int(math.ceil(radius))
    cx, cy = int(round(point[0])), int(round(point[1]))
    x0, x1, y0, y1 = max(cx - r, 0), min(cx + r + 1, w), max(cy - r, 0), min(cy + r + 1, h)
    ys, xs = np.nonzero(mask[y0:y1, x0:x1]) if x0 < x1 and y0 < y1 else (np.empty(0), np.empty(0))
    if len(xs) == 0:
        raise ValueError(f"no object pixel within {radius} px of {tuple(point)}")
    d2 = (xs + x0 - point[0]) ** 2 + (ys + y0 - point[1]) ** 2
    best = int(np.argmin(d2))
    if d2[best] > radius**2 + 1e-9:
        raise ValueError(f"no object pixel within {radius} px of {tuple(point)}")
    return np.array([xs[best] + x0, ys[best] + y0], dtype=np.float64)


def jitter_points(
    mask: np.ndarray, points: np.ndarray, rng: np.random.Generator, max_noise: float, slack: float = 1.0
) -> np.ndarray:
    """``points`` (n, 2) (x, y) with U[-max_noise, max_noise] on x and y, each snapped to an object pixel.

    A perturbed point moves to the nearest object pixel no farther than its displacement
    plus ``slack`` px (an exact extreme point is an object pixel, so one always exists
    for it; a point mapped onto a resized mask may sit a pixel or two off it); a point
    with no object pixel within reach stays where the noise put it. (n, 2) float64.
    """
    if max_noise < 0:
        raise ValueError(f"max_noise must be >= 0, got {max_noise}")
    mask = _as_bool_mask(mask)
    points = np.asarray(points, dtype=np.float64)
    noisy = points + rng.uniform(-max_noise, max_noise, size=points.shape)
    out = []
    for moved, start in zip(noisy, points):
        try:
            out.append(snap_to_mask(mask, moved, float(np.hypot(*(moved - start))) + slack))
        except ValueError:
            out.append(moved)
    return np.stack(out)


def noisy_extreme_points(
    mask: np.ndarray, rng: np.random.Generator, max_noise: float = EXTREME_POINT_NOISE
) -> np.ndarray:
    """Extreme points with U[-max_noise, max_noise] noise on x and y, snapped to an object pixel.

    Each perturbed point moves to the nearest object pixel (which lies no farther than
    the perturbation itself, since the exact point is an object pixel). (4, 2) float64.
    """
    return jitter_points(mask, extreme_points(mask), rng, max_noise)


def point_to_drop(points: np.ndarray, rng: np.random.Generator | None = None) -> int:
    """Index, among four points, of the one :func:`drop_to_three_points` drops.

    With ``rng`` it is either point of the closest pair at random, else the later of the pair.
    Among equally close pairs the first in (i, j) order is used.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape != (4, 2):
        raise ValueError(f"drop_to_three_points needs (4, 2) points, got {points.shape}")
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    distances = [np.hypot(*(points[i] - points[j])) for i, j in pairs]
    i, j = pairs[int(np.argmin(distances))]
    return j if rng is None else (i, j)[int(rng.integers(2))]


def drop_to_three_points(points: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Of four points, drop one of the two points of the closest pair (:func:`point_to_drop`): (3, 2)."""
    return np.delete(np.asarray(points, dtype=np.float64), point_to_drop(points, rng), axis=0)


def error_regions(
    gt: np.ndarray, prediction: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(false negatives, false positives) as bool (H, W) masks, ignore pixels excluded."""
    gt, prediction = _as_bool_mask(gt, "gt"), _as_bool_mask(prediction, "prediction")
    if gt.shape != prediction.shape:
        raise ValueError(f"gt {gt.shape} and prediction {prediction.shape} differ in shape")
    valid = np.ones_like(gt) if ignore is None else ~_as_bool_mask(ignore, "ignore")
    return gt & ~prediction & valid, prediction & ~gt & valid


def _largest_blob(region: np.ndarray) -> np.ndarray | None:
    """The largest 8-connected component of ``region`` (bool), or None when empty."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None
    label = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == label


def _innermost_pixel(blob: np.ndarray) -> np.ndarray:
    """The blob pixel farthest from the blob's border (image edge counts as border): (x, y)."""
    padded = np.pad(blob.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return np.array([col, row], dtype=np.float64)


def corrective_click(
    gt: np.ndarray, prediction: np.ndarray, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, bool] | None:
    """The next corrective click of SPEC section 4, or None when there is no error.

    The largest connected blob among the false-negative and false-positive blobs is
    chosen (by area; false negatives win ties); the click is its pixel farthest from
    the blob's border. Returns ((x, y) float64, is_positive): a false-negative blob
    gives a positive click, a false-positive blob a negative one.
    """
    false_negative, false_positive = error_regions(gt, prediction, ignore)
    candidates = [(blob, positive) for blob, positive in
                  ((_largest_blob(false_negative), True), (_largest_blob(false_positive), False)) if blob is not None]
    if not candidates:
        return None
    blob, positive = max(candidates, key=lambda item: (int(item[0].sum()), item[1]))
    return _innermost_pixel(blob), positive


def sample_training_clicks(
    mask: np.ndarray,
    rng: np.random.Generator,
    num_positive: int,
    num_negative: int,
    box: tuple[int, int, int, int] | None = None,
    distance_range: tuple[float, float] = CLICK_DISTANCE_RANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Random training clicks 15-60 px from the object boundary (paper section 4.5).

    Positive clicks are object pixels, negative clicks background pixels, whose
    distance to the boundary is in ``distance_range``; negatives are restricted to
    ``box`` (x0, y0, x1, y1, half-open) when given. Fewer clicks come back when too
    few pixels qualify. Returns (positive (p, 2), negative (q, 2)) float64 (x, y).
    """
    mask = _as_bool_mask(mask)
    low, high = distance_range
    if not 0 <= low <= high:
        raise ValueError(f"distance_range must be 0 <= low <= high, got {distance_range}")
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    positive_zone = mask & (inside >= low) & (inside <= high)
    negative_zone = ~mask & (outside >= low) & (outside <= high)
    if box is not None:
        x0, y0, x1, y1 = box
        limit = np.zeros_like(mask)
        limit[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        negative_zone &= limit
    return _pick(positive_zone, num_positive, rng), _pick(negative_zone, num_negative, rng)


def _pick(zone: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``count`` distinct random pixels of ``zone`` as (n, 2) float64 (x, y)."""
    ys, xs = np.nonzero(zone)
    if count <= 0 or len(xs) == 0:
        return np.empty((0, 2), dtype=np.float64)
    chosen = rng.choice(len(xs), size=min(count, len(xs)), replace=False)
    return np.stack([xs[chosen], ys[chosen]], axis=1).astype(np.float64)


def iou(prediction: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of two (H, W) masks, pixels in ``ignore`` left out.

    Two empty masks give 1.0.
    """
    false_negative, false_positive = error_regions(gt, prediction, ignore)
    gt, prediction = _as_bool_mask(gt), _as_bool_mask(prediction)
    valid = np.ones_like(gt) if ignore is None else ~_as_bool_mask(ignore, "ignore")
    intersection = int((gt & prediction & valid).sum())
    union = intersection + int(false_negative.sum()) + int(false_positive.sum())
    return 1.0 if union == 0 else intersection / union
