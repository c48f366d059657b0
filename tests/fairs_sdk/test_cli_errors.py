"""``fairs`` ends every expected failure with one line on stderr and exit status 2, never a traceback (issue 13, item 7)."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np
import pytest

from fairs_sdk import cli

from cli_helpers import exit_status

POINTS = ["20,30", "60,30", "40,10", "40,50"]


#: ``fairs`` in-process: its exit status, whether returned or raised by argparse.
main = partial(exit_status, cli.main)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), np.full((80, 100, 3), 90, np.uint8))
    return path


# ------------------------------------------------------------------------------ bench ranges
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["bench", "--objects", "0"], "--objects"),
        (["bench", "--repeat", "0"], "--repeat"),
        (["bench", "--size", "100000x100000"], "--size"),
        (["bench", "--size", "0x480"], "--size"),
        (["bench", "--objects", "100000"], "--objects"),
    ],
    ids=["objects-0", "repeat-0", "size-huge", "size-zero", "objects-huge"],
)
def test_bench_out_of_range_arguments(argv, needle, one_line_error) -> None:
    one_line_error(main(argv), "fairs bench", needle)


def test_unknown_command_is_one_line(one_line_error) -> None:
    one_line_error(main(["segmnt"]), "fairs", "segmnt")


# ---------------------------------------------------------------------------------- segment
def test_segment_out_naming_a_file(png, red_model, tmp_path, one_line_error) -> None:
    out = tmp_path / "taken.txt"
    out.write_text("not a folder")
    status = main(["segment", str(png), "--points", *POINTS, "--model", str(red_model), "--out", str(out)])
    one_line_error(status, "fairs", "--out", str(out))
    assert out.read_text() == "not a folder", "the file named by --out must be left alone"


def test_segment_json_naming_a_folder(png, red_model, tmp_path, one_line_error) -> None:
    status = main(["segment", str(png), "--json", str(tmp_path), "--model", str(red_model), "--out", str(tmp_path / "o")])
    one_line_error(status, "fairs", "--json", str(tmp_path))


def test_segment_missing_image(red_model, tmp_path, one_line_error) -> None:
    status = main(["segment", str(tmp_path / "absent.jpg"), "--points", *POINTS, "--model", str(red_model)])
    one_line_error(status, "fairs", "absent.jpg")


def test_segment_truncated_jpeg(red_model, tmp_path, one_line_error) -> None:
    ok, buffer = cv2.imencode(".jpg", cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (80, 100, 3), np.uint8), (5, 5), 0))
    data = buffer.tobytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    status = main(["segment", str(path), "--points", *POINTS, "--model", str(red_model), "--out", str(out)])
    one_line_error(status, "fairs", str(path), "truncated")
    assert not out.exists() or not any(out.iterdir()), "no mask may be written for a truncated image"


@pytest.mark.parametrize("kind", ["int64", "float16"])
def test_segment_with_a_model_whose_input_is_not_float32(kind, typed_input_models, png, tmp_path, one_line_error) -> None:
    model = typed_input_models[kind]
    status = main(["segment", str(png), "--points", *POINTS, "--model", str(model), "--out", str(tmp_path / "o")])
    one_line_error(status, "fairs", str(model), kind)


def test_bench_with_an_int64_input_model(typed_input_models, one_line_error) -> None:
    model = typed_input_models["int64"]
    status = main(["bench", "--model", str(model), "--size", "64x64", "--repeat", "1", "--objects", "1"])
    one_line_error(status, "fairs", "int64")


def test_bench_image_naming_a_folder(red_model, tmp_path, one_line_error) -> None:
    status = main(["bench", "--model", str(red_model), "--image", str(tmp_path), "--repeat", "1", "--objects", "1"])
    one_line_error(status, "fairs", str(tmp_path))


def test_segment_with_a_model_whose_output_is_not_probabilities(png, tmp_path, one_line_error) -> None:
    from model_files import make_echo_model

    model = make_echo_model(tmp_path / "nan.onnx", channel="sfg", scale=float("nan"))
    status = main(["segment", str(png), "--points", *POINTS, "--model", str(model), "--out", str(tmp_path / "o")])
    one_line_error(status, "fairs", str(model))


def test_segment_without_onnx_runtime_names_the_extra(png, monkeypatch, one_line_error) -> None:
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    one_line_error(main(["segment", str(png), "--points", *POINTS]), "fairs", "fairs-sdk[cpu]")
