"""load_checkpoint: the model comes back exactly, and every broken file gives a clear CheckpointError."""

from __future__ import annotations

import pytest
import torch
from tiny_models import SIX_CHANNELS, six_channel_state

from fairs_sdk.export.checkpoint import CheckpointError, config_digest, declared_channels, load_checkpoint

SIZE = 64  # conftest's tiny model input size


def test_round_trip_keeps_weights_and_spec(checkpoint_path, tiny_state) -> None:
    state = tiny_state()
    loaded = load_checkpoint(checkpoint_path)
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in state["model"].items()), "loaded weights differ from the saved ones"
    assert loaded.input_spec.input_size == SIZE, f"input spec not restored: {loaded.input_spec}"
    assert not loaded.model.training, "loaded model must be in eval mode"
    assert loaded.digest == config_digest(state["config"]), "digest must be the sha256 of the saved config"


def test_missing_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_not_a_torch_file(tmp_path) -> None:
    path = tmp_path / "junk.pt"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(path)


def test_not_a_dict(tmp_path) -> None:
    path = tmp_path / "list.pt"
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(path)


def test_missing_config(tmp_path, tiny_state) -> None:
    path = tmp_path / "noconfig.pt"
    torch.save({"model": tiny_state()["model"]}, path)
    with pytest.raises(CheckpointError, match=r"missing \['config'\]"):
        load_checkpoint(path)


def test_config_without_input_section(tmp_path, tiny_state) -> None:
    state = tiny_state()
    del state["config"]["input"]
    path = tmp_path / "noinput.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="no 'input' section"):
        load_checkpoint(path)


def test_config_that_does_not_build(tmp_path, tiny_state) -> None:
    state = tiny_state()
    state["config"]["model"]["head"] = "unet"
    path = tmp_path / "badhead.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="cannot build"):
        load_checkpoint(path)


def test_weights_of_another_model(tmp_path, tiny_state) -> None:
    state = tiny_state()
    state["config"]["model"]["head_channels"] = 32
    path = tmp_path / "mismatch.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_checkpoint(path)


# -- input channels (SPEC 1b) ------------------------------------------------------------

SIX = list(SIX_CHANNELS)


def test_checkpoint_carries_its_input_channels(tmp_path, tiny_state) -> None:
    path = tmp_path / "six.pt"
    torch.save(six_channel_state(tiny_state()), path)
    loaded = load_checkpoint(path)
    assert loaded.input_spec.input_channels == tuple(SIX), f"input channels {loaded.input_spec.input_channels}"
    assert loaded.input_spec.channel_count == 6, f"channel count {loaded.input_spec.channel_count}"


def test_checkpoint_without_channels_takes_rgb_sfg(tmp_path, tiny_state) -> None:
    state = tiny_state()
    state["config"]["input"].pop("input_channels", None)
    path = tmp_path / "old.pt"
    torch.save(state, path)
    assert load_checkpoint(path).input_spec.input_channels == ("rgb", "sfg"), "an old checkpoint must read as rgb, sfg"


def test_channels_that_the_network_does_not_take(tmp_path, tiny_state) -> None:
    """A 4-plane network whose input spec declares 6 planes is refused, whatever part of the config says 4."""
    state = tiny_state()
    state["config"]["input"]["input_channels"] = SIX
    path = tmp_path / "mismatch.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="two different input channel lists|takes 4 input planes"):
        load_checkpoint(path)


def test_declared_channels_from_either_section() -> None:
    assert declared_channels({}, {}) == ("rgb", "sfg"), "no declaration must mean rgb, sfg"
    assert declared_channels({"input_channels": SIX}, {}) == tuple(SIX), "model.input_channels ignored"
    assert declared_channels({}, {"input_channels": SIX}) == tuple(SIX), "input.input_channels ignored"
    assert declared_channels({"input_channels": SIX}, {"input_channels": SIX}) == tuple(SIX), "agreeing sections refused"


def test_declared_channels_must_agree() -> None:
    with pytest.raises(CheckpointError, match="two different input channel lists"):
        declared_channels({"input_channels": SIX}, {"input_channels": ["rgb", "sfg"]})
    with pytest.raises(CheckpointError, match="must be a list"):
        declared_channels({"input_channels": "rgb,sfg"}, {})
