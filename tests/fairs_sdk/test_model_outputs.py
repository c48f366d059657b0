"""Every model run's outputs are checked (issue 13.2): NaN, infinities or probabilities outside [0, 1] raise
ModelOutputError instead of becoming a silent wrong mask; encoder features and saliency logits need only be finite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fairs_sdk.backends import PROBABILITY_TOLERANCE, ModelOutputError, check_output, load_backend, load_part
from fairs_sdk.model_format import DECODER, IMAGE_ENCODER, OUTPUT_NAME, PART_INPUTS, PART_OUTPUTS, ModelMetadata

from model_files import CLICK_SPEC, TINY_SPEC, make_echo_model

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

WHITE = np.full((48, 64, 3), 255, np.uint8)
BOX = [(8, 24), (56, 24), (32, 4), (32, 44)]  # left, right, top, bottom


@pytest.mark.parametrize("scale, problem", [
    (1.5 / 255, r"finite values span \[0, 1\.5\], not \[0, 1\]"),  # 0 on the canvas outside the image
    (float("nan"), r"\d+ of \d+ values are NaN or infinite"),
    (float("inf"), r"\d+ of \d+ values are NaN or infinite"),
    (-0.5 / 255, r"not \[0, 1\]"),
])
def test_whole_model_output_outside_probabilities_is_an_error(tmp_path, scale, problem) -> None:
    from fairs_sdk import Segmenter

    path = make_echo_model(tmp_path / "broken.onnx", "rgb", scale)  # probabilities = red / 255 * 255 * scale
    segmenter = Segmenter(path, backend="onnxruntime", warmup=False)
    with pytest.raises(ModelOutputError, match=f"broken.onnx: output '{OUTPUT_NAME}' is not probabilities.*{problem}"):
        segmenter.segment(WHITE, BOX)


def test_probabilities_within_the_tolerance_pass(tmp_path) -> None:
    path = make_echo_model(tmp_path / "edge.onnx", "rgb", (1 + PROBABILITY_TOLERANCE / 2) / 255)
    backend = load_backend(path, backend="onnxruntime")
    batch = np.full((2, TINY_SPEC.channel_count, 64, 64), 255, np.float32)
    out = backend.run(batch)
    assert out.max() > 1.0 and out.shape == (2, 1, 64, 64), "rounding just above 1 must pass unchanged"


def test_check_output_names_the_output_and_file() -> None:
    features = np.ones((1, 4, 2, 2), np.float32) * 7.0
    assert check_output("features", features, "m.onnx") is features, "finite features of any range pass"
    features[0, 1, 1, 1] = np.nan
    with pytest.raises(ModelOutputError, match="m.onnx: output 'features' is not finite: 1 of 16 values"):
        check_output("features", features, "m.onnx")


def _part_model(path: Path, part: str, scale: float) -> Path:
    """A hand-built part of a two-part model (CLICK_SPEC, 64 x 64).

    The image encoder gives features = 4 x 4 average of rgb x ``scale`` (N, 3, 16, 16) and
    saliency = red plane x 10 (logits: any finite value); the decoder gives probabilities =
    saliency x ``scale``.
    """
    from onnx import TensorProto, helper

    s = CLICK_SPEC.input_size
    shapes = {"rgb": [3, s, s], "features": [3, s // 4, s // 4], "saliency": [1, s, s],
              "guidance": [CLICK_SPEC.channel_count - 3, s, s], OUTPUT_NAME: [1, s, s]}
    constants = [helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
                 helper.make_tensor("ten", TensorProto.FLOAT, [], [10.0]),
                 helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
                 helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
                 helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
    if part == IMAGE_ENCODER:
        nodes = [helper.make_node("AveragePool", ["rgb"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
                 helper.make_node("Mul", ["pooled", "scale"], ["features"]),
                 helper.make_node("Slice", ["rgb", "starts", "ends", "axes"], ["red"]),
                 helper.make_node("Mul", ["red", "ten"], ["saliency"])]
    else:
        nodes = [helper.make_node("Mul", ["saliency", "scale"], [OUTPUT_NAME])]
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", *shapes[name]])  # noqa: E731
    graph = helper.make_graph(nodes, part, [value(n) for n in PART_INPUTS[part]], [value(n) for n in PART_OUTPUTS[part]],
                              initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, ModelMetadata(CLICK_SPEC, "echo", head="none", extra={"part": part}).to_props())
    onnx.save(model, str(path))
    return path


def _feeds(part: str) -> dict[str, np.ndarray]:
    s = CLICK_SPEC.input_size
    if part == IMAGE_ENCODER:
        return {"rgb": np.full((1, 3, s, s), 0.5, np.float32)}
    return {"features": np.zeros((1, 3, s // 4, s // 4), np.float32), "saliency": np.full((1, 1, s, s), 0.5, np.float32),
            "guidance": np.zeros((1, CLICK_SPEC.channel_count - 3, s, s), np.float32)}


def test_encoder_logits_outside_zero_one_pass(tmp_path) -> None:
    encoder = load_part(_part_model(tmp_path / "encoder.onnx", IMAGE_ENCODER, 4.0), IMAGE_ENCODER, backend="onnxruntime")
    out = encoder.run(_feeds(IMAGE_ENCODER))
    assert out["saliency"].max() == pytest.approx(5.0), "saliency is a logit: 5 is a valid value"
    assert out["features"].max() == pytest.approx(2.0), "features have any finite range: 2 is a valid value"


@pytest.mark.parametrize("part, scale, output", [
    (IMAGE_ENCODER, float("nan"), "features"),
    (DECODER, float("nan"), OUTPUT_NAME),
    (DECODER, 3.0, OUTPUT_NAME),  # 0.5 x 3 = 1.5
])
def test_part_outputs_are_checked(tmp_path, part, scale, output) -> None:
    runner = load_part(_part_model(tmp_path / f"{part}.onnx", part, scale), part, backend="onnxruntime")
    with pytest.raises(ModelOutputError, match=f"{part}.onnx: output '{output}' is not"):
        runner.run(_feeds(part))
