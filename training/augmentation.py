"""Training augmentation: random flip, scale and rotation of an instance about its object.

NumPy in, NumPy out; the image is warped bilinearly, the masks with nearest neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .sources import Loaded

__all__ = ["AugmentConfig", "augment"]


@dataclass
class AugmentConfig:
    """Random scale, rotation (degrees) and horizontal flip, about the object's centre."""

    scale: tuple[float, float] = (0.75, 1.25)
    rotation: float = 20.0
    flip_probability: float = 0.5


def augment(image: np.ndarray, obj: np.ndarray, ignore: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> Loaded:
    """Randomly flipped, scaled and rotated copies of an instance, same shapes and dtypes.

    ``image`` (H, W, 3) uint8, ``obj`` and ``ignore`` (H, W) bool; the warp is about the
    centre of the object's bounding box, masks use nearest neighbour. If the warp would
    push the whole object out of the image, the (possibly flipped) input comes back.
    """
    if rng.random() < config.flip_probability:
        image, obj, ignore = image[:, ::-1], obj[:, ::-1], ignore[:, ::-1]
    scale = rng.uniform(*config.scale)
    angle = rng.uniform(-config.rotation, config.rotation)
    ys, xs = np.nonzero(obj)
    centre = (float(xs.min() + xs.max()) / 2, float(ys.min() + ys.max()) / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    size = (image.shape[1], image.shape[0])
    warped_image = cv2.warpAffine(np.ascontiguousarray(image), matrix, size, flags=cv2.INTER_LINEAR)
    warped_obj = cv2.warpAffine(np.ascontiguousarray(obj, dtype=np.uint8), matrix, size, flags=cv2.INTER_NEAREST) > 0
    warped_ignore = cv2.warpAffine(np.ascontiguousarray(ignore, dtype=np.uint8), matrix, size, flags=cv2.INTER_NEAREST) > 0
    if not warped_obj.any():
        return np.ascontiguousarray(image), np.ascontiguousarray(obj), np.ascontiguousarray(ignore)
    return warped_image, warped_obj, warped_ignore
