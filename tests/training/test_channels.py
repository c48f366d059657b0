"""Plane layout of the declared input channels (SPEC 1b)."""

from __future__ import annotations

import pytest

from fairs_sdk.training.channels import channel_count, channel_slices, check_channels, guidance_planes


def test_slices_follow_the_declared_order() -> None:
    slices = channel_slices(["sfg", "rgb", "negative_clicks"])
    assert slices == {"sfg": slice(0, 1), "rgb": slice(1, 4), "negative_clicks": slice(4, 5)}, slices
    assert channel_count(["sfg", "rgb", "negative_clicks"]) == 5
    assert guidance_planes(["sfg", "rgb", "negative_clicks"]) == [0, 4], "guidance planes in declared order, RGB skipped"
    assert guidance_planes(("rgb", "sfg", "positive_clicks", "negative_clicks")) == [3, 4, 5]


@pytest.mark.parametrize(
    ("channels", "message"),
    [(("rgb", "sfg", "sfg"), "at most once"), (("sfg",), "'rgb' once"), (("rgb", "clicks"), "at most once"), ("rgb", "list of channel names")],
    ids=["duplicate", "no-rgb", "unknown", "string"],
)
def test_bad_channel_lists_are_refused(channels, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        check_channels(channels, "model.input_channels")
    assert "model.input_channels" in str(error.value), f"the error must name the setting: {error.value}"
