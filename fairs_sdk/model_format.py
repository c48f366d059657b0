"""What an exported FAIRS model looks like from the outside: I/O names and metadata.

Export writes this and the runtime reads it; neither keeps its own copy.

The graph takes one input ``input``: (N, C, S, S) float32 holding the channels of
:attr:`InputSpec.input_channels` in order (SPEC 1b; C is
:attr:`InputSpec.channel_count`, S :attr:`InputSpec.input_size`): ``rgb`` as raw RGB
in 0..255 (normalisation happens inside the graph), the guidance planes in [0, 1].
It returns ``probabilities``: (N, 1, S, S) float32 in [0, 1] (the sigmoid is inside
the graph). N may be dynamic.

Metadata (ONNX ``metadata_props``, string to string) carries everything else; a
TensorRT engine carries the same dict in a JSON file beside it. Metadata written
before models declared their channels has no ``input_channels`` in its input spec:
such a model takes ``rgb, sfg`` (:data:`~fairs_sdk.config.DEFAULT_CHANNELS`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from fairs_sdk.config import InputSpec

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "FORMAT_VERSION", "ModelMetadata", "NotAFairsModelError"]

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
#: Bumped when the I/O contract above changes; the runtime refuses other versions.
FORMAT_VERSION = "1"

_PREFIX = "fairs."


class NotAFairsModelError(ValueError):
    """The file is a valid model but lacks FAIRS metadata, or has an unknown version."""


@dataclass(frozen=True)
class ModelMetadata:
    """Metadata stored inside an exported model.

    Attributes:
        input_spec: input size, relax, SFG parameters, threshold, normalisation,
            input channels.
        backbone: backbone name, e.g. "tf_efficientnet_lite0".
        head: "danet" or "psp".
        precision: "fp32", "fp16" or "int8".
        config_digest: sha256 of the training config the weights come from.
        format_version: :data:`FORMAT_VERSION` at export time.
        extra: free-form additions (training data, date, ...), JSON-able.
    """

    input_spec: InputSpec
    backbone: str
    head: str = "danet"
    precision: str = "fp32"
    config_digest: str = ""
    format_version: str = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props``."""
        return {
            _PREFIX + "format_version": self.format_version,
            _PREFIX + "input_spec": self.input_spec.to_json(),
            _PREFIX + "backbone": self.backbone,
            _PREFIX + "head": self.head,
            _PREFIX + "precision": self.precision,
            _PREFIX + "config_digest": self.config_digest,
            _PREFIX + "extra": json.dumps(self.extra, sort_keys=True),
        }

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str = "model") -> "ModelMetadata":
        """Parse :meth:`to_props` output; :class:`NotAFairsModelError` if it is not ours."""
        version = props.get(_PREFIX + "format_version")
        if version is None or _PREFIX + "input_spec" not in props:
            raise NotAFairsModelError(f"{source} is not a FAIRS model: it has no '{_PREFIX}*' metadata")
        if version != FORMAT_VERSION:
            raise NotAFairsModelError(
                f"{source} has FAIRS model format {version!r}; this fairs_sdk reads {FORMAT_VERSION!r}"
            )
        key = _PREFIX + "input_spec"
        try:
            spec = InputSpec.from_json(props[key])
            key = _PREFIX + "extra"
            extra = json.loads(props.get(key, "{}"))
            if not isinstance(extra, dict):
                raise ValueError(f"expected a JSON object, got {type(extra).__name__}")
        except (ValueError, TypeError) as err:
            raise NotAFairsModelError(f"{source} has malformed FAIRS metadata in '{key}': {err}") from None
        return cls(
            input_spec=spec,
            backbone=props.get(_PREFIX + "backbone", ""),
            head=props.get(_PREFIX + "head", ""),
            precision=props.get(_PREFIX + "precision", ""),
            config_digest=props.get(_PREFIX + "config_digest", ""),
            format_version=version,
            extra=extra,
        )
