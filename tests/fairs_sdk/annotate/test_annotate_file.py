"""Tests of ``fairs annotate`` on whole files: output, failures and exit status, journal and resume."""

from __future__ import annotations

import json

import pytest

from fairs_sdk.annotate import SegmenterOptions, annotate_file, image_task
from fairs_sdk.cli import main


def _run(scene, red_model, out, **kwargs):
    coco, images, _ = scene
    return annotate_file(coco, images, out, SegmenterOptions(model=str(red_model)), progress=False, **kwargs)


def test_cli_writes_every_mask_and_exits_0(scene, red_model, tmp_path, capsys):
    coco, images, data = scene
    out = tmp_path / "out.json"
    status = main(["annotate", str(coco), "--images", str(images), "-o", str(out), "--model", str(red_model),
                   "--no-progress"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    written = json.loads(out.read_text())
    assert [a["id"] for a in written["annotations"]] == [a["id"] for a in data["annotations"]]
    for ann in written["annotations"]:
        assert ann["area"] > 0 and ann["segmentation"]["counts"] and len(ann["bbox"]) == 4, ann
    assert written["images"] == data["images"] and written["categories"] == data["categories"]
    assert "4 of 4 annotations" in captured.out and "0 failed" in captured.out, captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "scene"], \
        "the journal and the temporary file must be gone after a finished run"


def test_bad_annotations_are_reported_by_id_and_the_rest_go_on(scene, red_model, tmp_path, capsys):
    coco, images, data = scene
    data["images"].append({"id": 40, "file_name": "missing.png", "width": 10, "height": 10})
    data["images"].append({"id": 50, "file_name": "junk.png"})
    (images / "junk.png").write_bytes(b"not an image at all")
    data["annotations"] += [
        {"id": 101, "image_id": 10},  # no points
        {"id": 102, "image_id": 10, "extreme_points": [[1, 1], [400, 2], [3, 30]]},  # outside the 320 x 240 image
        {"id": 103, "image_id": 40, "extreme_points": [[1, 1], [8, 2], [3, 8]]},  # missing image file
        {"id": 104, "image_id": 50, "extreme_points": [[1, 1], [8, 2], [3, 8]]},  # unreadable image
    ]
    coco.write_text(json.dumps(data))
    out = tmp_path / "out.json"
    status = main(["annotate", str(coco), "--images", str(images), "-o", str(out), "--model", str(red_model),
                   "--no-progress"])
    err = capsys.readouterr().err
    assert status == 1, "some annotations failed: the exit status must say so"
    for ann_id, why in ((101, "no 'extreme_points'"), (102, "outside"), (103, "not found"), (104, "cannot decode")):
        assert any(f"annotation {ann_id} " in line and why in line for line in err.splitlines()), \
            f"annotation {ann_id} ({why}) not reported: {err}"
    written = json.loads(out.read_text())
    assert [a["id"] for a in written["annotations"]] == [1, 2, 3, 4], "the good annotations must be written"
    assert [f["id"] for f in written["fairs_annotate"]["failed"]] == [101, 102, 103, 104]


def test_unusable_input_file_exits_2(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    status = main(["annotate", str(bad), "--images", str(tmp_path / "images"), "-o", str(tmp_path / "o.json")])
    assert status == 2 and "is not valid JSON" in capsys.readouterr().err


def test_the_output_may_not_overwrite_the_input(scene, red_model, capsys):
    coco, images, _ = scene
    status = main(["annotate", str(coco), "--images", str(images), "-o", str(coco), "--model", str(red_model)])
    assert status == 2 and "is the input file" in capsys.readouterr().err


def _interrupt_after(monkeypatch, images: int) -> list:
    """Make reading the (images + 1)-th image raise KeyboardInterrupt; returns the list of paths read."""
    read = image_task.read_image
    calls = []

    def reading(path):
        calls.append(path)
        if len(calls) > images:
            raise KeyboardInterrupt
        return read(path)

    monkeypatch.setattr(image_task, "read_image", reading)
    return calls


def test_resume_skips_finished_images_and_writes_the_same_bytes(scene, red_model, tmp_path, monkeypatch):
    reference = tmp_path / "reference.json"
    _run(scene, red_model, reference)
    out = tmp_path / "out.json"
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        _run(scene, red_model, out)
    assert not out.exists(), "an interrupted run must not write the output"
    journal = tmp_path / "out.json.journal"
    assert len(journal.read_text().splitlines()) == 2, "header + the one finished image expected in the journal"
    monkeypatch.undo()
    calls = _interrupt_after(monkeypatch, 99)
    summary = _run(scene, red_model, out, resume=True)
    assert (summary.resumed_images, summary.computed_images) == (1, 2), \
        f"resume took {summary.resumed_images} images from the journal and computed {summary.computed_images}"
    assert len(calls) == 2, f"resume read {len(calls)} images; the journaled one must not be redone"
    assert out.read_bytes() == reference.read_bytes(), "resumed output differs from an uninterrupted run"
    assert not journal.exists()


def test_a_torn_last_journal_line_is_dropped_on_resume(scene, red_model, tmp_path, monkeypatch):
    reference = tmp_path / "reference.json"
    _run(scene, red_model, reference)
    out = tmp_path / "out.json"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        _run(scene, red_model, out)
    monkeypatch.undo()
    journal = tmp_path / "out.json.journal"
    with open(journal, "ab") as f:
        f.write(b'{"image_id": 30, "records": [{"id": 4, "segm')  # what a kill mid-write leaves
    summary = _run(scene, red_model, out, resume=True)
    assert (summary.resumed_images, summary.computed_images) == (2, 1)
    assert out.read_bytes() == reference.read_bytes(), "output after a torn journal differs from a clean run"


def test_a_leftover_journal_needs_resume(scene, red_model, tmp_path, monkeypatch):
    out = tmp_path / "out.json"
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        _run(scene, red_model, out)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="pass --resume"):
        _run(scene, red_model, out)


def test_resume_refuses_the_journal_of_another_input(scene, red_model, tmp_path, monkeypatch):
    coco, images, data = scene
    out = tmp_path / "out.json"
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        _run(scene, red_model, out)
    monkeypatch.undo()
    data["annotations"][0]["extreme_points"][0][0] += 1
    coco.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="journal of another run"):
        _run(scene, red_model, out, resume=True)


def test_cli_reports_an_interrupt_with_status_130(scene, red_model, tmp_path, monkeypatch, capsys):
    coco, images, _ = scene
    _interrupt_after(monkeypatch, 1)
    status = main(["annotate", str(coco), "--images", str(images), "-o", str(tmp_path / "o.json"),
                   "--model", str(red_model), "--no-progress"])
    assert status == 130 and "--resume" in capsys.readouterr().err


def test_two_worker_processes_write_the_same_bytes_as_one(scene, red_model, tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    _run(scene, red_model, one, workers=1)
    summary = _run(scene, red_model, two, workers=2)
    assert summary.computed_objects == 4
    assert two.read_bytes() == one.read_bytes(), "2 worker processes wrote other bytes than 1 in-process worker"
