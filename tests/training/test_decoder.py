"""The stride-4 skip decoder and warm starts of a decoder model from a checkpoint without one."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from fairs_sdk.training.decoder import SkipDecoder
from fairs_sdk.training.model import ModelConfig, build_model
from fairs_sdk.training.train import initialise_from

SIZE = 64


def test_decoder_starts_as_upsampled_coarse_logits() -> None:
    decoder = SkipDecoder(low_level_channels=24, channels=16)
    coarse = torch.randn(2, 1, 4, 4)
    refined = decoder(coarse, torch.randn(2, 24, 16, 16), torch.rand(2, 1, SIZE, SIZE))
    expected = F.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    assert refined.shape == (2, 1, 16, 16), f"refined logits {tuple(refined.shape)}, want (2, 1, 16, 16)"
    assert torch.allclose(refined, expected), "a fresh decoder must add a zero residual"


def test_decoder_sees_the_guidance_map() -> None:
    torch.manual_seed(0)
    decoder = SkipDecoder(low_level_channels=8, channels=16)
    torch.nn.init.normal_(decoder.residual.weight)
    coarse, low = torch.zeros(1, 1, 4, 4), torch.zeros(1, 8, 16, 16)
    guidance = torch.zeros(1, 1, SIZE, SIZE)
    clicked = guidance.clone()
    clicked[..., 30:34, 30:34] = 1.0
    change = (decoder(coarse, low, clicked) - decoder(coarse, low, guidance)).abs()
    assert change[..., 7, 7] > 0, "a guidance bump must reach the residual at its stride-4 cell"


@pytest.mark.parametrize("size", [64, 70])
@pytest.mark.parametrize("backbone", ["resnet18", "tf_efficientnet_lite0"])
def test_model_with_decoder_outputs(backbone: str, size: int) -> None:
    model = build_model(ModelConfig(backbone=backbone, head="danet", head_channels=16, decoder="skip"))
    x = torch.randn(2, 4, size, size)
    outputs = model.train()(x)
    assert len(outputs) == 4, f"want refined + head main + 2 DANet branches, got {len(outputs)} outputs"
    assert all(out.shape == (2, 1, size, size) for out in outputs), [tuple(o.shape) for o in outputs]
    with torch.no_grad():
        logits = model.eval()(x)
    assert logits.shape == (2, 1, size, size), f"eval output {tuple(logits.shape)}"


def test_unknown_decoder_is_refused() -> None:
    with pytest.raises(ValueError, match="model.decoder"):
        ModelConfig(decoder="unet")


def test_warm_start_keeps_trained_weights_and_adds_decoder(tmp_path) -> None:
    torch.manual_seed(0)
    plain = build_model(ModelConfig(backbone="resnet18", head="danet", head_channels=16)).eval()
    torch.save({"model": plain.state_dict()}, tmp_path / "plain.pt")
    with_decoder = build_model(ModelConfig(backbone="resnet18", head="danet", head_channels=16, decoder="skip")).eval()
    added = initialise_from(with_decoder, tmp_path / "plain.pt")
    assert added == ["decoder"], f"modules left at their initialisation: {added}"
    x = torch.randn(1, 4, SIZE, SIZE)
    with torch.no_grad():
        head_logits = plain.head(plain.backbone(x))[0]
        expected = F.interpolate(F.interpolate(head_logits, size=(16, 16), mode="bilinear"), size=(SIZE, SIZE), mode="bilinear")
        assert torch.allclose(with_decoder(x), expected, atol=1e-5), "warm-started model must reproduce the checkpoint's logits"


def test_warm_start_refuses_a_different_network(tmp_path) -> None:
    other = build_model(ModelConfig(backbone="resnet18", head="psp", head_channels=16))
    torch.save({"model": other.state_dict()}, tmp_path / "psp.pt")
    target = build_model(ModelConfig(backbone="resnet18", head="danet", head_channels=16, decoder="skip"))
    with pytest.raises(ValueError, match="does not fit"):
        initialise_from(target, tmp_path / "psp.pt")
