"""Fixtures shared by the training and export tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def fake_u2netp(tmp_path_factory):
    """A ``u2netp.onnx`` look-alike: the U2-Netp graph with random weights, as the real file is laid out.

    Written by the TorchScript exporter from :class:`~fairs_sdk.training.u2netp.U2NetP`, so
    its Conv nodes come in execution order, like the authors' export; BatchNorm-free, as
    in the real file (where it is folded). Returns (path, the torch model it came from).
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from fairs_sdk.training.u2netp import U2NetP

    class Saliency(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            return tuple(torch.sigmoid(d) for d in [out.d0, *out.sides])

    torch.manual_seed(0)
    net = U2NetP().eval()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.normal_(module.weight, 0.0, 0.5 / (module.weight[0].numel() ** 0.5))
            torch.nn.init.normal_(module.bias, 0.0, 0.05)
    path = tmp_path_factory.mktemp("u2netp") / "u2netp.onnx"
    with torch.no_grad():
        torch.onnx.export(Saliency(net), (torch.zeros(1, 3, 64, 64),), str(path), input_names=["input.1"],
                          dynamic_axes={"input.1": {2: "height", 3: "width"}}, opset_version=11, dynamo=False)
    return path, net


@pytest.fixture
def one_line_error(capsys):
    """``check(status, prog, *needles) -> line``: a command failed with exit status 2 and exactly one
    stderr line that starts with ``prog``, holds each of ``needles`` and no traceback (issue 13, item 7)."""

    def check(status: int, prog: str, *needles: str) -> str:
        err = capsys.readouterr().err
        lines = err.splitlines()
        assert status == 2, f"exit status {status}, expected 2; stderr: {err!r}"
        assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}: {err!r}"
        assert lines[0].startswith(prog), f"the line must start with {prog!r}: {lines[0]!r}"
        assert "Traceback" not in err, err
        for needle in needles:
            assert needle in lines[0], f"the message must mention {needle!r}: {lines[0]!r}"
        return lines[0]

    return check


@pytest.fixture(scope="session")
def typed_input_models(tmp_path_factory) -> dict:
    """FAIRS-metadata ONNX models (64 x 64, rgb + sfg) whose input 'input' is int64 or float16
    (cast to float inside), by element type name: {"int64": path, "float16": path}."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from fairs_sdk.config import InputSpec
    from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME, ModelMetadata

    spec = InputSpec(input_size=64)
    folder = tmp_path_factory.mktemp("typed_inputs")
    models = {}
    for name, elem_type in (("int64", TensorProto.INT64), ("float16", TensorProto.FLOAT16)):
        s = spec.input_size
        graph = helper.make_graph(
            [
                helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
                helper.make_node("ReduceMax", ["as_float"], [OUTPUT_NAME], axes=[1], keepdims=1),
            ],
            f"{name}_input",
            [helper.make_tensor_value_info(INPUT_NAME, elem_type, ["N", spec.channel_count, s, s])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1, s, s])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        helper.set_model_props(model, ModelMetadata(spec, "cast", head="none").to_props())
        models[name] = folder / f"{name}_input.onnx"
        onnx.save(model, str(models[name]))
    return models


@pytest.fixture
def refused_checkpoint(tmp_path):
    """A checkpoint whose pickle names a Python class (fractions.Fraction): weights-only loading refuses it."""
    from fractions import Fraction

    torch = pytest.importorskip("torch")
    path = tmp_path / "object.pt"
    torch.save({"version": 1, "model": {}, "config": {}, "extra": Fraction(1, 3)}, path)
    return path
