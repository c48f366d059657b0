"""Where each declared input channel sits in the (C, S, S) network input (SPEC 1b).

The names and widths come from :data:`fairs_sdk.config.CHANNEL_WIDTHS`; the order is the
model's ``input_channels`` (its :class:`~fairs_sdk.config.InputSpec`). Training code
asks this module for plane indices instead of assuming a channel count.
"""

from __future__ import annotations

from typing import Sequence

from fairs_sdk.config import CHANNEL_WIDTHS, InputSpec

__all__ = ["check_channels", "channel_count", "channel_slices", "guidance_planes"]


def check_channels(channels: Sequence[str], name: str = "input_channels") -> tuple[str, ...]:
    """``channels`` as a tuple, checked by the rule of :class:`InputSpec` (known names, each at
    most once, ``rgb`` exactly once); ValueError naming ``name`` otherwise."""
    if isinstance(channels, str):
        raise ValueError(f"{name} must be a list of channel names, got the string {channels!r}")
    try:
        return tuple(InputSpec(input_channels=tuple(channels)).input_channels)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


def channel_count(channels: Sequence[str]) -> int:
    """C, the number of planes of ``channels``: 3 for ``rgb``, 1 for each other channel."""
    return sum(CHANNEL_WIDTHS[name] for name in check_channels(channels))


def channel_slices(channels: Sequence[str]) -> dict[str, slice]:
    """{name: its planes} in the input of ``channels``; e.g. rgb, sfg -> {rgb: 0:3, sfg: 3:4}."""
    slices, start = {}, 0
    for channel in check_channels(channels):
        slices[channel] = slice(start, start + CHANNEL_WIDTHS[channel])
        start += CHANNEL_WIDTHS[channel]
    return slices


def guidance_planes(channels: Sequence[str]) -> list[int]:
    """Indices of the non-RGB planes, in declared order: where
    :meth:`fairs_sdk.encoder.InputEncoder.guidance` output goes."""
    return [s.start for name, s in channel_slices(channels).items() if name != "rgb"]
