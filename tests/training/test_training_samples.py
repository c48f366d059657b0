"""Training samples: built by the runtime's InputEncoder, normalised once, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fairs_sdk.config import InputSpec
from fairs_sdk.encoder import InputEncoder
from fairs_sdk.sfg import soft_focus
from fairs_sdk.training.channels import channel_slices
from fairs_sdk.training.model import InputNormalizer
from fairs_sdk.training.samples import InstanceDataset, SimulationConfig, normalize_input, unpad_points

CLICK_CHANNELS = ("rgb", "sfg", "positive_clicks", "negative_clicks")


def test_sample_shapes_and_sfg_channel(horses) -> None:
    spec = InputSpec(input_size=48, relax=10)
    sample = InstanceDataset(horses, spec, simulation=SimulationConfig(click_probability=1.0))[0]
    assert sample["input"].shape == (spec.channel_count, 48, 48) and sample["input"].dtype == torch.float32
    assert sample["target"].shape == (1, 48, 48) and set(sample["target"].unique().tolist()) <= {0.0, 1.0}
    sfg = sample["input"][channel_slices(spec.input_channels)["sfg"]]
    assert 0.0 <= float(sfg.min()) and float(sfg.max()) == pytest.approx(1.0), "SFG channel must span [0, 1]"
    assert 0.05 < float(sample["target"].mean()) < 0.95, "the crop must hold object and background"


@pytest.mark.parametrize("channels", [("rgb", "sfg"), CLICK_CHANNELS, ("negative_clicks", "rgb", "sfg")])
def test_sample_input_is_the_encoders_normalised(horses, channels) -> None:
    spec = InputSpec(input_size=48, relax=10, input_channels=channels)
    dataset = InstanceDataset(horses, spec, simulation=SimulationConfig(click_probability=1.0, three_point_probability=0.5))
    sample = dataset[3]
    # The sample's canvas points and crop give the encoder's input back exactly.
    extreme, positive, negative = (unpad_points(sample[key].numpy()) for key in ("extreme", "positive", "negative"))
    guidance = InputEncoder(spec).guidance(extreme, positive, negative)
    slices = channel_slices(channels)
    planes = [slices[name].start for name in channels if name != "rgb"]
    assert sample["input"].shape[0] == spec.channel_count, f"{channels}: {sample['input'].shape[0]} planes"
    np.testing.assert_allclose(
        sample["input"][planes].numpy(), guidance, atol=1e-5,
        err_msg=f"{channels}: guidance planes must be the encoder's for the sample's own (canvas) points",
    )
    assert float(sample["input"][slices["rgb"]].min()) < 0, "RGB planes must be normalised (ImageNet mean removed)"


def test_click_planes_hold_the_sampled_clicks(horses) -> None:
    spec = InputSpec(input_size=48, relax=10, input_channels=CLICK_CHANNELS)
    simulation = SimulationConfig(click_probability=1.0, max_positive_clicks=2, max_negative_clicks=2)
    samples = [InstanceDataset(horses, spec, simulation=simulation, seed=seed)[i] for seed in range(3) for i in range(4)]
    slices = channel_slices(CLICK_CHANNELS)
    for sample in samples:
        for kind in ("positive", "negative"):
            plane = sample["input"][slices[f"{kind}_clicks"]][0]
            clicks = unpad_points(sample[kind].numpy())
            inside = [c for c in clicks if 0 <= round(c[0]) < 48 and 0 <= round(c[1]) < 48]
            if not len(clicks):
                assert float(plane.max()) == 0.0, f"no {kind} click: its map must be empty"
            for x, y in inside:
                assert float(plane[int(round(y)), int(round(x))]) > 0.9, f"{kind} click ({x:.1f}, {y:.1f}) not on its map"
    assert any(len(unpad_points(s["negative"].numpy())) for s in samples), "the draw made no negative click at all"


def test_sample_points_reproduce_its_guidance(horses) -> None:
    spec = InputSpec(input_size=48, relax=10)
    sample = InstanceDataset(horses, spec, simulation=SimulationConfig(click_probability=1.0, three_point_probability=1.0))[2]
    extreme, positive, negative = (unpad_points(sample[key].numpy()) for key in ("extreme", "positive", "negative"))
    assert sample["extreme"].shape == (4, 2) and len(extreme) == 3, "three points padded to four slots"
    assert sample["positive"].shape == (2, 2) and sample["negative"].shape == (2, 2), "clicks padded to the max counts"
    rebuilt = soft_focus((48, 48), extreme, positive, negative)
    assert np.allclose(rebuilt, sample["input"][3].numpy(), atol=1e-5), "canvas points must re-encode the sample's SFG"


def test_samples_are_reproducible_per_epoch(horses) -> None:
    dataset = InstanceDataset(horses, InputSpec(input_size=48, relax=10))
    first = dataset[1]["input"]
    assert torch.equal(first, dataset[1]["input"]), "same (epoch, index) must give the same sample"
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[1]["input"]), "a new epoch must draw new augmentation and noise"


@pytest.mark.parametrize("channels", [("rgb", "sfg"), ("sfg", "positive_clicks", "rgb")])
def test_normalize_input_matches_the_export_normalizer(channels) -> None:
    spec = InputSpec(input_size=16, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), input_channels=channels)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(spec.channel_count, 16, 16)).astype(np.float32)
    rgb = channel_slices(channels)["rgb"]
    x[[i for i in range(spec.channel_count) if not rgb.start <= i < rgb.stop]] /= 255.0  # guidance in [0, 1]
    got = normalize_input(x, spec)
    guidance = np.delete(x, np.arange(rgb.start, rgb.stop), axis=0)
    expected = InputNormalizer(spec.mean, spec.std)(torch.from_numpy(x[rgb])[None], torch.from_numpy(guidance)[None])[0]
    np.testing.assert_allclose(got[rgb], expected[:3].numpy(), atol=1e-5, err_msg="RGB planes: two normalisations differ")
    np.testing.assert_array_equal(np.delete(got, np.arange(rgb.start, rgb.stop), axis=0), guidance, "guidance must pass unchanged")
    assert not np.shares_memory(got, x), "normalize_input must not write into the encoder's array"


def test_normalize_input_refuses_a_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match=r"expected \(6, S, S\)"):
        normalize_input(np.zeros((4, 8, 8), np.float32), InputSpec(input_size=16, input_channels=CLICK_CHANNELS))
