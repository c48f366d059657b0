"""``fairs-export`` ends every expected failure with one line on stderr and exit status 2 (issue 13, item 7)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fairs_sdk.config import InputSpec
from fairs_sdk.export import cli
from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME, ModelMetadata

from cli_helpers import exit_status

SPEC = InputSpec(input_size=64)


#: ``fairs-export`` in-process: its exit status, whether returned or raised by argparse.
main = partial(exit_status, cli.main)


def scale_model(path: Path, external: bool = False) -> Path:
    """An fp32 FAIRS model (64 x 64, rgb + sfg): probabilities = the sfg plane x 0.5; ``external``:
    its initialisers in ``<stem>.data`` beside it (ONNX external data)."""
    graph = helper.make_graph(
        [
            helper.make_node("Slice", [INPUT_NAME, "starts", "ends", "axes"], ["sfg"]),
            helper.make_node("Mul", ["sfg", "half"], [OUTPUT_NAME]),
        ],
        "scale",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", SPEC.channel_count, 64, 64])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1, 64, 64])],
        initializer=[
            numpy_helper.from_array(np.array([3], np.int64), "starts"),
            numpy_helper.from_array(np.array([4], np.int64), "ends"),
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
            numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, ModelMetadata(SPEC, "scale", head="none").to_props())
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=f"{path.stem}.data", size_threshold=0)
    else:
        onnx.save_model(model, str(path))
    return path


# --------------------------------------------------------------------- quantize, external data
def test_quantize_external_data_model_that_is_complete_works(tmp_path, capsys) -> None:
    model = scale_model(tmp_path / "ext.onnx", external=True)
    assert (tmp_path / "ext.data").is_file(), "premise: the weights are in external data"
    status = main(["quantize", str(model), "--precision", "fp16", "-o", str(tmp_path / "ext_fp16.onnx")])
    assert status == 0, capsys.readouterr().err
    assert (tmp_path / "ext_fp16.onnx").is_file()


def test_quantize_external_data_missing(tmp_path, one_line_error) -> None:
    model = scale_model(tmp_path / "ext.onnx", external=True)
    (tmp_path / "ext.data").unlink()
    status = main(["quantize", str(model), "--precision", "fp16", "-o", str(tmp_path / "out.onnx")])
    one_line_error(status, "fairs-export", str(model), "external data")
    assert not (tmp_path / "out.onnx").exists(), "nothing may be written"


def test_quantize_external_data_outside_the_model_folder(tmp_path, one_line_error) -> None:
    scale_model(tmp_path / "ext.onnx", external=True)
    inner = tmp_path / "inner"
    inner.mkdir()
    proto = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../ext.data"  # a path out of the model's folder
    onnx.save_model(proto, str(inner / "escape.onnx"))
    status = main(["quantize", str(inner / "escape.onnx"), "--precision", "fp16", "-o", str(tmp_path / "out.onnx")])
    one_line_error(status, "fairs-export", "escape.onnx", "external data")


def test_quantize_external_data_truncated(tmp_path, one_line_error) -> None:
    model = scale_model(tmp_path / "ext.onnx", external=True)
    data = tmp_path / "ext.data"
    data.write_bytes(data.read_bytes()[:5])
    status = main(["quantize", str(model), "--precision", "fp16", "-o", str(tmp_path / "out.onnx")])
    one_line_error(status, "fairs-export", str(model), "external data")


# --------------------------------------------------------------------- models of another kind
@pytest.mark.parametrize("kind", ["int64", "float16"])
def test_quantize_model_whose_input_is_not_float32(kind, typed_input_models, tmp_path, one_line_error) -> None:
    model = typed_input_models[kind]
    status = main(["quantize", str(model), "--precision", "fp16", "-o", str(tmp_path / "out.onnx")])
    one_line_error(status, "fairs-export", str(model), kind)


def test_compare_model_whose_input_is_not_float32(typed_input_models, tmp_path, one_line_error) -> None:
    reference = scale_model(tmp_path / "ref.onnx")
    model = typed_input_models["int64"]
    status = main(["compare", str(reference), str(model), "--data", str(tmp_path)])
    one_line_error(status, "fairs-export", str(model), "int64")


def test_refused_checkpoint(refused_checkpoint, tmp_path, one_line_error) -> None:
    status = main(["onnx", str(refused_checkpoint), "-o", str(tmp_path / "model.onnx")])
    one_line_error(status, "fairs-export", str(refused_checkpoint))


def test_model_path_naming_a_folder(tmp_path, one_line_error) -> None:
    one_line_error(main(["quantize", str(tmp_path), "--precision", "fp16"]), "fairs-export", "not a file")


# ------------------------------------------------------------------------------- output paths
def test_quantize_output_naming_a_folder(tmp_path, one_line_error) -> None:
    model = scale_model(tmp_path / "m.onnx")
    one_line_error(main(["quantize", str(model), "--precision", "fp16", "-o", str(tmp_path)]), "fairs-export", "-o")


def test_quantize_output_over_its_own_model(tmp_path, one_line_error) -> None:
    model = scale_model(tmp_path / "m.onnx")
    before = model.read_bytes()
    one_line_error(main(["quantize", str(model), "--precision", "fp16", "-o", str(model)]), "fairs-export", "itself")
    assert model.read_bytes() == before, "the source model must be left alone"


def test_onnx_output_naming_a_folder(refused_checkpoint, tmp_path, one_line_error) -> None:
    status = main(["onnx", str(refused_checkpoint), "-o", str(tmp_path)])
    one_line_error(status, "fairs-export", "-o", "folder")


def test_bundle_output_naming_a_file(refused_checkpoint, tmp_path, one_line_error) -> None:
    taken = tmp_path / "taken.onnx"
    taken.write_text("a file")
    one_line_error(main(["bundle", str(refused_checkpoint), "-o", str(taken)]), "fairs-export", "-o", str(taken))


def test_trt_cache_dir_naming_a_file(tmp_path, one_line_error) -> None:
    model = scale_model(tmp_path / "m.onnx")
    taken = tmp_path / "engines"
    taken.write_text("a file")
    status = main(["trt", str(model), "--cache-dir", str(taken)])
    one_line_error(status, "fairs-export", "--cache-dir", str(taken))


def test_compare_output_naming_a_folder(tmp_path, one_line_error) -> None:
    model = scale_model(tmp_path / "m.onnx")
    status = main(["compare", str(model), "--data", str(tmp_path), "-o", str(tmp_path)])
    one_line_error(status, "fairs-export", "-o")


# ---------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["quantize", "m.onnx", "--precision", "int8", "--calibration-count", "0"], "--calibration-count"),
        (["trt", "m.onnx", "--max-batch", "0"], "--max-batch"),
        (["compare", "m.onnx", "--data", "d", "--limit", "0"], "--limit"),
    ],
    ids=["calibration-count-0", "max-batch-0", "limit-0"],
)
def test_out_of_range_arguments(argv, needle, one_line_error) -> None:
    one_line_error(main(argv), "fairs-export", needle)
