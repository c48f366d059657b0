"""A model file cannot read other files (issue 13.2): external data outside the model's folder is refused.

Each model is a FAIRS model whose probabilities are an external-data initializer / 255,
so a runtime that followed the reference would hand the referenced file's bytes back as
probabilities. The same graph with its data beside it loads and returns those bytes,
which shows the loading is really tried; pointed at a file outside its folder (``../``,
an absolute path, a symlink), it must fail with ModelLoadError, as ONNX Runtime >= 1.24.3
(the ``cpu`` extra's floor) does.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fairs_sdk.backends import ModelLoadError, load_backend
from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME

from model_files import TINY_SPEC, fairs_props

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

SIZE = TINY_SPEC.input_size
#: The bytes of the file a model must not read: a pattern no graph computes by chance.
SECRET = (np.arange(SIZE * SIZE) * 7 % 251).astype(np.uint8)


def _leaking_model(path: Path, location: str) -> Path:
    """Write a FAIRS model whose probabilities are ``SECRET``-sized bytes read from external data at ``location``."""
    from onnx import TensorProto, helper

    data = TensorProto(name="secret", data_type=TensorProto.UINT8, dims=[1, 1, SIZE, SIZE],
                       data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", str(SECRET.size))):
        entry = data.external_data.add()
        entry.key, entry.value = key, value
    nodes = [
        helper.make_node("Cast", ["secret"], ["secret_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["secret_float", "inverse_255"], ["leak"]),
        helper.make_node("Slice", [INPUT_NAME, "zero_index", "one_index", "channel_axis"], ["plane"]),
        helper.make_node("Mul", ["plane", "zero"], ["zeros"]),  # (N, 1, S, S): one output per input
        helper.make_node("Add", ["zeros", "leak"], [OUTPUT_NAME]),
    ]
    constants = [
        helper.make_tensor("inverse_255", TensorProto.FLOAT, [], [1 / 255]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("zero_index", TensorProto.INT64, [1], [0]),
        helper.make_tensor("one_index", TensorProto.INT64, [1], [1]),
        helper.make_tensor("channel_axis", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(
        nodes, "leak",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", TINY_SPEC.channel_count, SIZE, SIZE])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])],
        initializer=[data, *constants],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, fairs_props(TINY_SPEC))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())  # onnx.save would try to resolve the external data
    return path


@pytest.fixture
def secret_file(tmp_path) -> Path:
    """A file outside every model folder, holding ``SECRET``."""
    path = tmp_path / "outside" / "secret.bin"
    path.parent.mkdir()
    path.write_bytes(SECRET.tobytes())
    return path


def _outside_models(tmp_path: Path, secret_file: Path) -> dict[str, Path]:
    """The three ways out of a model's folder: a ../ path, an absolute path, a symlink inside pointing outside."""
    depth = len((tmp_path / "models" / "dotdot").relative_to(tmp_path).parts)
    models = {
        "../": _leaking_model(tmp_path / "models" / "dotdot" / "model.onnx",
                              "../" * depth + f"outside/{secret_file.name}"),
        "absolute": _leaking_model(tmp_path / "models" / "absolute" / "model.onnx", str(secret_file)),
        "symlink": _leaking_model(tmp_path / "models" / "symlink" / "model.onnx", "weights.bin"),
    }
    os.symlink(secret_file, tmp_path / "models" / "symlink" / "weights.bin")
    dotdot = models["../"].parent / ("../" * depth + f"outside/{secret_file.name}")
    assert dotdot.resolve() == secret_file.resolve(), "test setup: the ../ path must reach the secret file"
    return models


def test_external_data_inside_the_model_folder_loads(tmp_path, secret_file) -> None:
    path = _leaking_model(tmp_path / "inside" / "model.onnx", "weights.bin")
    (path.parent / "weights.bin").write_bytes(secret_file.read_bytes())
    backend = load_backend(path, backend="onnxruntime")
    batch = np.zeros((1, TINY_SPEC.channel_count, SIZE, SIZE), np.float32)
    probabilities = backend.run(batch)
    assert np.allclose(probabilities.ravel() * 255, SECRET, atol=1e-3), "the graph must read its external data"


@pytest.mark.parametrize("way", ["../", "absolute", "symlink"])
def test_external_data_outside_the_model_folder_is_refused(tmp_path, secret_file, way) -> None:
    from fairs_sdk import Segmenter

    path = _outside_models(tmp_path, secret_file)[way]
    for name, load in (("load_backend", lambda: load_backend(path, backend="onnxruntime")),
                       ("Segmenter", lambda: Segmenter(path, backend="onnxruntime", warmup=False))):
        with pytest.raises(ModelLoadError, match="(?i)external data") as caught:
            leaked = load()
            pytest.fail(f"{name} loaded a model whose {way} external data reads {secret_file} ({leaked!r})")
        assert str(path) in str(caught.value), f"{name}: the error must name the model file: {caught.value}"
