"""``fairs`` ends every expected failure with one line on stderr and exit status 2, never a traceback (issue 13, item 7)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fairs_sdk import cli

from model_files import TINY_SPEC, fairs_props

POINTS = ["20,30", "60,30", "40,10", "40,50"]


def main(argv: list[str]) -> int:
    """``fairs`` in-process: its exit status, whether returned or raised by argparse (``SystemExit``)."""
    try:
        return cli.main(argv)
    except SystemExit as exit:
        return exit.code


def assert_one_line_error(status: int, capsys, prog: str = "fairs", *needles: str) -> str:
    """The one stderr line of a failed command, after checking exit 2, one line, the prog name, no traceback."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert status == 2, f"exit status {status}, expected 2; stderr: {err!r}"
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}: {err!r}"
    assert lines[0].startswith(prog), f"the line must start with {prog!r}: {lines[0]!r}"
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], f"the message must mention {needle!r}: {lines[0]!r}"
    return lines[0]


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "scene.png"
    cv2.imwrite(str(path), np.full((80, 100, 3), 90, np.uint8))
    return path


def input_typed_model(path, elem_type: int):
    """A FAIRS-metadata ONNX model whose input 'input' has element type ``elem_type`` (cast to float inside)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    s = TINY_SPEC.input_size
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["input"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("ReduceMax", ["as_float"], ["probabilities"], axes=[1], keepdims=1),
        ],
        "typed",
        [helper.make_tensor_value_info("input", elem_type, ["N", TINY_SPEC.channel_count, s, s])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 1, s, s])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, fairs_props(TINY_SPEC))
    onnx.save(model, str(path))
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
def test_bench_out_of_range_arguments(argv, needle, capsys) -> None:
    assert_one_line_error(main(argv), capsys, "fairs bench", needle)


def test_unknown_command_is_one_line(capsys) -> None:
    assert_one_line_error(main(["segmnt"]), capsys, "fairs", "segmnt")


# ---------------------------------------------------------------------------------- segment
def test_segment_out_naming_a_file(png, red_model, tmp_path, capsys) -> None:
    out = tmp_path / "taken.txt"
    out.write_text("not a folder")
    status = main(["segment", str(png), "--points", *POINTS, "--model", str(red_model), "--out", str(out)])
    assert_one_line_error(status, capsys, "fairs", "--out", str(out))
    assert out.read_text() == "not a folder", "the file named by --out must be left alone"


def test_segment_json_naming_a_folder(png, red_model, tmp_path, capsys) -> None:
    status = main(["segment", str(png), "--json", str(tmp_path), "--model", str(red_model), "--out", str(tmp_path / "o")])
    assert_one_line_error(status, capsys, "fairs", "--json", str(tmp_path))


def test_segment_missing_image(red_model, tmp_path, capsys) -> None:
    status = main(["segment", str(tmp_path / "absent.jpg"), "--points", *POINTS, "--model", str(red_model)])
    assert_one_line_error(status, capsys, "fairs", "absent.jpg")


def test_segment_truncated_jpeg(red_model, tmp_path, capsys) -> None:
    ok, buffer = cv2.imencode(".jpg", cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (80, 100, 3), np.uint8), (5, 5), 0))
    data = buffer.tobytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    status = main(["segment", str(path), "--points", *POINTS, "--model", str(red_model), "--out", str(out)])
    assert_one_line_error(status, capsys, "fairs", str(path), "truncated")
    assert not out.exists() or not any(out.iterdir()), "no mask may be written for a truncated image"


@pytest.mark.parametrize("kind", ["INT64", "FLOAT16"])
def test_segment_with_a_model_whose_input_is_not_float32(kind, png, tmp_path, capsys) -> None:
    from onnx import TensorProto

    model = input_typed_model(tmp_path / f"{kind}.onnx", getattr(TensorProto, kind))
    status = main(["segment", str(png), "--points", *POINTS, "--model", str(model), "--out", str(tmp_path / "o")])
    assert_one_line_error(status, capsys, "fairs", str(model), kind.lower())


def test_bench_with_an_int64_input_model(tmp_path, capsys) -> None:
    from onnx import TensorProto

    model = input_typed_model(tmp_path / "int64.onnx", TensorProto.INT64)
    status = main(["bench", "--model", str(model), "--size", "64x64", "--repeat", "1", "--objects", "1"])
    assert_one_line_error(status, capsys, "fairs", "int64")


def test_bench_image_naming_a_folder(red_model, tmp_path, capsys) -> None:
    status = main(["bench", "--model", str(red_model), "--image", str(tmp_path), "--repeat", "1", "--objects", "1"])
    assert_one_line_error(status, capsys, "fairs", str(tmp_path))
