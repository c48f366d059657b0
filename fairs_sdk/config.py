"""Input conventions of a FAIRS model: the one source of truth for its constants.

Training stores an :class:`InputSpec` in its config and checkpoints, export writes
it into the ONNX metadata, and the runtime reads it back from there; nothing else
keeps its own copy of the input size, relax, SFG parameters or normalisation.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from fairs_sdk.sfg import BETA, KAPPA, SIGMA

__all__ = ["InputSpec", "CHANNEL_WIDTHS", "DEFAULT_CHANNELS"]

#: SPEC 1b: every input channel name a model may declare, and how many planes it takes.
CHANNEL_WIDTHS: dict[str, int] = {"rgb": 3, "sfg": 1, "positive_clicks": 1, "negative_clicks": 1}
#: The paper's model; what a model whose metadata lists no channels takes.
DEFAULT_CHANNELS: tuple[str, ...] = ("rgb", "sfg")


@dataclass(frozen=True)
class InputSpec:
    """How an image and its clicks become the network's input, and back.

    Attributes:
        input_size: side of the square canvas the crop is resized to, pixels.
        relax: margin added on every side of the points' box, image pixels (SPEC 2).
        beta, kappa, sigma: SFG parameters (SPEC 1).
        threshold: probability at or above which a pixel is object.
        mean, std: per-channel RGB normalisation on [0, 1] pixel values.
        input_channels: the network's input channels in order (SPEC 1b), names
            from :data:`CHANNEL_WIDTHS`; ``rgb`` exactly once.
    """

    input_size: int = 512
    relax: int = 50
    beta: float = BETA
    kappa: float = KAPPA
    sigma: float = SIGMA
    threshold: float = 0.5
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    input_channels: tuple[str, ...] = DEFAULT_CHANNELS

    def __post_init__(self) -> None:
        if self.input_size < 16:
            raise ValueError(f"input_size must be at least 16, got {self.input_size}")
        if self.relax < 0:
            raise ValueError(f"relax must be >= 0, got {self.relax}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values, std > 0: {self.mean}, {self.std}")
        names = tuple(self.input_channels)
        unknown = [n for n in names if n not in CHANNEL_WIDTHS]
        if unknown or names.count("rgb") != 1 or len(set(names)) != len(names):
            raise ValueError(
                f"input_channels must name each of {sorted(CHANNEL_WIDTHS)} at most once and 'rgb' once, got {list(names)}"
            )

    @property
    def channel_count(self) -> int:
        """C, the number of input planes: 3 for ``rgb`` and 1 for each other channel."""
        return sum(CHANNEL_WIDTHS[n] for n in self.input_channels)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "InputSpec":
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown InputSpec fields: {sorted(unknown)}")
        kwargs = {k: tuple(v) if k in ("mean", "std", "input_channels") else v for k, v in values.items()}
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "InputSpec":
        return cls.from_dict(json.loads(text))
