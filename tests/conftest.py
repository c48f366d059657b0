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
