"""Small COCO files over images with red objects, for the ``fairs annotate`` tests.

With the ``red_model`` of tests/fairs_sdk/conftest.py (probabilities = red / 255) an
object's mask is the red rectangle its extreme points span.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

#: file name -> (width, height, red rectangles (x0, y0, x1, y1), half-open)
SCENES = {
    "a.png": (320, 240, [(100, 50, 200, 130)]),
    "b.png": (200, 160, [(20, 30, 90, 100), (120, 40, 180, 140)]),
    "c.png": (160, 120, [(40, 20, 120, 100)]),
}


def rect_points(rect: tuple[int, int, int, int]) -> list[list[float]]:
    """Left, right, top and bottom extreme points of a half-open rectangle, (x, y) pixel centres."""
    x0, y0, x1, y1 = rect
    cx, cy = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
    return [[x0, cy], [x1 - 1, cy], [cx, y0], [cx, y1 - 1]]


def write_scene(folder: Path) -> tuple[Path, Path, dict]:
    """Images of SCENES in ``folder/images`` and ``folder/in.json`` with one annotation per rectangle.

    Image ids 10, 20, 30; annotation ids 1, 2, ... in rectangle order. Returns
    (COCO path, images folder, the COCO dict).
    """
    images_dir = folder / "images"
    images_dir.mkdir(parents=True)
    images, annotations = [], []
    for k, (name, (w, h, rects)) in enumerate(SCENES.items()):
        image = np.zeros((h, w, 3), np.uint8)
        for x0, y0, x1, y1 in rects:
            image[y0:y1, x0:x1] = (255, 0, 0)
        cv2.imwrite(str(images_dir / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        image_id = 10 * (k + 1)
        images.append({"id": image_id, "file_name": name, "width": w, "height": h})
        for rect in rects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1,
                                "extreme_points": rect_points(rect)})
    data = {"info": {"description": "red rectangles"}, "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": "red"}]}
    path = folder / "in.json"
    path.write_text(json.dumps(data))
    return path, images_dir, data
