"""The work on one image, shared by every engine: read it, segment its objects, make COCO records.

A record is what the output file gets for one annotation: on success
``{"id", "segmentation", "area", "bbox", "score"}``, else ``{"id", "error"}``.

- ``segmentation``: COCO compressed RLE of the mask, ``{"size": [H, W], "counts": str}``
  (:meth:`fairs_sdk.Result.to_rle`; ``pycocotools.mask.decode`` reads it).
- ``area``: object pixels of the mask (int).
- ``bbox``: [x, y, width, height] of the mask's pixels, ints (COCO's box; [0, 0, 0, 0]
  for an empty mask).
- ``score``: the mean of the model's probabilities over the mask's pixels, rounded to
  4 decimals, in [threshold, 1] (0.0 for an empty mask): how sure the model is of
  the pixels it calls object. Low scores are the masks worth a look.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fairs_sdk.annotate.coco_io import ImageTask
from fairs_sdk.imageio import ImageReadError, read_image
from fairs_sdk.validation import InputError, check_points

__all__ = ["annotate_image", "run_task", "read_image", "result_record", "ImageReadError"]

_CLICK_KEYS = ("extreme_points", "positive_clicks", "negative_clicks")


def result_record(ann_id: Any, result) -> dict[str, Any]:
    """The record of one :class:`fairs_sdk.Result` (see the module docstring)."""
    box = result.bbox()
    area = result.area
    score = float(result.probabilities[result.mask].mean()) if area else 0.0
    return {
        "id": ann_id,
        "segmentation": result.to_rle(),
        "area": area,
        "bbox": [0, 0, 0, 0] if box is None else [box[0], box[1], box[2] - box[0], box[3] - box[1]],
        "score": round(score, 4),
    }


def _check(obj: Mapping[str, Any], shape: tuple[int, ...]) -> None:
    """InputError if a point of ``obj`` lies outside an image of ``shape`` or the extreme points coincide."""
    for key in _CLICK_KEYS:
        check_points(obj.get(key, ()), key, shape, min_count=2 if key == "extreme_points" else 0,
                     distinct=key == "extreme_points")


def annotate_image(
    segmenter, image: np.ndarray, annotations: Sequence[Mapping[str, Any]], threshold: float | None = None
) -> list[dict[str, Any]]:
    """Segment the objects of one image with one :meth:`~fairs_sdk.Segmenter.segment_many` call.

    Args:
        segmenter: a :class:`fairs_sdk.Segmenter` (only its public methods are used).
        image: (H, W, 3) uint8 RGB (gray and RGBA as the Segmenter accepts).
        annotations: one mapping per object: ``"id"``, ``"extreme_points"`` ((n, 2) (x, y),
            image pixels) and optionally ``"positive_clicks"`` / ``"negative_clicks"``.
        threshold: mask threshold; ``None`` for the model's own.

    Returns:
        One record per annotation, in order (module docstring). An object whose points
        are outside the image (or all one point) gets an error record; the others run.
    """
    records: list[dict[str, Any] | None] = [None] * len(annotations)
    good: list[int] = []
    for k, ann in enumerate(annotations):
        try:
            _check(ann, image.shape)
            good.append(k)
        except InputError as err:
            records[k] = {"id": ann["id"], "error": str(err)}
    objects = [{key: annotations[k].get(key, ()) for key in _CLICK_KEYS} for k in good]
    try:
        results = segmenter.segment_many(image, objects, threshold=threshold)
    except InputError:  # not expected after the checks above; fall back to one object at a time
        results = []
        for k, obj in zip(good, objects):
            try:
                results.append(segmenter.segment(image, **obj, threshold=threshold))
            except InputError as err:
                results.append(err)
    for k, result in zip(good, results):
        ann_id = annotations[k]["id"]
        records[k] = {"id": ann_id, "error": str(result)} if isinstance(result, Exception) else result_record(ann_id, result)
    return records  # type: ignore[return-value]


def run_task(segmenter, task: ImageTask, threshold: float | None = None) -> list[dict[str, Any]]:
    """All records of one :class:`~fairs_sdk.annotate.coco_io.ImageTask`: its parse errors first, then its objects.

    A missing or unreadable image, or one whose size differs from the file's
    ``width`` / ``height``, fails each of its objects with the reason.
    """
    records = [dict(e) for e in task["errors"]]
    if not task["objects"]:
        return records
    try:
        image = read_image(task["path"])
        h, w = image.shape[:2]
        declared = (task.get("width"), task.get("height"))
        if None not in declared and (w, h) != tuple(declared):
            raise ImageReadError(
                f"{task['path']} is {w} x {h} pixels, the COCO file says {declared[0]} x {declared[1]}"
            )
    except ImageReadError as err:
        return records + [{"id": o["id"], "error": str(err)} for o in task["objects"]]
    return records + annotate_image(segmenter, image, task["objects"], threshold)
