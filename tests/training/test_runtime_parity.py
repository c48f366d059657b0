"""The training-side Predictor and the runtime Segmenter see the same input and give the same output.

One small random network, exported to ONNX with the export code, against its own
PyTorch weights on real DAVIS-345 objects: extreme points, then corrective clicks
placed on the prediction's errors (SPEC 4), for the paper's rgb + sfg model and a
click-map model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fairs_sdk.config import InputSpec
from fairs_sdk.training.evaluate import Predictor
from fairs_sdk.training.model import ModelConfig, build_model
from fairs_sdk.training.simulate import corrective_click, extreme_points
from fairs_sdk.training.sources import build_source

DAVIS = Path(__file__).resolve().parents[3] / "shared" / "data" / "dev" / "davis345"
OBJECTS = (0, 90, 180, 270)
CLICKS = 2
ATOL = 1e-4


@pytest.fixture(scope="module")
def davis():
    if not (DAVIS / "images").is_dir():
        pytest.skip(f"DAVIS-345 not found at {DAVIS} (../shared/data beside the project)")
    return build_source(str(DAVIS))


def random_model(channels: tuple[str, ...]) -> tuple[torch.nn.Module, ModelConfig]:
    """ResNet-18 + width-16 DANet + skip decoder, every branch switched on (attention, decoder residual)."""
    torch.manual_seed(0)
    config = ModelConfig(backbone="resnet18", head="danet", head_channels=16, decoder="skip", input_channels=channels)
    model = build_model(config)
    with torch.no_grad():
        model.head.position.gamma.fill_(0.5)
        model.head.channel.gamma.fill_(0.5)
        torch.nn.init.normal_(model.decoder.residual.weight, std=0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial running statistics
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval(), config


@pytest.mark.parametrize(
    "channels", [("rgb", "sfg"), ("rgb", "sfg", "positive_clicks", "negative_clicks")], ids=["rgb-sfg", "click-maps"]
)
def test_predictor_and_segmenter_agree_on_davis(tmp_path, davis, channels) -> None:
    from fairs_sdk import Segmenter
    from fairs_sdk.export.checkpoint import from_state
    from fairs_sdk.export.onnx_export import export_onnx

    spec = InputSpec(input_size=64, relax=50, input_channels=channels)
    model, config = random_model(channels)
    state = {"model": model.state_dict(), "config": {"model": config.to_dict(), "input": spec.to_dict()}}
    path = export_onnx(from_state(state), tmp_path / "tiny.onnx")
    segmenter = Segmenter(path, backend="onnxruntime", warmup=False)
    assert segmenter.spec == spec, f"the exported model must carry the spec: {segmenter.spec} != {spec}"
    predictor = Predictor(model, spec)

    compared = 0
    for index in OBJECTS:
        image, obj, ignore = davis.load(index)
        extreme = extreme_points(obj)
        positive: list[np.ndarray] = []
        negative: list[np.ndarray] = []
        for step in range(CLICKS + 1):
            clicks = (np.array(positive).reshape(-1, 2), np.array(negative).reshape(-1, 2))
            where = f"{davis.describe(index)} after {step} clicks ({len(positive)} positive)"
            ours, theirs = predictor.encode(image, extreme, *clicks), segmenter.prepare(image, extreme, *clicks)
            assert ours.box == theirs.box, f"{where}: crop boxes {ours.box} != {theirs.box}"
            assert ours.input.shape == (spec.channel_count, 64, 64), f"{where}: input {ours.input.shape}"
            np.testing.assert_array_equal(ours.input, theirs.input, err_msg=f"{where}: network inputs differ")

            expected = segmenter.segment(image, extreme, *clicks).probabilities
            got = predictor.probabilities(image, extreme, *clicks)
            difference = float(np.abs(got - expected).max())
            assert difference <= ATOL, f"{where}: probabilities differ by {difference:.3g} > {ATOL}"
            x0, y0, x1, y1 = ours.box  # may reach past the image (zero padding)
            inside = expected[max(y0, 0) : y1, max(x0, 0) : x1]
            assert float(inside.std()) > 1e-3, f"{where}: near-constant output would make the comparison vacuous"
            compared += 1

            click = corrective_click(obj, got >= spec.threshold, ignore)
            if click is None:
                break
            (positive if click[1] else negative).append(click[0])
    assert compared >= len(OBJECTS) * 2, f"only {compared} predictions compared"
