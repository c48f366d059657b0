"""Shared fixtures: a tiny random FAIRS model saved as a checkpoint, its ONNX file, real crops,
and a tiny 6-channel network (rgb, sfg, positive_clicks, negative_clicks) with its files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fairs_sdk.config import InputSpec
from fairs_sdk.training.model import ModelConfig, build_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import SIX_SPEC, SIZE, tiny_checkpoint  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
COCO = DATA / "train" / "coco_mval"
DAVIS = DATA / "dev" / "davis345"


def tiny_state(seed: int = 0) -> dict:
    """A checkpoint dict of a small resnet18/DANet with non-trivial attention and BN statistics."""
    torch.manual_seed(seed)
    config = ModelConfig(backbone="resnet18", head="danet", head_channels=16)
    model = build_model(config)
    with torch.no_grad():
        model.head.position.gamma.fill_(0.5)
        model.head.channel.gamma.fill_(0.5)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return {
        "model": model.state_dict(),
        "config": {"model": config.to_dict(), "input": InputSpec(input_size=SIZE).to_dict()},
    }


@pytest.fixture(name="tiny_state")
def tiny_state_factory():
    """:func:`tiny_state`, for tests that break a fresh checkpoint dict."""
    return tiny_state


@pytest.fixture(scope="session")
def coco_dir() -> Path:
    if not (COCO / "images").is_dir():
        pytest.skip(f"real data not found at {COCO} (../shared/data beside the project)")
    return COCO


@pytest.fixture(scope="session")
def checkpoint_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    torch.save(tiny_state(), path)
    return path


@pytest.fixture(scope="session")
def checkpoint(checkpoint_path):
    from fairs_sdk.export.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint_path)


@pytest.fixture(scope="session")
def decoder_checkpoint(tmp_path_factory):
    """A Lite0/DANet-16 with a skip decoder whose residual is not zero, loaded for export.

    Lite0 as the default model: its TF "same" padding plus the decoder's resizes is the
    graph that ORT's symbolic shape inference gives up on.
    """
    from fairs_sdk.export.checkpoint import load_checkpoint

    torch.manual_seed(0)
    config = ModelConfig(backbone="tf_efficientnet_lite0", head="danet", head_channels=16, decoder="skip", decoder_channels=16)
    model = build_model(config)
    with torch.no_grad():
        model.decoder.residual.weight.normal_(0.0, 0.5)
    path = tmp_path_factory.mktemp("decoder") / "decoder.pt"
    torch.save({"model": model.state_dict(), "config": {"model": config.to_dict(), "input": InputSpec(input_size=SIZE).to_dict()}}, path)
    return load_checkpoint(path)


@pytest.fixture(scope="session")
def decoder_onnx(decoder_checkpoint, tmp_path_factory) -> Path:
    from fairs_sdk.export.onnx_export import export_onnx

    return export_onnx(decoder_checkpoint, tmp_path_factory.mktemp("onnx") / "decoder_fp32.onnx")


@pytest.fixture(scope="session")
def fp32_onnx(checkpoint, tmp_path_factory) -> Path:
    from fairs_sdk.export.onnx_export import export_onnx

    return export_onnx(checkpoint, tmp_path_factory.mktemp("onnx") / "tiny_fp32.onnx")


@pytest.fixture(scope="session")
def real_inputs(coco_dir) -> np.ndarray:
    """(6, 4, 64, 64) float32 crops of six COCO objects, every 97th pair."""
    from fairs_sdk.export.samples import stack_inputs

    return stack_inputs(coco_dir, InputSpec(input_size=SIZE), count=6, stride=97)


@pytest.fixture(scope="session")
def calibration_inputs(coco_dir) -> np.ndarray:
    """(16, 4, 64, 64) float32 crops of other COCO objects (every 41st pair from the 20th)."""
    from fairs_sdk.export.samples import stack_inputs

    return stack_inputs(coco_dir, InputSpec(input_size=SIZE), count=16, stride=41, start=20)


@pytest.fixture(scope="session")
def fp16_onnx(fp32_onnx) -> Path:
    from fairs_sdk.export.quantize import convert_fp16

    return convert_fp16(fp32_onnx, fp32_onnx.with_name("tiny_fp16.onnx"))


@pytest.fixture(scope="session")
def int8_onnx(fp32_onnx, calibration_inputs) -> Path:
    from fairs_sdk.export.quantize import quantize_int8

    return quantize_int8(fp32_onnx, fp32_onnx.with_name("tiny_int8.onnx"), calibration_inputs)


@pytest.fixture(scope="session")
def six_checkpoint():
    """A :class:`TinyNet` taking the 6 planes of :data:`SIX_SPEC`."""
    return tiny_checkpoint(SIX_SPEC)


@pytest.fixture(scope="session")
def six_onnx(six_checkpoint, tmp_path_factory) -> Path:
    from fairs_sdk.export.onnx_export import export_onnx

    return export_onnx(six_checkpoint, tmp_path_factory.mktemp("six") / "six_fp32.onnx")


@pytest.fixture(scope="session")
def six_real_inputs(coco_dir) -> np.ndarray:
    """(6, 6, 64, 64) float32: the crops of ``real_inputs`` with simulated corrective clicks."""
    from fairs_sdk.export.samples import stack_inputs

    return stack_inputs(coco_dir, SIX_SPEC, count=6, stride=97)


@pytest.fixture(scope="session")
def six_calibration_inputs(coco_dir) -> np.ndarray:
    """(16, 6, 64, 64) float32 calibration crops (those of ``calibration_inputs``) with clicks."""
    from fairs_sdk.export.samples import stack_inputs

    return stack_inputs(coco_dir, SIX_SPEC, count=16, stride=41, start=20)


@pytest.fixture(scope="session")
def six_fp16_onnx(six_onnx) -> Path:
    from fairs_sdk.export.quantize import convert_fp16

    return convert_fp16(six_onnx, six_onnx.with_name("six_fp16.onnx"))


@pytest.fixture(scope="session")
def six_int8_onnx(six_onnx, six_calibration_inputs) -> Path:
    from fairs_sdk.export.quantize import quantize_int8

    return quantize_int8(six_onnx, six_onnx.with_name("six_int8.onnx"), six_calibration_inputs)
