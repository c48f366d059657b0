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

A two-part model (a bundle) is three files: the combined model above, ``X.onnx``,
and beside it its two parts, whose metadata ``extra["part"]`` names them:

- the image encoder (``image_encoder``), run once per crop on its RGB planes: input
  ``rgb`` (N, 3, S, S) raw 0..255, outputs ``features`` (N, F, S/4, S/4) and
  ``saliency`` (N, K, S, S) (F and K are the graph's: 128 and 1 for U2-Netp, twice
  that for a flip-averaged model, whose encoder also encodes the mirrored crop);
- the decoder (``decoder``), run once per click: inputs ``features``, ``saliency``
  and ``guidance`` (N, G, S, S), the C - 3 guidance planes of ``input_channels`` in
  order, output ``probabilities`` (N, 1, S, S).

Every input of a model and of its parts is float32 (:data:`IO_ELEMENT_TYPE`): an fp16 or
int8 model keeps float32 I/O. :func:`check_input_types` refuses any other at load.

The combined file's ``extra["parts"]`` maps each part's name to its file, relative
to the combined file's folder, and ``extra["part_sha256"]`` (optional) to its sha256,
so that a stale part is refused rather than run. All three carry the same input spec.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fairs_sdk.config import InputSpec

__all__ = [
    "INPUT_NAME",
    "OUTPUT_NAME",
    "FORMAT_VERSION",
    "IMAGE_ENCODER",
    "DECODER",
    "PART_INPUTS",
    "PART_OUTPUTS",
    "IO_ELEMENT_TYPE",
    "ModelMetadata",
    "NotAFairsModelError",
    "element_type_name",
    "check_input_types",
]

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
#: Bumped when the I/O contract above changes; the runtime refuses other versions.
FORMAT_VERSION = "1"

_PREFIX = "fairs."

#: Names of the two parts of a two-part model, as in ``extra["part"]`` and ``extra["parts"]``.
IMAGE_ENCODER = "image_encoder"
DECODER = "decoder"
#: Each part's input and output names, in order.
PART_INPUTS: dict[str, tuple[str, ...]] = {IMAGE_ENCODER: ("rgb",), DECODER: ("features", "saliency", "guidance")}
PART_OUTPUTS: dict[str, tuple[str, ...]] = {IMAGE_ENCODER: ("features", "saliency"), DECODER: (OUTPUT_NAME,)}


#: Element type (NumPy name) of every input of a FAIRS model and of its parts.
IO_ELEMENT_TYPE = "float32"

#: ONNX Runtime's ``NodeArg.type`` names -> NumPy names.
_ORT_TYPE_NAMES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


class NotAFairsModelError(ValueError):
    """The file is a valid model but lacks FAIRS metadata, has an unknown version, or I/O of another kind."""


def element_type_name(type_name: str) -> str:
    """An element type as NumPy names it: ``"tensor(float)"`` (ONNX Runtime) -> ``"float32"``;
    NumPy names (``"float16"``) pass unchanged."""
    return _ORT_TYPE_NAMES.get(type_name, type_name)


def check_input_types(source: str | os.PathLike, types: Mapping[str, str]) -> None:
    """Refuse a model whose inputs are not all :data:`IO_ELEMENT_TYPE` (float32).

    ``types`` maps each input's name to its element type, as ONNX Runtime
    (``"tensor(int64)"``) or NumPy (``"int64"``) names it. An int64 or float16 input
    would otherwise fail at the model's first run, far from the file's name.

    Raises:
        NotAFairsModelError: naming ``source``, each wrong input and its type.
    """
    wrong = {name: element_type_name(kind) for name, kind in types.items() if element_type_name(kind) != IO_ELEMENT_TYPE}
    if wrong:
        listed = ", ".join(f"'{name}' is {kind}" for name, kind in wrong.items())
        raise NotAFairsModelError(
            f"{source} is not a FAIRS model: input {listed}; FAIRS models take {IO_ELEMENT_TYPE} inputs "
            "(fp16 and int8 exports keep float32 I/O)"
        )


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
        meta = cls(
            input_spec=spec,
            backbone=props.get(_PREFIX + "backbone", ""),
            head=props.get(_PREFIX + "head", ""),
            precision=props.get(_PREFIX + "precision", ""),
            config_digest=props.get(_PREFIX + "config_digest", ""),
            format_version=version,
            extra=extra,
        )
        try:
            _ = meta.parts, meta.part_sha256  # the two-part entries, checked once, where the metadata enters
        except ValueError as err:
            raise NotAFairsModelError(f"{source} has malformed FAIRS metadata in '{_PREFIX}extra': {err}") from None
        return meta

    @property
    def part(self) -> str | None:
        """What the file is in a two-part model: "image_encoder", "decoder", "combined"; None for a plain model."""
        part = self.extra.get("part")
        return part if isinstance(part, str) else None

    @property
    def parts(self) -> dict[str, str] | None:
        """A combined file's parts: {"image_encoder": file, "decoder": file}, relative to its folder; None if none.

        Raises ValueError when ``extra["parts"]`` is not such a mapping.
        """
        parts = self.extra.get("parts")
        if parts is None:
            return None
        names = {IMAGE_ENCODER, DECODER}
        if not isinstance(parts, dict) or set(parts) != names:
            raise ValueError(f"'parts' must map exactly {sorted(names)} to file names, got {parts!r}")
        for name, file in parts.items():
            if not isinstance(file, str) or not file or Path(file).is_absolute():
                raise ValueError(f"'parts' must give {name!r} as a file name relative to the model, got {file!r}")
        return dict(parts)

    @property
    def part_sha256(self) -> dict[str, str]:
        """sha256 hex digests of the parts named in :attr:`parts`, where the export recorded them."""
        digests = self.extra.get("part_sha256", {})
        if not isinstance(digests, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in digests.items()
        ):
            raise ValueError(f"'part_sha256' must map part names to sha256 hex digests, got {digests!r}")
        return dict(digests)

    def part_paths(self, model_path: str | os.PathLike) -> dict[str, Path] | None:
        """:attr:`parts` as paths beside ``model_path`` (the combined file); None for a model without parts."""
        parts = self.parts
        if parts is None:
            return None
        folder = Path(model_path).parent
        return {name: folder / file for name, file in parts.items()}
