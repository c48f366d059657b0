"""Small exported FAIRS models for the runtime tests and benchmarks.

- ``tiny_model``: the real FAIRS architecture (tf_efficientnet_lite0 + DANet head,
  random weights) exported to ONNX with a 64 x 64 input, so inference is cheap.
  Needs torch (skipped without the ``train`` extra).
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


def export_tiny_model(path: Path, spec: InputSpec = TINY_SPEC, backbone: str = "tf_efficientnet_lite0") -> Path:
    """Export a random-weight FAIRS network (``backbone`` + DANet) with ``spec`` to ``path``."""
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("timm")
    from torch import nn

    from fairs_sdk.training.model import InputNormalizer, ModelConfig, build_model

    class Exported(nn.Module):
        """Raw RGB 0..255 + SFG in, probabilities out, as fairs_sdk.model_format says."""

        def __init__(self) -> None:
            super().__init__()
            self.net = build_model(ModelConfig(backbone=backbone, head="danet", head_channels=16))
            self.normalize = InputNormalizer(spec.mean, spec.std)

        def forward(self, x):
            return torch.sigmoid(self.net(self.normalize(x[:, :3], x[:, 3:4])))

    torch.manual_seed(0)
    model = Exported().eval()
    s = spec.input_size
    example = torch.rand(2, 4, s, s) * torch.tensor([255.0, 255.0, 255.0, 1.0]).view(1, 4, 1, 1)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(path))
    for key, value in ModelMetadata(spec, backbone, head="danet").to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path


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
