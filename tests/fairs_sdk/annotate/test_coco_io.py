"""Tests of the COCO side of ``fairs annotate`` (fairs_sdk.annotate.coco_io): no model involved."""

from __future__ import annotations

import json

import pytest

from fairs_sdk.annotate import coco_io
from fairs_sdk.annotate.coco_io import image_tasks, parse_points, read_coco, write_output


def test_parse_points_reads_nested_and_flat_pairs():
    nested = parse_points([[1, 2], [3.5, 4], [5, 6]], "p")
    flat = parse_points([1, 2, 3.5, 4, 5, 6], "p")
    assert nested == flat == [[1.0, 2.0], [3.5, 4.0], [5.0, 6.0]], f"nested {nested}, flat {flat}"


@pytest.mark.parametrize("value", [[1, 2, 3], [[1, 2, 3]], [[1, float("nan")]], "1,2", [[1, 2], 3, 4]])
def test_parse_points_rejects_malformed_lists(value):
    with pytest.raises(ValueError, match="p "):
        parse_points(value, "p")


def test_parse_points_needs_min_count():
    with pytest.raises(ValueError, match="at least 3 points, got 2"):
        parse_points([[0, 0], [5, 5]], "extreme_points", 3)


def test_read_coco_rejects_repeated_annotation_ids(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(json.dumps({"images": [{"id": 1}], "annotations": [{"id": 7}, {"id": 7}]}))
    with pytest.raises(ValueError, match="annotation id 7 appears twice"):
        read_coco(path)


def test_read_coco_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="COCO file not found"):
        read_coco(tmp_path / "nope.json")


def test_image_tasks_follow_the_image_list_and_group_objects(tmp_path):
    data = {
        "images": [{"id": 2, "file_name": "two.jpg"}, {"id": 1, "file_name": "one.jpg"}, {"id": 3, "file_name": "x.jpg"}],
        "annotations": [
            {"id": 11, "image_id": 1, "extreme_points": [[0, 0], [9, 0], [5, 9]]},
            {"id": 21, "image_id": 2, "extreme_points": [0, 0, 9, 0, 5, 9, 5, 5], "negative_clicks": [[4, 4]]},
            {"id": 12, "image_id": 1, "extreme_points": [[1, 1], [8, 1], [4, 8]], "positive_clicks": [3, 3]},
        ],
    }
    tasks = list(image_tasks(data, tmp_path))
    assert [t["image_id"] for t in tasks] == [2, 1], "tasks must follow the images list; image 3 has no objects"
    assert [o["id"] for o in tasks[1]["objects"]] == [11, 12], "objects of an image must keep the file's order"
    assert tasks[0]["path"] == str(tmp_path / "two.jpg")
    assert tasks[0]["objects"][0]["negative_clicks"] == [[4.0, 4.0]]
    assert tasks[1]["objects"][1]["positive_clicks"] == [[3.0, 3.0]], "flat click lists must be read as pairs"
    assert list(image_tasks(data, tmp_path, skip={2})) == tasks[1:], "skipped image ids must be left out"


def test_image_tasks_turn_bad_annotations_into_errors_with_their_ids(tmp_path):
    data = {
        "images": [{"id": 1, "file_name": "one.jpg"}],
        "annotations": [
            {"id": 5, "image_id": 1},
            {"id": 6, "image_id": 1, "extreme_points": [[0, 0], [4, 4]]},
            {"id": 7, "image_id": 99, "extreme_points": [[0, 0], [9, 0], [5, 9]]},
            {"id": 8, "image_id": 1, "extreme_points": [[0, 0], [9, 0], [5, 9]]},
        ],
    }
    tasks = list(image_tasks(data, tmp_path))
    errors = {e["id"]: e["error"] for t in tasks for e in t["errors"]}
    assert set(errors) == {5, 6, 7}, f"expected errors for 5, 6, 7, got {errors}"
    assert "no 'extreme_points'" in errors[5] and "at least 3" in errors[6] and "no image with id 99" in errors[7]
    assert [o["id"] for o in tasks[0]["objects"]] == [8], "the good annotation must still be a task object"


def _record(ann_id, area):
    return {"id": ann_id, "segmentation": {"size": [2, 2], "counts": "04"}, "area": area, "bbox": [0, 0, 2, 2],
            "score": 0.9}


def test_write_output_fills_fields_in_order_and_lists_failures(tmp_path):
    data = {"info": {"v": 1}, "images": [{"id": 1}],
            "annotations": [{"id": 3, "image_id": 1, "extreme_points": [], "segmentation": [[0, 0]]},
                            {"id": 4, "image_id": 1}]}
    out = tmp_path / "out.json"
    failed = write_output(data, {3: _record(3, 4), 4: {"id": 4, "error": "bad"}}, out, {"model": "m"})
    written = json.loads(out.read_text())
    assert failed == [{"id": 4, "image_id": 1, "error": "bad"}]
    (ann,) = written["annotations"]
    assert list(ann) == ["id", "image_id", "extreme_points", "segmentation", "area", "bbox", "score"], \
        f"input keys must keep their order, new ones follow: {list(ann)}"
    assert ann["segmentation"] == {"size": [2, 2], "counts": "04"} and ann["area"] == 4
    assert written["fairs_annotate"] == {"model": "m", "annotated": 1, "failed": failed}
    assert written["info"] == {"v": 1} and list(written)[:3] == ["info", "images", "annotations"]


def test_write_output_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    out = tmp_path / "out.json"
    out.write_text("previous")
    data = {"images": [], "annotations": [{"id": 1, "image_id": 1}]}

    def broken_dump(obj, f, **kwargs):
        f.write('{"images": [')
        raise OSError("disk full")

    monkeypatch.setattr(coco_io.json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        write_output(data, {1: _record(1, 4)}, out)
    assert out.read_text() == "previous", "a failed write must leave the old output untouched"
    assert not (tmp_path / "out.json.tmp").exists(), "the temporary file must be removed after a failed write"
