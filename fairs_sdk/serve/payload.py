"""A :class:`~fairs_sdk.Result` as the JSON the service returns."""

from __future__ import annotations

import base64
from typing import Any

import cv2
import numpy as np

from fairs_sdk.result import Result

__all__ = ["mask_png", "result_payload"]


def mask_png(mask: np.ndarray) -> bytes:
    """An (H, W) bool mask as a grayscale PNG file: 255 object, 0 background."""
    ok, buf = cv2.imencode(".png", np.asarray(mask, dtype=np.uint8) * 255)
    if not ok:  # pragma: no cover - OpenCV encodes any 2-D uint8 array
        raise RuntimeError("OpenCV could not encode the mask as PNG")
    return buf.tobytes()


def result_payload(result: Result, with_png: bool = False) -> dict[str, Any]:
    """The JSON of one segmentation.

    Keys: ``width``, ``height``; ``crop_box`` (x0, y0, x1, y1) the crop the model saw,
    half-open, in image pixels (may extend past the image); ``bbox`` (x0, y0, x1, y1) the
    mask's tight half-open box, ``null`` for an empty mask; ``area`` (pixels); ``rle``
    COCO compressed RLE ``{"size": [H, W], "counts": str}``; ``polygons`` the outer
    boundaries, each a list of [x, y] pixel centres (holes only in the RLE); with
    ``with_png``, ``mask_png``: the mask as a base64 PNG (0 / 255).
    """
    h, w = result.mask.shape
    bbox = result.bbox()
    out: dict[str, Any] = {
        "width": int(w),
        "height": int(h),
        "crop_box": [int(v) for v in result.box],
        "bbox": None if bbox is None else list(bbox),
        "area": result.area,
        "rle": result.to_rle(),
        "polygons": [p.tolist() for p in result.to_polygons()],
    }
    if with_png:
        out["mask_png"] = base64.b64encode(mask_png(result.mask)).decode("ascii")
    return out
