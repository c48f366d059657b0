"""Tests of the ``fairs`` command line (fairs_sdk.cli)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import cv2
import numpy as np
import pytest

from fairs_sdk.cli import build_parser, main

from model_files import DATA

RECT = (100, 50, 200, 130)
POINTS = ["100,90", "199,90", "150,50", "150,129"]


@pytest.fixture
def red_png(tmp_path):
    """A 320 x 240 PNG, black with a red rectangle at RECT."""
    image = np.zeros((240, 320, 3), np.uint8)
    x0, y0, x1, y1 = RECT
    image[y0:y1, x0:x1] = (255, 0, 0)
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def test_segment_writes_mask_overlay_and_json(red_png, red_model, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["segment", str(red_png), "--points", *POINTS, "--model", str(red_model), "--out", str(out)])
    assert status == 0, capsys.readouterr().err
    mask = cv2.imread(str(out / "scene_mask.png"), cv2.IMREAD_UNCHANGED)
    overlay = cv2.imread(str(out / "scene_overlay.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (240, 320) and set(np.unique(mask)) <= {0, 255}, "mask PNG must be 0/255, image size"
    assert overlay.shape == (240, 320, 3), f"overlay shape {overlay.shape}"
    x0, y0, x1, y1 = RECT
    assert mask[y0 + 5 : y1 - 5, x0 + 5 : x1 - 5].all() and not mask[:, : x0 - 5].any(), "mask is not the red object"
    report = json.loads((out / "scene.json").read_text())
    (obj,) = report["objects"]
    assert obj["crop_box"] == [50, 0, 250, 180], f"crop box {obj['crop_box']}"
    assert obj["area"] == int((mask > 0).sum()), "JSON area differs from the mask PNG"


def test_segment_json_rle_decodes_to_the_mask_png(red_png, red_model, tmp_path):
    mask_api = pytest.importorskip("pycocotools.mask")
    out = tmp_path / "out"
    assert main(["segment", str(red_png), "--points", *POINTS, "--model", str(red_model), "--out", str(out)]) == 0
    rle = json.loads((out / "scene.json").read_text())["objects"][0]["rle"]
    decoded = mask_api.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    png = cv2.imread(str(out / "scene_mask.png"), cv2.IMREAD_UNCHANGED) > 0
    assert np.array_equal(decoded.astype(bool), png), "RLE in the JSON does not decode to the mask PNG"


def test_segment_from_json_file_with_several_objects(red_png, red_model, tmp_path):
    clicks = tmp_path / "clicks.json"
    clicks.write_text(json.dumps({"objects": [
        {"extreme_points": [[100, 90], [199, 90], [150, 50], [150, 129]], "negative_clicks": [[20, 20]]},
        {"extreme_points": [[10, 10], [60, 40]], "positive_clicks": [[30, 30]]},
    ]}))
    out = tmp_path / "out"
    assert main(["segment", str(red_png), "--json", str(clicks), "--model", str(red_model), "--out", str(out)]) == 0
    report = json.loads((out / "scene.json").read_text())
    assert len(report["objects"]) == 2, "one JSON entry per object expected"
    assert (out / "scene_mask_0.png").is_file() and (out / "scene_mask_1.png").is_file(), "one mask PNG per object"
    assert report["objects"][0]["negative_clicks"] == [[20.0, 20.0]], "clicks not echoed in the JSON"


def test_segment_with_clicks_on_the_command_line(red_png, sfg_segmenter, tmp_path):
    out = tmp_path / "out"
    args = ["segment", str(red_png), "--points", *POINTS, "--positive", "250,200", "--negative", "20,20",
            "--model", str(sfg_segmenter.model_path), "--out", str(out)]
    assert main(args) == 0
    obj = json.loads((out / "scene.json").read_text())["objects"][0]
    assert obj["positive_clicks"] == [[250.0, 200.0]] and obj["negative_clicks"] == [[20.0, 20.0]]
    assert obj["crop_box"] == [50, 0, 301, 251], "positive click did not enlarge the crop box"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--points", "100,90"], "extreme_points needs at least 2 points"),
        (["--points", "100,90", "900,90"], "outside the 320 x 240 image"),
        ([], "no clicks"),
    ],
    ids=["one-point", "outside", "no-clicks"],
)
def test_bad_clicks_exit_2_with_message(red_png, red_model, tmp_path, capsys, args, message):
    status = main(["segment", str(red_png), *args, "--model", str(red_model), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and message in err, f"status {status}, stderr {err!r}"


def test_malformed_point_is_an_argument_error(red_png, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["segment", str(red_png), "--points", "100;90", "5,5"])
    assert exc.value.code == 2 and "X,Y" in capsys.readouterr().err


def test_missing_model_exits_2(red_png, tmp_path, capsys):
    status = main(["segment", str(red_png), "--points", *POINTS, "--model", str(tmp_path / "none.onnx")])
    err = capsys.readouterr().err
    assert status == 2 and "model file not found" in err, err


def test_missing_image_exits_2(red_model, tmp_path, capsys):
    status = main(["segment", str(tmp_path / "none.jpg"), "--points", *POINTS, "--model", str(red_model)])
    err = capsys.readouterr().err
    assert status == 2 and "image not found" in err, err


def test_clicks_file_with_unknown_key_exits_2(red_png, red_model, tmp_path, capsys):
    clicks = tmp_path / "clicks.json"
    clicks.write_text(json.dumps({"extreme_points": [[1, 1], [9, 9]], "clicks": [[2, 2]]}))
    status = main(["segment", str(red_png), "--json", str(clicks), "--model", str(red_model)])
    err = capsys.readouterr().err
    assert status == 2 and "unknown keys ['clicks']" in err, err


def test_bench_prints_every_stage(red_model, capsys):
    status = main(["bench", "--model", str(red_model), "--size", "320x240", "--repeat", "2", "--objects", "3"])
    out = capsys.readouterr().out
    assert status == 0
    for stage in ("crop + resize", "guidance (sfg)", "engine", "paste back", "segment (end to end)",
                  "segment_many, 3 objects"):
        assert stage in out, f"bench output lacks {stage!r}:\n{out}"


def test_bench_default_image_is_the_readme_size():
    assert build_parser().parse_args(["bench"]).size == (640, 480), "the README quotes fairs bench on 640 x 480"


def test_bench_times_the_guidance_a_click_model_declares(click_segmenters, capsys):
    model = click_segmenters["sfg"].model_path
    assert main(["bench", "--model", str(model), "--size", "320x240", "--repeat", "1", "--objects", "2"]) == 0
    out = capsys.readouterr().out
    assert "guidance (sfg, positive_clicks, negative_clicks)" in out, f"bench does not time the model's planes:\n{out}"
    assert "channels rgb, sfg, positive_clicks, negative_clicks" in out, out


def test_bench_reports_per_click_latency_of_a_two_part_model(tiny_bundle, capsys):
    assert main(["bench", "--model", str(tiny_bundle.combined), "--size", "320x240", "--repeat", "2",
                 "--objects", "2"]) == 0
    out = capsys.readouterr().out
    assert "two-part model: image encoder once per crop, decoder per click" in out, out
    lines = [line for line in out.splitlines() if "first segment of an object" in line or "each corrective click" in line]
    assert len(lines) == 2 and "x faster than the first" in lines[1], f"per-click figures missing:\n{out}"


def test_bench_per_click_on_a_one_part_model_says_so(red_model, capsys):
    assert main(["bench", "--model", str(red_model), "--size", "320x240", "--repeat", "1", "--objects", "1"]) == 0
    out = capsys.readouterr().out
    assert "one model: each click runs all of it" in out and "each corrective click after it" in out, out


def test_click_latency_times_a_click_that_runs_only_the_decoder(tiny_bundle, monkeypatch):
    from fairs_sdk import Segmenter
    from fairs_sdk.cli import bench_objects, click_latency

    seg = Segmenter(tiny_bundle.combined, warmup=False)
    runs = []
    for name in ("backend", "image_encoder", "decoder"):
        part = getattr(seg, name)
        monkeypatch.setattr(part, "run", lambda *a, _run=part.run, _name=name: runs.append(_name) or _run(*a))
    image = np.zeros((240, 320, 3), np.uint8)
    first, click = click_latency(seg, image, bench_objects(320, 240, 1)[0], repeat=3)
    assert first > 0 and click > 0
    # warm-up (session + click) and 3 timed pairs: 4 encoder runs, 8 decoder runs, no whole-model run
    assert runs.count("image_encoder") == 4 and runs.count("decoder") == 8 and "backend" not in runs, runs


def test_fairs_command_is_registered():
    try:
        scripts = metadata.entry_points(group="console_scripts")
    except Exception as err:  # pragma: no cover - metadata unavailable
        pytest.skip(f"no package metadata: {err}")
    fairs = [ep for ep in scripts if ep.name == "fairs"]
    assert fairs and fairs[0].value == "fairs_sdk.cli:main", "console script 'fairs' not installed (pip install -e .)"


def test_segment_a_real_photo_in_a_subprocess(tiny_model, tmp_path):
    photo = DATA / "dev" / "davis345" / "images" / "000.jpg"
    if not photo.is_file():
        pytest.skip(f"real images not found at {photo}")
    cmd = [sys.executable, "-m", "fairs_sdk.cli", "segment", str(photo), "--points", "120,200", "420,230",
           "260,90", "280,400", "--model", str(tiny_model), "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    mask = cv2.imread(str(tmp_path / "000_mask.png"), cv2.IMREAD_UNCHANGED)
    assert mask is not None and mask.shape == (480, 854), "mask PNG missing or not the photo's size"
