"""Export of the U2-Netp two-part model: encoder, decoder and the combined FAIRS model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairs_sdk.config import InputSpec
from fairs_sdk.export.onnx_export import read_metadata
from fairs_sdk.export.two_part import build_fairs_u2, export_combined, export_decoder, export_image_encoder
from fairs_sdk.training.refiner import RefineDecoder

SPEC = InputSpec(input_size=64, relax=10, input_channels=("rgb", "sfg", "positive_clicks", "negative_clicks"))


@pytest.fixture(scope="module")
def trained_decoder():
    torch.manual_seed(0)
    decoder = RefineDecoder(3, width=16)
    for p in decoder.parameters():
        torch.nn.init.normal_(p, 0.0, 0.05)
    return decoder


def test_combined_model_runs_in_the_segmenter_with_click_maps(tmp_path, fake_u2netp, trained_decoder):
    from fairs_sdk import Segmenter

    model = build_fairs_u2(fake_u2netp[0], trained_decoder.state_dict(), SPEC, width=16)
    path, parity = export_combined(model, tmp_path / "u2.onnx")
    assert parity <= 1e-4
    meta = read_metadata(path)
    assert meta.input_spec.input_channels == SPEC.input_channels and meta.extra["part"] == "combined"
    seg = Segmenter(path, warmup=False)
    image = np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    points = [(20, 40), (100, 45), (60, 10), (62, 80)]
    plain = seg.segment(image, points)
    clicked = seg.segment(image, points, negative_clicks=[(60, 45)])
    assert plain.probabilities.shape == (90, 120)
    assert not np.allclose(plain.probabilities, clicked.probabilities), "a negative click changed nothing"


def test_decoder_export_parity(tmp_path, trained_decoder):
    path, parity = export_decoder(trained_decoder, SPEC, tmp_path / "decoder.onnx")
    assert parity <= 1e-4 and read_metadata(path).extra["part"] == "decoder"


def test_encoder_export_matches_torch(tmp_path, fake_u2netp):
    path = export_image_encoder(fake_u2netp[0], SPEC, tmp_path / "encoder.onnx")
    assert read_metadata(path).extra["part"] == "image_encoder"
