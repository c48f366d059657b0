"""Small exported FAIRS models for the runtime tests and benchmarks.

- ``export_tiny_model``: the real FAIRS architecture (tf_efficientnet_lite0 + DANet
  head, random weights) exported by ``fairs_sdk.export`` with a 64 x 64 input, so
  inference is cheap. Needs torch (skipped without the ``train`` extra).
- ``make_echo_model(path, channel, scale, spec)``: a two-node ONNX graph whose
  probabilities are input plane ``channel`` times ``scale``; the graph takes the
  ``spec.channel_count`` planes of ``spec.input_channels``. ``channel`` is an index
  or a channel name (its first plane): with "rgb" (red / 255) the mask is where the
  image is red, so a test can check the crop, resize and paste-back geometry and
  the RGB channel order exactly; with "sfg", "positive_clicks" or
  "negative_clicks" it returns that guidance plane as the model saw it.
  ``legacy_metadata`` writes an input spec without ``input_channels``, as models
  exported before SPEC 1b; ``graph_channels`` gives the graph another channel
  count than its metadata. Needs only the onnx package.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fairs_sdk.config import CHANNEL_WIDTHS, DEFAULT_CHANNELS, InputSpec
from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME, ModelMetadata

TINY_SPEC = InputSpec(input_size=64)
#: SPEC 1b's channels with both click maps.
CLICK_CHANNELS = ("rgb", "sfg", "positive_clicks", "negative_clicks")
CLICK_SPEC = InputSpec(input_size=64, input_channels=CLICK_CHANNELS)


def plane_index(spec: InputSpec, name: str) -> int:
    """Index of the first input plane of channel ``name`` in ``spec.input_channels``."""
    planes = [n for n in spec.input_channels for _ in range(CHANNEL_WIDTHS[n])]
    return planes.index(name)


def fairs_props(spec: InputSpec, backbone: str = "echo", legacy_metadata: bool = False) -> dict[str, str]:
    """The ONNX metadata_props of a model with ``spec``; ``legacy_metadata``: without ``input_channels``."""
    props = ModelMetadata(spec, backbone, head="none").to_props()
    if legacy_metadata:
        assert spec.input_channels == DEFAULT_CHANNELS, "old metadata can only describe rgb, sfg models"
        values = json.loads(props["fairs.input_spec"])
        del values["input_channels"]
        props["fairs.input_spec"] = json.dumps(values, sort_keys=True)
    return props
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


def make_echo_model(
    path: Path,
    channel: int | str,
    scale: float,
    spec: InputSpec = TINY_SPEC,
    metadata: bool = True,
    legacy_metadata: bool = False,
    graph_channels: int | str | None = None,
) -> Path:
    """Write an ONNX model whose output is ``input[:, c:c+1] * scale``, c = ``channel`` or its plane index.

    The graph's input is (batch, C, S, S) with C = ``graph_channels`` (a name: dynamic) or
    ``spec.channel_count``.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    s = spec.input_size
    c = plane_index(spec, channel) if isinstance(channel, str) else channel
    nodes = [
        helper.make_node("Slice", [INPUT_NAME, "starts", "ends", "axes"], ["sliced"]),
        helper.make_node("Mul", ["sliced", "scale"], [OUTPUT_NAME]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [c]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [c + 1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
    ]
    channels = spec.channel_count if graph_channels is None else graph_channels
    graph = helper.make_graph(
        nodes,
        "echo",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", channels, s, s])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, s, s])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, fairs_props(spec, legacy_metadata=legacy_metadata))
    onnx.save(model, str(path))
    return path


def export_tiny_bundle(folder: Path, u2netp_weights: Path, spec: InputSpec = CLICK_SPEC, stem: str = "tiny_u2"):
    """Export a 64 x 64 two-part model into ``folder``; returns the :class:`~fairs_sdk.export.two_part.Bundle`."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from fairs_sdk.export.two_part import build_fairs_u2, export_bundle
    from fairs_sdk.training.refiner import RefineDecoder

    torch.manual_seed(0)
    decoder = RefineDecoder(spec.channel_count - 3, width=16)
    for parameter in decoder.parameters():  # the last layers start at zero: make the clicks count
        torch.nn.init.normal_(parameter, 0.0, 0.05)
    model = build_fairs_u2(u2netp_weights, decoder.state_dict(), spec, width=16)
    return export_bundle(model, folder, stem)
