"""How each worker of ``fairs annotate`` builds its Segmenter: plain, picklable settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SegmenterOptions"]


@dataclass(frozen=True)
class SegmenterOptions:
    """The settings every worker builds the same :class:`fairs_sdk.Segmenter` from.

    Attributes:
        model: model file (str path); ``None`` for the bundled default model.
        backend: "auto", "onnxruntime" or "tensorrt".
        providers: ONNX Runtime providers in order; ``None`` for all installed.
        threads: ONNX Runtime intra-op threads per worker; ``None`` for its default
            (all cores). Results do not depend on it.
        threshold: mask threshold; ``None`` for the model's own.
    """

    model: str | None = None
    backend: str = "auto"
    providers: tuple[str, ...] | None = None
    threads: int | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")

    def build(self):
        """A new :class:`fairs_sdk.Segmenter` with these settings."""
        from fairs_sdk import Segmenter

        session_options = None
        if self.threads is not None:
            from fairs_sdk.extras import import_onnxruntime

            session_options = import_onnxruntime().SessionOptions()
            session_options.intra_op_num_threads = self.threads
        return Segmenter(self.model, backend=self.backend, providers=self.providers, session_options=session_options)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for Ray's constructor arguments)."""
        d = asdict(self)
        d["providers"] = None if self.providers is None else list(self.providers)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SegmenterOptions":
        return cls(**{**d, "providers": None if d.get("providers") is None else tuple(d["providers"])})
