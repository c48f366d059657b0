"""The COCO file of ``fairs annotate``: reading it, turning it into per-image work, writing the result.

Input: a COCO instances file whose annotations carry ``extreme_points``, as in the
public COCO extreme-point annotations: four (x, y) pairs per object, nested
``[[x, y], ...]`` or flat ``[x1, y1, x2, y2, ...]``; three or more points are accepted.
Optional per annotation: ``positive_clicks`` and ``negative_clicks`` (same formats).
Points are image pixels, pixel (row i, column j) at (x, y) = (j, i).

Work: one :class:`ImageTask` per image that has annotations, in the order of the
file's ``images`` list, its objects in the order of ``annotations``. A task is plain
JSON-able data (it travels to worker processes and Ray actors).

Output (:func:`write_output`): the input file with each annotated object's
``segmentation`` (COCO compressed RLE, ``counts`` a string), ``area``, ``bbox``
([x, y, width, height] of the mask's pixels) and ``score`` set, its other keys kept in
their order. Annotations that failed are left out of ``annotations`` and listed under
the top-level key ``fairs_annotate`` (``{"failed": [{"id", "image_id", "error"}], ...}``),
so the file is a valid instance-segmentation file. The file is written to
``<output>.tmp`` and renamed, so it is never half-written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ImageTask",
    "read_coco",
    "parse_points",
    "image_tasks",
    "count_objects",
    "write_output",
    "file_sha256",
    "MIN_EXTREME_POINTS",
]

#: Fewest extreme points an object may have (the public files have 4; 3 is the paper's other case).
MIN_EXTREME_POINTS = 3

#: One image's work: {"image_id", "path", "width", "height", "objects": [{"id", "extreme_points",
#: "positive_clicks", "negative_clicks"}], "errors": [{"id", "error"}]} (see :func:`image_tasks`).
ImageTask = dict[str, Any]


def read_coco(path: str | os.PathLike) -> dict[str, Any]:
    """The COCO file at ``path`` as a dict, checked for what ``fairs annotate`` needs.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, no ``images`` / ``annotations`` lists, or image or annotation
            ids missing or repeated (results are keyed by annotation id).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a COCO file is a JSON object, got {type(data).__name__}")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: a COCO file needs a list {key!r}")
    for key, items in (("image", data["images"]), ("annotation", data["annotations"])):
        seen: set = set()
        for k, item in enumerate(items):
            ident = item.get("id") if isinstance(item, dict) else None
            if ident is None or isinstance(ident, (dict, list, float)):
                raise ValueError(f"{path}: {key} {k} has no integer or string 'id'")
            if ident in seen:
                raise ValueError(f"{path}: {key} id {ident!r} appears twice")
            seen.add(ident)
    return data


def parse_points(value: Any, name: str, min_count: int = 0) -> list[list[float]]:
    """``value`` as a list of [x, y] floats: nested pairs or a flat even-length list.

    Raises:
        ValueError: a malformed list, non-finite numbers, or fewer than ``min_count`` points.
    """
    if value is None:
        value = []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list of (x, y) pairs, got {type(value).__name__}")
    try:
        if value and all(isinstance(v, (list, tuple)) for v in value):
            if any(len(v) != 2 for v in value):
                raise ValueError
            pairs = [[float(x), float(y)] for x, y in value]
        elif len(value) % 2 == 0:
            flat = [float(v) for v in value]
            pairs = [flat[i : i + 2] for i in range(0, len(flat), 2)]
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (x, y) pairs ([[x, y], ...] or [x1, y1, x2, y2, ...]), got {value!r}") from None
    if not all(math.isfinite(c) for p in pairs for c in p):
        raise ValueError(f"{name} has a NaN or infinite coordinate: {value!r}")
    if len(pairs) < min_count:
        raise ValueError(f"{name} needs at least {min_count} points, got {len(pairs)}")
    return pairs


def _object(ann: Mapping[str, Any]) -> dict[str, Any]:
    """The clicks of one annotation, parsed; ValueError says what is wrong."""
    if "extreme_points" not in ann:
        raise ValueError("no 'extreme_points'")
    obj = {"id": ann["id"], "extreme_points": parse_points(ann["extreme_points"], "extreme_points", MIN_EXTREME_POINTS)}
    for key in ("positive_clicks", "negative_clicks"):
        obj[key] = parse_points(ann.get(key), key)
    return obj


def image_tasks(data: Mapping[str, Any], images_dir: str | os.PathLike, skip: set | frozenset = frozenset()) -> Iterator[ImageTask]:
    """One :class:`ImageTask` per image with annotations, in the file's image order.

    Annotations whose clicks cannot be parsed, or whose ``image_id`` names no image,
    become ``errors`` of their task (ids with no image: one task with ``path`` None per
    such id, after the others). Images whose id is in ``skip`` are left out.
    """
    by_image: dict[Any, list[Mapping[str, Any]]] = {}
    for ann in data["annotations"]:
        image_id = ann.get("image_id")
        key = image_id if isinstance(image_id, (int, str)) else json.dumps(image_id)  # hashable, JSON-able
        by_image.setdefault(key, []).append(ann)
    folder = Path(images_dir)
    known = set()
    for info in data["images"]:
        known.add(info["id"])
        anns = by_image.get(info["id"])
        if not anns or info["id"] in skip:
            continue
        name = info.get("file_name")
        task: ImageTask = {
            "image_id": info["id"],
            "path": str(folder / name) if isinstance(name, str) and name else None,
            "width": info.get("width"),
            "height": info.get("height"),
            "objects": [],
            "errors": [],
        }
        for ann in anns:
            try:
                task["objects"].append(_object(ann))
            except ValueError as err:
                task["errors"].append({"id": ann["id"], "error": str(err)})
        if task["path"] is None:
            task["errors"] += [{"id": o["id"], "error": f"image {info['id']!r} has no 'file_name'"} for o in task["objects"]]
            task["objects"] = []
        yield task
    for image_id, anns in by_image.items():
        if image_id not in known and image_id not in skip:
            errors = [{"id": a["id"], "error": f"no image with id {image_id!r} in the file"} for a in anns]
            yield {"image_id": image_id, "path": None, "width": None, "height": None, "objects": [], "errors": errors}


def count_objects(task: ImageTask) -> int:
    """Annotations in ``task``, good and bad."""
    return len(task["objects"]) + len(task["errors"])


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_output(
    data: Mapping[str, Any],
    records: Mapping[Any, Mapping[str, Any]],
    output: str | os.PathLike,
    info: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Write the annotated COCO file to ``output`` atomically; returns the failures.

    Args:
        data: the input file (:func:`read_coco`).
        records: by annotation id, what :func:`~fairs_sdk.annotate.image_task.annotate_image`
            gave: ``{"segmentation", "area", "bbox", "score"}`` or ``{"error"}``.
            Every annotation of ``data`` must have one.
        output: the file to write (``<output>.tmp`` first, then ``os.replace``).
        info: extra entries of the ``fairs_annotate`` section (model, threshold).

    Returns:
        ``[{"id", "image_id", "error"}]`` of the annotations left out, in file order.

    Raises:
        KeyError: an annotation without a record.
    """
    annotations, failed = [], []
    for ann in data["annotations"]:
        record = records[ann["id"]]
        if "error" in record:
            failed.append({"id": ann["id"], "image_id": ann.get("image_id"), "error": record["error"]})
            continue
        annotations.append({**ann, **{k: record[k] for k in ("segmentation", "area", "bbox", "score")}})
    out = {k: v for k, v in data.items() if k not in ("annotations", "fairs_annotate")}
    out["annotations"] = annotations
    out["fairs_annotate"] = {**(info or {}), "annotated": len(annotations), "failed": failed}
    output = Path(output)
    tmp = output.with_name(output.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(out, f, separators=(",", ":"), ensure_ascii=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return failed
