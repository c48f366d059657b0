"""Small exported FAIRS models for the runtime tests and benchmarks.

- ``export_tiny_model``: the real FAIRS architecture (tf_efficientnet_lite0 + DANet
  head, random weights) exported by ``fairs_sdk.export`` with a 64 x 64 input, so
  inference is cheap. Needs torch (skipped without the ``train`` extra).
- ``echo_model(channel, scale)``: a one-node ONNX graph whose probabilities are
  input channel ``channel`` times ``scale``. With channel 0 (red / 255) the mask
  is where the image is red, so a test can check the crop, resize and paste-back
  geometry and the RGB channel order exactly; with channel 3 it returns the SFG.
  Needs only the onnx package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME, ModelMetadata

TINY_SPEC = InputSpec(input_size=64)
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def export_tiny_model(path: Path, spec: InputSpec = TINY_SPEC, backbone: str = "tf_efficientnet_lite0",
                      head_channels: int | None = 16) -> Path:
    """Export a random-weight FAIRS network (``backbone`` + DANet) with ``spec`` to ``path``.

    Goes through ``fairs_sdk.export.onnx_export.export_onnx``, the one export path.
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("timm")
    from fairs_sdk.export.checkpoint import Checkpoint
    from fairs_sdk.export.onnx_export import export_onnx
    from fairs_sdk.training.model import ModelConfig, build_model

    torch.manual_seed(0)
    config = ModelConfig(backbone=backbone, head="danet", head_channels=head_channels)
    checkpoint = Checkpoint(model=build_model(config).eval(), model_config=config, input_spec=spec,
                            config={}, digest="")
    return export_onnx(checkpoint, path)


def make_echo_model(path: Path, channel: int, scale: float, spec: InputSpec = TINY_SPEC, metadata: bool = True) -> Path:
    """Write an ONNX model whose output is ``input[:, channel:channel+1] * scale``."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    s = spec.input_size
    nodes = [
        helper.make_node("Slice", [INPUT_NAME, "starts", "ends", "axes"], ["sliced"]),
        helper.make_node("Mul", ["sliced", "scale"], [OUTPUT_NAME]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [channel]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [channel + 1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
    ]
    graph = helper.make_graph(
        nodes,
        "echo",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 4, s, s])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, s, s])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        for key, value in ModelMetadata(spec, "echo", head="none").to_props().items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path
