"""Constants and helpers shared by the ``fairs serve`` tests (imported, not collected)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
COFFEE = REPO / "examples" / "coffee.png"
CVAT_REQUEST = Path(__file__).resolve().parent / "data" / "cvat_request.json"
#: Extreme points (left, right, top, bottom) of the cup and saucer in coffee.png, SDK convention.
COFFEE_POINTS = [(77, 250), (479, 235), (290, 18), (280, 388)]
#: A click on the table inside the cup's box: background.
TABLE = (110, 120)


def decode_png(b64: str) -> np.ndarray:
    """A base64 PNG mask (0 / 255) as (H, W) bool."""
    import cv2

    gray = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_UNCHANGED)
    assert gray is not None and gray.ndim == 2, "mask_png is not a grayscale PNG"
    return gray > 127
