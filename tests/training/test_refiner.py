"""The two-part model on U2-Netp: decoder start, channel contract, end-to-end stem."""

from __future__ import annotations

import pytest
import torch

from fairs_sdk.config import InputSpec
from fairs_sdk.training.refiner import FairsU2, RefineDecoder, U2EndToEnd, click_local_weights, saliency_logit

CLICK_SPEC = InputSpec(input_size=64, relax=30, input_channels=("rgb", "sfg", "positive_clicks", "negative_clicks"))


def test_untrained_decoder_predicts_u2netps_normalised_map():
    torch.manual_seed(0)
    decoder = RefineDecoder(3).eval()
    features, saliency = torch.rand(2, 128, 16, 16), torch.randn(2, 1, 64, 64) * 3
    with torch.no_grad():
        plain = decoder(features, saliency, torch.zeros(2, 3, 64, 64))
        clicked = decoder(features, saliency, torch.rand(2, 3, 64, 64))
    assert torch.allclose(plain, saliency_logit(saliency)), "a fresh decoder must start exactly at U2-Netp's map"
    assert torch.allclose(plain, clicked), "a fresh decoder's corrections must be zero whatever the clicks"


def test_saliency_logit_is_min_max_normalised():
    d0 = torch.tensor([[[[-3.0, 0.0], [1.0, 5.0]]]])
    p = torch.sigmoid(saliency_logit(d0))
    assert p.min() == pytest.approx(1e-3, abs=1e-6) and p.max() == pytest.approx(1 - 1e-3, abs=1e-6)


def test_trained_decoder_responds_to_a_negative_click():
    torch.manual_seed(0)
    decoder = RefineDecoder(3).eval()
    torch.nn.init.normal_(decoder.fine[-1].weight, 0, 0.5)
    features, saliency = torch.rand(1, 128, 16, 16), torch.randn(1, 1, 64, 64)
    guidance = torch.zeros(1, 3, 64, 64)
    clicked = guidance.clone()
    clicked[0, 2, 30:34, 30:34] = 1.0  # the negative-click plane
    with torch.no_grad():
        change = (decoder(features, saliency, clicked) - decoder(features, saliency, guidance)).abs()
    assert change[0, 0, 28:36, 28:36].max() > 1e-3, "the negative click plane does not reach the output"


def test_fairs_u2_needs_rgb_then_sfg():
    with pytest.raises(ValueError, match="rgb, sfg"):
        FairsU2(InputSpec(input_size=64, input_channels=("rgb", "positive_clicks", "sfg")))


def test_fairs_u2_runs_on_the_runtime_input():
    model = FairsU2(CLICK_SPEC).eval()
    x = torch.cat([torch.rand(1, 3, 64, 64) * 255, torch.rand(1, 3, 64, 64)], 1)
    with torch.no_grad():
        assert model(x).shape == (1, 1, 64, 64)


def test_end_to_end_stem_copies_blue_into_sfg_and_zeroes_clicks():
    model = U2EndToEnd(CLICK_SPEC)
    model.init_guidance_stem()
    stem = model.u2.stage1.conv_in[0].weight
    assert torch.equal(stem[:, 3], stem[:, 2]), "paper 4.1: the SFG plane starts as the third input plane"
    assert not stem[:, 4:].any(), "click planes must start at zero"


def test_click_branch_changes_nothing_without_clicks():
    torch.manual_seed(0)
    decoder = RefineDecoder(3, click_planes=(1, 2), click_branch=True).eval()
    for p in decoder.click_branch.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    features, saliency = torch.rand(1, 128, 16, 16), torch.randn(1, 1, 64, 64)
    guidance = torch.zeros(1, 3, 64, 64)
    guidance[0, 0] = torch.rand(64, 64)  # an SFG, no clicks
    with torch.no_grad():
        with_branch = decoder(features, saliency, guidance)
        decoder.click_branch = None
        without = decoder(features, saliency, guidance)
    assert torch.equal(with_branch, without), "the click branch must be exactly zero for a sample without clicks"


def test_click_branch_needs_click_planes():
    with pytest.raises(ValueError, match="click_branch"):
        RefineDecoder(3, click_branch=True)


def test_click_locality_keeps_a_click_from_reaching_far_away():
    torch.manual_seed(0)
    decoder = RefineDecoder(3, click_planes=(1, 2), click_branch=True, click_locality=True).eval()
    for p in decoder.click_branch.out.parameters():
        torch.nn.init.normal_(p, 0.0, 0.5)
    with torch.no_grad():
        decoder.click_branch.window_logits.copy_(torch.tensor([0.0, 0.0, 0.0, -30.0]))  # windows only, no global term
    features, saliency = torch.rand(1, 128, 32, 32), torch.randn(1, 1, 128, 128)
    guidance = torch.zeros(1, 3, 128, 128)
    guidance[0, 0] = torch.rand(128, 128)
    clicked = guidance.clone()
    clicked[0, 1, 8:12, 8:12] = 1.0  # a positive click near the top-left corner
    with torch.no_grad():
        branch = decoder.click_branch
        decoder.click_branch = None
        without = decoder(features, saliency, clicked)
        decoder.click_branch = branch
        change = (decoder(features, saliency, clicked) - without).abs()[0, 0]
    assert change[:24, :24].max() > 1e-3, "the click branch must act near the click"
    assert change[80:, 80:].max() < 1e-6, "with windows only, the click must not reach 70 px away"


def test_click_local_weights_follow_the_channel_meaning():
    assert click_local_weights(CLICK_SPEC, 6.0) == (6.0, -6.0), "positive clicks push up, negative clicks down"
    swapped = InputSpec(input_size=64, input_channels=("rgb", "sfg", "negative_clicks", "positive_clicks"))
    assert click_local_weights(swapped, 6.0) == (-6.0, 6.0), "weights must follow the declared channel order"
    assert click_local_weights(CLICK_SPEC, 0.0) is None


def test_click_branch_starts_from_the_local_weights_it_is_given():
    torch.manual_seed(0)
    decoder = RefineDecoder(3, click_planes=(1, 2), click_branch=True, click_local_init=(6.0, -6.0)).eval()
    features, saliency = torch.rand(1, 128, 16, 16), torch.zeros(1, 1, 64, 64)
    guidance = torch.zeros(1, 3, 64, 64)
    clicked = guidance.clone()
    clicked[0, 2, 32, 32] = 1.0  # a negative click's centre
    with torch.no_grad():
        change = decoder(features, saliency, clicked) - decoder(features, saliency, guidance)
    assert change[0, 0, 32, 32] < -5.0, f"a negative click must lower its own pixel's logit by ~6, got {change[0, 0, 32, 32]:.2f}"
    with pytest.raises(ValueError, match="one weight per click map"):
        RefineDecoder(3, click_planes=(1, 2), click_branch=True, click_local_init=(6.0,))
