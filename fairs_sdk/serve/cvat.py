"""CVAT's interactor contract: one function behind ``POST /v1/cvat`` and the nuclio function.

CVAT (``cvat/apps/lambda_manager``) calls an interactor with a JSON body::

    {"image": "<base64 of the frame's file>", "pos_points": [[x, y], ...],
     "neg_points": [[x, y], ...], "obj_bbox": null, "threshold": 0.5}

(``threshold`` only when the user set one; ``obj_bbox`` only for functions declared
``startswith_box``, which this one is not) and reads back, from "version: 2"
interactors such as HRNet and SAM, ``{"mask": [[0, 1, ...], ...], "points": [[x, y], ...]}``:
the mask as an (H, W) list of rows and the object's outline as a polygon.

Here the first 4 positive points are the extreme points (as CVAT's DEXTR function,
``min_pos_points: 4``); later positive points are "this is object" clicks and the
negative points "this is background" clicks. CVAT's coordinates put the image's
top-left corner at (0, 0), so pixel column j spans [j, j + 1); the SDK puts pixel
centres on integers (SPEC 1), so every point moves by -0.5 on the way in. The
polygon is the outline of the mask's largest part, as pixel indices (x, y), as
CVAT's own interactors return it; ``[]`` for an empty mask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from fairs_sdk.result import mask_to_polygons
from fairs_sdk.serve.errors import BadRequest
from fairs_sdk.serve.images import decode_base64

if TYPE_CHECKING:
    from fairs_sdk.serve.service import Service

__all__ = ["EXTREME_POINTS", "handle", "to_sdk_points"]

#: Positive points that are extreme points; the rest are corrective clicks.
EXTREME_POINTS = 4


def to_sdk_points(points: object, name: str) -> np.ndarray:
    """CVAT's ``[[x, y], ...]`` as an (n, 2) float64 array in the SDK's pixel-centre convention."""
    if points is None:
        points = []
    if not isinstance(points, list) or not all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                             for v in p)
        for p in points
    ):
        raise BadRequest(f"{name} must be a list of [x, y] number pairs, got {str(points)[:200]}")
    return np.asarray(points, dtype=np.float64).reshape(-1, 2) - 0.5


def _outline(mask: np.ndarray) -> list[list[int]]:
    """The largest part's outer boundary as [[x, y], ...] pixel indices; [] for an empty mask."""
    parts = mask_to_polygons(mask, min_points=1)
    if not parts:
        return []
    return max(parts, key=lambda c: (cv2.contourArea(c), len(c))).tolist()


def handle(body: Any, service: "Service") -> dict[str, Any]:
    """Answer one CVAT interactor request.

    Args:
        body: the request's parsed JSON (see the module docstring).
        service: the model, and where the decoded frame is kept (CVAT sends the whole
            frame on every click: it is decoded once, and a click that keeps the crop
            runs only the decoder of a two-part model).

    Returns:
        ``{"mask": (H, W) list of 0/1 rows, "points": [[x, y], ...]}``.

    Raises:
        fairs_sdk.serve.ServeError: a malformed body, image or limit (4xx).
        fairs_sdk.InputError: points outside the image, a bad threshold (400).
    """
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    for key in ("image", "pos_points"):
        if key not in body:
            raise BadRequest(f"missing field {key!r}: CVAT sends 'image', 'pos_points' and 'neg_points'")
    if body.get("obj_bbox") is not None:
        raise BadRequest("obj_bbox given: this interactor starts from 4 extreme points, not a box "
                         "(do not declare it startswith_box)")
    positive = to_sdk_points(body["pos_points"], "pos_points")
    negative = to_sdk_points(body.get("neg_points"), "neg_points")
    if len(positive) < EXTREME_POINTS:
        raise BadRequest(f"pos_points has {len(positive)} points: the first {EXTREME_POINTS} positive points "
                         "are the object's extreme points (left-, right-, top- and bottom-most)")
    threshold = body.get("threshold")
    stored = service.images.add(decode_base64(body["image"]))
    result = service.segment(stored, positive[:EXTREME_POINTS], positive[EXTREME_POINTS:], negative, threshold)
    return {"mask": result.mask.astype(np.uint8).tolist(), "points": _outline(result.mask)}
