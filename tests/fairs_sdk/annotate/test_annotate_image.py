"""Tests of the per-image work of ``fairs annotate`` (fairs_sdk.annotate.image_task)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fairs_sdk.annotate.image_task import annotate_image, run_task
from fairs_sdk.result import mask_to_rle

from annotate_scene import SCENES, rect_points


def _image(name: str) -> np.ndarray:
    w, h, rects = SCENES[name]
    image = np.zeros((h, w, 3), np.uint8)
    for x0, y0, x1, y1 in rects:
        image[y0:y1, x0:x1] = (255, 0, 0)
    return image


def _objects(name: str) -> list[dict]:
    return [{"id": k, "extreme_points": rect_points(r)} for k, r in enumerate(SCENES[name][2])]


def test_records_are_segment_many_results_in_coco_form(red_segmenter):
    image, objects = _image("b.png"), _objects("b.png")
    results = red_segmenter.segment_many(image, [{"extreme_points": o["extreme_points"]} for o in objects])
    records = annotate_image(red_segmenter, image, objects)
    assert [r["id"] for r in records] == [0, 1], "one record per annotation, in order"
    for record, result in zip(records, results):
        x0, y0, x1, y1 = result.bbox()
        assert record["segmentation"] == mask_to_rle(result.mask), "segmentation is not the mask's RLE"
        assert record["area"] == int(result.mask.sum())
        assert record["bbox"] == [x0, y0, x1 - x0, y1 - y0], f"bbox {record['bbox']} is not COCO [x, y, w, h]"
        expected = round(float(result.probabilities[result.mask].mean()), 4)
        assert record["score"] == expected, f"score {record['score']} is not the mean probability in the mask"


def test_rle_decodes_with_pycocotools_to_the_red_rectangle(red_segmenter):
    mask_api = pytest.importorskip("pycocotools.mask")
    (record,) = annotate_image(red_segmenter, _image("a.png"), _objects("a.png"))
    rle = record["segmentation"]
    decoded = mask_api.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
    x0, y0, x1, y1 = SCENES["a.png"][2][0]
    assert decoded.shape == (240, 320), f"mask shape {decoded.shape}"
    assert decoded[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3].all() and not decoded[:, : x0 - 3].any(), "not the red object"
    assert mask_api.area(rle) == record["area"] and list(mask_api.toBbox(rle)) == record["bbox"], \
        "area / bbox differ from pycocotools' for the same RLE"


def test_a_point_outside_the_image_fails_only_its_object(red_segmenter):
    image, objects = _image("b.png"), _objects("b.png")
    objects[0]["extreme_points"] = [[5, 5], [250, 20], [30, 60]]  # x = 250 > 200 - 0.5
    records = annotate_image(red_segmenter, image, objects)
    assert "error" in records[0] and "outside the 200 x 160 image" in records[0]["error"], records[0]
    assert records[0]["id"] == 0
    assert "segmentation" in records[1], "the other object of the image must still be annotated"


def test_clicks_are_given_per_object(click_segmenters):
    seg = click_segmenters["positive_clicks"]  # probabilities = the positive-click map the model saw
    image = np.zeros((120, 160, 3), np.uint8)
    points = [[30, 60], [130, 60], [80, 20], [80, 100]]
    objects = [{"id": "with", "extreme_points": points, "positive_clicks": [[80, 60]]},
               {"id": "without", "extreme_points": points}]
    records = annotate_image(seg, image, objects)
    assert records[0]["area"] > 0, "object 0's positive click did not reach the model"
    assert records[1]["area"] == 0, "object 1 has no click: another object's click leaked into it"
    assert records[1]["bbox"] == [0, 0, 0, 0] and records[1]["score"] == 0.0, "empty mask: zero box and score"


def _task(path, objects, width=None, height=None):
    return {"image_id": 1, "path": str(path), "width": width, "height": height, "objects": objects,
            "errors": [{"id": 99, "error": "no 'extreme_points'"}]}


def test_run_task_fails_every_object_of_a_missing_image(red_segmenter, tmp_path):
    records = run_task(red_segmenter, _task(tmp_path / "gone.png", _objects("b.png")))
    assert [r["id"] for r in records] == [99, 0, 1]
    assert all("image not found" in r["error"] for r in records[1:]), records


def test_run_task_fails_an_unreadable_image(red_segmenter, tmp_path):
    path = tmp_path / "junk.png"
    path.write_bytes(b"\x89PNG not really")
    records = run_task(red_segmenter, _task(path, _objects("b.png")))
    assert all("cannot decode" in r["error"] for r in records[1:]), records


def test_run_task_fails_a_truncated_jpeg(red_segmenter, tmp_path):
    path = tmp_path / "cut.jpg"
    ok, data = cv2.imencode(".jpg", _image("b.png"))
    path.write_bytes(data.tobytes()[: len(data) // 2])
    records = run_task(red_segmenter, _task(path, _objects("b.png")))
    assert all("truncated" in r["error"] for r in records[1:]), f"a half JPEG must not be segmented: {records}"


def test_run_task_fails_an_image_of_another_size_than_declared(red_segmenter, tmp_path):
    path = tmp_path / "b.png"
    cv2.imwrite(str(path), _image("b.png"))
    records = run_task(red_segmenter, _task(path, _objects("b.png"), width=400, height=160))
    assert all("is 200 x 160 pixels, the COCO file says 400 x 160" in r["error"] for r in records[1:]), records
    ok = run_task(red_segmenter, _task(path, _objects("b.png"), width=200, height=160))
    assert all("segmentation" in r for r in ok[1:]), "the declared size matches: objects must be annotated"
