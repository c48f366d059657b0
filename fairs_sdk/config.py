"""Input conventions of a FAIRS model: the one source of truth for its constants.

Training stores an :class:`InputSpec` in its config and checkpoints, export writes
it into the ONNX metadata, and the runtime reads it back from there; nothing else
keeps its own copy of the input size, relax, SFG parameters or normalisation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fairs_sdk.sfg import BETA, KAPPA, SIGMA

__all__ = ["InputSpec", "CHANNEL_WIDTHS", "DEFAULT_CHANNELS", "CROP_SIDES", "PARTIAL_RELAX_SIDES"]

#: SPEC 1b: every input channel name a model may declare, and how many planes it takes.
CHANNEL_WIDTHS: dict[str, int] = {"rgb": 3, "sfg": 1, "positive_clicks": 1, "negative_clicks": 1}
#: The paper's model; what a model whose metadata lists no channels takes.
DEFAULT_CHANNELS: tuple[str, ...] = ("rgb", "sfg")
#: The sides of a crop box, in the order per-side margins are given.
CROP_SIDES: tuple[str, ...] = ("left", "top", "right", "bottom")
#: Which sides of the crop ``partial_relax`` widens: every side, or only the sides at a
#: corner of the points' box (:func:`fairs_sdk.crop.corner_sides`).
PARTIAL_RELAX_SIDES: tuple[str, ...] = ("all", "corner")


def _is_number(value: Any) -> bool:
    """A real number that is not a bool (``True`` is an int in Python)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(name: str, value: Any, minimum: int) -> int:
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(name: str, value: Any, rule: str, ok: Callable[[float], bool]) -> float:
    if not _is_number(value) or not math.isfinite(value) or not ok(float(value)):
        raise ValueError(f"{name} must be a finite number {rule}, got {value!r}")
    return float(value)


def _triple(name: str, value: Any, rule: str, ok: Callable[[float], bool]) -> tuple[float, float, float]:
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or len(value) != 3:
        raise ValueError(f"{name} must be 3 numbers (R, G, B), got {value!r}")
    if not all(_is_number(v) and math.isfinite(v) and ok(float(v)) for v in value):
        raise ValueError(f"{name} must be 3 finite numbers, each {rule}, got {value!r}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


@dataclass(frozen=True)
class InputSpec:
    """How an image and its clicks become the network's input, and back.

    Attributes:
        input_size: side of the square canvas the crop is resized to, pixels.
        relax: margin added on every side of the points' box, image pixels (SPEC 2).
        partial_relax: for fewer than four extreme points, the margin grows by this
            fraction of the longer side of the points' box (0: ``relax`` alone). Their
            box then misses a side of the object (three of DAVIS-345's four points hold
            83 % of it), by more the larger the object.
        partial_relax_sides: where ``partial_relax`` goes: ``"all"`` sides, or only the
            ``"corner"`` sides, the two sides of the point that touches two sides of the
            points' box (with three points the open side is one of them).
        beta, kappa, sigma: SFG parameters (SPEC 1).
        threshold: probability at or above which a pixel is object.
        mean, std: per-channel RGB normalisation on [0, 1] pixel values.
        input_channels: the network's input channels in order (SPEC 1b), names
            from :data:`CHANNEL_WIDTHS`; ``rgb`` exactly once.
    """

    input_size: int = 512
    relax: int = 50
    partial_relax: float = 0.0
    partial_relax_sides: str = "all"
    beta: float = BETA
    kappa: float = KAPPA
    sigma: float = SIGMA
    threshold: float = 0.5
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    input_channels: tuple[str, ...] = DEFAULT_CHANNELS

    def __post_init__(self) -> None:
        # Values arrive from users, YAML configs and model metadata (JSON): check the
        # types too, so that a bool or a string never passes for a number.
        set_ = object.__setattr__  # frozen: normalise the stored types once, here
        set_(self, "input_size", _integer("input_size", self.input_size, minimum=16))
        set_(self, "relax", _integer("relax", self.relax, minimum=0))
        set_(self, "partial_relax", _real("partial_relax", self.partial_relax, ">= 0", lambda v: v >= 0))
        if self.partial_relax_sides not in PARTIAL_RELAX_SIDES:
            raise ValueError(f"partial_relax_sides must be one of {list(PARTIAL_RELAX_SIDES)}, got {self.partial_relax_sides!r}")
        set_(self, "beta", _real("beta", self.beta, "> 0", lambda v: v > 0))
        set_(self, "kappa", _real("kappa", self.kappa, ">= 1 (a Minkowski norm order)", lambda v: v >= 1))
        set_(self, "sigma", _real("sigma", self.sigma, "> 0", lambda v: v > 0))
        set_(self, "threshold", _real("threshold", self.threshold, "in (0, 1)", lambda v: 0 < v < 1))
        set_(self, "mean", _triple("mean", self.mean, "finite", lambda v: True))
        set_(self, "std", _triple("std", self.std, "> 0", lambda v: v > 0))
        if isinstance(self.input_channels, str):
            raise ValueError(f"input_channels must be a list of channel names, got the string {self.input_channels!r}")
        names = tuple(self.input_channels)
        unknown = [n for n in names if not isinstance(n, str) or n not in CHANNEL_WIDTHS]
        if unknown or names.count("rgb") != 1 or len(set(names)) != len(names):
            raise ValueError(
                f"input_channels must name each of {sorted(CHANNEL_WIDTHS)} at most once and 'rgb' once, got {list(names)}"
            )
        set_(self, "input_channels", names)

    @property
    def channel_count(self) -> int:
        """C, the number of input planes: 3 for ``rgb`` and 1 for each other channel."""
        return sum(CHANNEL_WIDTHS[n] for n in self.input_channels)

    def margins_for(
        self, extreme_count: int, box_side: float, corner: frozenset[str] = frozenset()
    ) -> tuple[int, int, int, int]:
        """The crop's margins, image px, as (left, top, right, bottom), for ``extreme_count``
        extreme points whose box (with any positive clicks) has ``box_side`` px as its longer
        side and ``corner`` as its corner sides (:func:`fairs_sdk.crop.corner_sides`)."""
        extra = round(self.partial_relax * box_side) if extreme_count < 4 else 0
        wide = CROP_SIDES if self.partial_relax_sides == "all" else corner
        return tuple(self.relax + (extra if side in wide else 0) for side in CROP_SIDES)  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists); ``partial_relax`` only when not 0 and
        ``partial_relax_sides`` only when not ``"all"``, so that a model without them stays
        readable by runtimes that predate them."""
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        if not values["partial_relax"]:
            del values["partial_relax"]
        if values["partial_relax_sides"] == "all":
            del values["partial_relax_sides"]
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "InputSpec":
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take defaults."""
        if not isinstance(values, dict):
            raise ValueError(f"an InputSpec is a JSON object of fields, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown InputSpec fields: {sorted(unknown)}")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "InputSpec":
        return cls.from_dict(json.loads(text))
