"""Inference backends: run an exported FAIRS model on a prepared batch.

A backend loads one model file, reads its :class:`~fairs_sdk.model_format.ModelMetadata`
and maps a batch ``(N, C, S, S)`` float32 (the channels its metadata declares, see
:mod:`fairs_sdk.model_format`) to probabilities ``(N, 1, S, S)`` float32 in [0, 1].
At load it checks that the graph (or engine) takes the C and S of its metadata; at
every run, that the probabilities are finite and within [0, 1] (:func:`check_output`,
:class:`ModelOutputError` otherwise, never a silent wrong mask).
``run`` is safe to call from several threads at once.

- :class:`OnnxRuntimeBackend`: an ONNX file on ONNX Runtime, with execution providers
  tried in the order TensorRT, CUDA, CPU (of those installed). The providers the
  session actually uses are in ``providers``. Asking for a provider explicitly that
  is not installed or does not load is an error (:class:`ProviderError`), never a
  silent fall back to CPU.
- :class:`TensorRTBackend`: a serialized TensorRT engine ``X.engine`` run by
  :mod:`fairs_sdk.trt`, or an ONNX file whose engine comes from the engine cache.
  Its metadata is the same props dict as an ONNX model's ``metadata_props``, in the
  JSON sidecar ``X.json`` that :class:`fairs_sdk.trt.EngineCache` writes
  (:func:`engine_metadata_path`). Not tested in CI (no GPU, no TensorRT there).

The parts of a two-part model (:mod:`fairs_sdk.model_format`: the image encoder and the
decoder) have named inputs and outputs of their own; :func:`load_part` opens one as a
:class:`PartBackend` (:class:`OnnxRuntimePart` or :class:`TensorRTPart`), whose ``run``
maps a dict of named (N, ...) float32 arrays to a dict of named outputs. At load it
checks the part's name and I/O names and the dimensions its metadata fixes; at every
run, that the encoder's features and saliency logits are finite and the decoder's
probabilities finite and within [0, 1].
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, Union

import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.config import CHANNEL_WIDTHS
from fairs_sdk.model_format import (
    INPUT_NAME,
    OUTPUT_NAME,
    PART_INPUTS,
    PART_OUTPUTS,
    ModelMetadata,
    NotAFairsModelError,
    check_input_types,
)
from fairs_sdk.trt import engine_metadata_path, read_engine_metadata  # the engine sidecar's one reader

__all__ = [
    "Backend",
    "PartBackend",
    "ModelLoadError",
    "ModelOutputError",
    "ProviderError",
    "check_output",
    "PROBABILITY_TOLERANCE",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "OnnxRuntimePart",
    "TensorRTPart",
    "PROVIDER_PREFERENCE",
    "ENGINE_SUFFIXES",
    "engine_metadata_path",
    "read_engine_metadata",
    "DEFAULT_ENGINE_CACHE",
    "load_backend",
    "load_part",
    "part_shapes",
]

PathLike = Union[str, os.PathLike]

#: ONNX Runtime execution providers the runtime uses, fastest first.
PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_PROVIDER_ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
#: File suffixes taken for serialized TensorRT engines by ``backend="auto"``.
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class ModelLoadError(ValueError):
    """The model file exists but cannot be read as a model (truncated, corrupt, wrong kind)."""


class ProviderError(RuntimeError):
    """An execution provider that was asked for is not installed or failed to load."""


class ModelOutputError(RuntimeError):
    """A model run gave non-finite values, or probabilities outside [0, 1] (a broken or foreign model file)."""


#: How far outside [0, 1] a probability may stray (rounding in fp16 engines) before it is an error.
PROBABILITY_TOLERANCE = 1e-3
#: Outputs that are probabilities; every other output (encoder features, saliency logits) need only be finite.
_PROBABILITY_OUTPUTS = frozenset({OUTPUT_NAME})


def check_output(name: str, values: np.ndarray, source: object) -> np.ndarray:
    """``values`` unchanged if finite and, for :data:`OUTPUT_NAME`, within [0, 1] (+- :data:`PROBABILITY_TOLERANCE`).

    Raises:
        ModelOutputError: naming ``source`` (the model file), the output and what is wrong, so a
            broken model never turns into a silent wrong mask.
    """
    if values.size == 0:
        return values
    probabilities = name in _PROBABILITY_OUTPUTS
    if probabilities:
        low, high = float(values.min()), float(values.max())  # a NaN propagates into both
        if -PROBABILITY_TOLERANCE <= low and high <= 1.0 + PROBABILITY_TOLERANCE:
            return values
    elif np.isfinite(values).all():
        return values
    finite = np.isfinite(values)
    problems = []
    if not finite.all():
        problems.append(f"{values.size - int(finite.sum())} of {values.size} values are NaN or infinite")
    if probabilities and finite.any():
        low, high = float(values[finite].min()), float(values[finite].max())
        if low < -PROBABILITY_TOLERANCE or high > 1.0 + PROBABILITY_TOLERANCE:
            problems.append(f"finite values span [{low:.4g}, {high:.4g}], not [0, 1]")
    what = "probabilities in [0, 1]" if probabilities else "finite"
    raise ModelOutputError(
        f"{source}: output '{name}' is not {what}: {'; '.join(problems)}; "
        "the model file is broken or not a FAIRS model (re-export it)"
    )


class Backend(Protocol):
    """What :class:`~fairs_sdk.Segmenter` needs from an inference backend."""

    #: "onnxruntime" or "tensorrt".
    name: str
    #: What the model file says about its input.
    metadata: ModelMetadata
    #: Execution providers (ONNX Runtime) or devices actually in use, fastest first.
    providers: tuple[str, ...]
    #: Largest batch one ``run`` call takes; ``None`` for no limit.
    max_batch: int | None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 -> (N, 1, S, S) float32 probabilities. Thread-safe."""
        ...


#: A tensor's shape as a loaded graph declares it: an int per fixed dimension, None for a dynamic one.
Shape = tuple[Union[int, None], ...]


class PartBackend(Protocol):
    """What :class:`~fairs_sdk.Segmenter` needs from one part of a two-part model."""

    #: "onnxruntime" or "tensorrt".
    name: str
    #: :data:`~fairs_sdk.model_format.IMAGE_ENCODER` or :data:`~fairs_sdk.model_format.DECODER`.
    part: str
    metadata: ModelMetadata
    providers: tuple[str, ...]
    max_batch: int | None
    #: Declared shapes of the inputs and outputs, by name (None: dynamic).
    input_shapes: dict[str, Shape]
    output_shapes: dict[str, Shape]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named (N, ...) float32 inputs -> named (N, ...) float32 outputs. Thread-safe."""
        ...


def _existing_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"model file not found: {p}")
    if not p.is_file():
        raise ModelLoadError(f"model path is not a file: {p}")
    if p.stat().st_size == 0:
        raise ModelLoadError(f"model file is empty: {p}")
    return p


def _normalise_providers(providers: Sequence[str]) -> list[str]:
    if isinstance(providers, str):
        providers = [providers]
    return [_PROVIDER_ALIASES.get(p.lower(), p) for p in providers]


def _check_io(path: Path, inputs, outputs, spec: InputSpec) -> None:
    """Refuse graphs whose inputs/outputs differ from :mod:`fairs_sdk.model_format` and ``spec``.

    The input must be (N, C, S, S) with C = ``spec.channel_count`` and S =
    ``spec.input_size``; a dimension the graph leaves dynamic is not checked.
    """
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        names = [i.name for i in inputs]
        raise NotAFairsModelError(f"{path} is not a FAIRS model: inputs {names}, expected ['{INPUT_NAME}']")
    if OUTPUT_NAME not in [o.name for o in outputs]:
        names = [o.name for o in outputs]
        raise NotAFairsModelError(f"{path} is not a FAIRS model: outputs {names}, expected '{OUTPUT_NAME}'")
    check_input_types(path, {i.name: i.type for i in inputs})
    shape = list(inputs[0].shape)
    c, s = spec.channel_count, spec.input_size
    declared = f"its metadata declares (N, {c}, {s}, {s}): channels {list(spec.input_channels)} at {s} x {s}"
    if len(shape) != 4:
        raise NotAFairsModelError(f"{path} input '{INPUT_NAME}' has shape {shape}; {declared}")
    channels = shape[1]
    if isinstance(channels, int) and channels != c:
        raise NotAFairsModelError(
            f"{path} input '{INPUT_NAME}' takes {channels} channels (shape {shape}) but {declared}; "
            "the graph and its metadata disagree (re-export the model)"
        )
    if any(isinstance(d, int) and d != s for d in shape[2:]):
        raise NotAFairsModelError(f"{path} input '{INPUT_NAME}' has shape {shape}; {declared}")


def _shape(dims) -> Shape:
    """A declared shape with every dimension that is not a fixed int as None."""
    return tuple(d if isinstance(d, int) and not isinstance(d, bool) and d >= 0 else None for d in dims)


def part_shapes(part: str, spec: InputSpec) -> dict[str, Shape]:
    """The dimensions the metadata fixes for each input and output of ``part`` (None: the graph's own).

    ``rgb`` (N, 3, S, S), ``probabilities`` (N, 1, S, S), ``guidance`` (N, G, S, S) with
    G the guidance planes of ``spec.input_channels`` (C - 3), ``features`` (N, F, S/4, S/4)
    and ``saliency`` (N, K, S, S) with F and K the graph's.
    """
    s = spec.input_size
    guidance = spec.channel_count - CHANNEL_WIDTHS["rgb"]
    known: dict[str, Shape] = {
        "rgb": (None, CHANNEL_WIDTHS["rgb"], s, s),
        "features": (None, None, s // 4, s // 4),
        "saliency": (None, None, s, s),
        "guidance": (None, guidance, s, s),
        OUTPUT_NAME: (None, 1, s, s),
    }
    return {name: known[name] for name in (*PART_INPUTS[part], *PART_OUTPUTS[part])}


def _check_part(path: Path, part: str, metadata: ModelMetadata, inputs: dict[str, Shape],
                outputs: dict[str, Shape]) -> None:
    """Refuse a file that is not ``part`` of a two-part model, or whose I/O differs from :func:`part_shapes`."""
    if metadata.part != part:
        raise NotAFairsModelError(
            f"{path} is not the {part} of a two-part FAIRS model: its metadata says part {metadata.part!r}"
        )
    if tuple(inputs) != PART_INPUTS[part] or not set(PART_OUTPUTS[part]) <= set(outputs):
        raise NotAFairsModelError(
            f"{path}: the {part} takes {list(inputs)} and gives {list(outputs)}; expected inputs "
            f"{list(PART_INPUTS[part])} and outputs {list(PART_OUTPUTS[part])}"
        )
    spec = metadata.input_spec
    for name, want in part_shapes(part, spec).items():
        got = inputs.get(name, outputs.get(name))
        if len(got) != len(want) or any(g is not None and w is not None and g != w for g, w in zip(got, want)):
            shown = tuple("N" if i == 0 else "?" if w is None else w for i, w in enumerate(want))
            raise NotAFairsModelError(
                f"{path}: {part} tensor {name!r} has shape {got}, but the metadata (input size "
                f"{spec.input_size}, channels {list(spec.input_channels)}) makes it {shown}"
            )


#: Where TensorRT engines built from ONNX files are kept (``backend="tensorrt"``, and
#: ONNX Runtime's TensorRT provider in its ``onnxruntime`` subfolder); override with
#: the ``FAIRS_ENGINE_CACHE`` environment variable or ``engine_cache=``.
DEFAULT_ENGINE_CACHE = Path(os.environ.get("FAIRS_ENGINE_CACHE", Path.home() / ".cache" / "fairs_sdk" / "engines"))


def _provider_entries(requested: Sequence[str], engine_cache: PathLike | None) -> list:
    """ONNX Runtime's ``providers`` argument: TensorRT gets a persistent engine and timing cache.

    Without one, ONNX Runtime's TensorRT provider rebuilds its engine (minutes) in
    every new process.
    """
    entries: list = []
    for name in requested:
        if name == "TensorrtExecutionProvider":
            folder = Path(engine_cache or DEFAULT_ENGINE_CACHE) / "onnxruntime"
            folder.mkdir(parents=True, exist_ok=True)
            entries.append((name, {
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(folder),
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": str(folder),
            }))
        else:
            entries.append(name)
    return entries


def _ort_session(path: Path, providers: Sequence[str] | None, session_options, engine_cache: PathLike | None):
    """An ONNX Runtime session of ``path`` and the providers it uses (see :class:`OnnxRuntimeBackend`)."""
    from fairs_sdk.extras import import_onnxruntime

    ort = import_onnxruntime()  # no runtime installed: MissingExtraError naming the cpu and gpu extras

    installed = ort.get_available_providers()
    if providers is None:
        requested = [p for p in PROVIDER_PREFERENCE if p in installed]
        explicit = False
    else:
        requested = _normalise_providers(providers)
        missing = [p for p in requested if p not in installed]
        if missing:
            raise ProviderError(
                f"ONNX Runtime execution provider(s) {missing} not installed; installed: {installed}"
            )
        explicit = True
    if not requested:
        raise ProviderError(f"none of {list(PROVIDER_PREFERENCE)} is installed; installed: {installed}")
    try:
        session = ort.InferenceSession(
            str(path), sess_options=session_options, providers=_provider_entries(requested, engine_cache)
        )
    except Exception as err:  # ORT raises its own pybind types: InvalidProtobuf, Fail, ...
        # ONNX Runtime >= 1.24.3 (the extras' floor) refuses external data outside the model's folder.
        hint = ("its external data must be files inside the model's folder" if "external data" in str(err).lower()
                else "truncated or not an ONNX model?")
        raise ModelLoadError(f"cannot load {path} with ONNX Runtime ({hint}): {err}") from None
    used = tuple(session.get_providers())
    failed = [p for p in requested if p not in used]
    if failed and explicit:
        raise ProviderError(
            f"ONNX Runtime execution provider(s) {failed} failed to load for {path} "
            f"(session fell back to {list(used)}); check the CUDA/TensorRT libraries"
        )
    if failed:
        warnings.warn(f"execution provider(s) {failed} failed to load; using {list(used)}", RuntimeWarning, stacklevel=4)
    return session, used


class OnnxRuntimeBackend:
    """An exported ``.onnx`` FAIRS model on ONNX Runtime.

    Args:
        path: the ``.onnx`` file.
        providers: execution providers to use, in order (full names such as
            "CUDAExecutionProvider" or the short "tensorrt", "cuda", "cpu").
            ``None``: every installed one of :data:`PROVIDER_PREFERENCE`; one of
            those failing to load then gives a warning. Named explicitly, a provider
            that is not installed or fails to load raises :class:`ProviderError`.
        session_options: an ``onnxruntime.SessionOptions`` (threads, logging, ...).
        engine_cache: folder for the TensorRT provider's engines (default
            :data:`DEFAULT_ENGINE_CACHE`), so that only the first session builds one.
    """

    name = "onnxruntime"
    max_batch: int | None = None

    def __init__(
        self,
        path: PathLike,
        providers: Sequence[str] | None = None,
        session_options=None,
        engine_cache: PathLike | None = None,
    ) -> None:
        self.path = _existing_file(path)
        self._session, self.providers = _ort_session(self.path, providers, session_options, engine_cache)
        props = self._session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(props, source=str(self.path))
        _check_io(self.path, self._session.get_inputs(), self._session.get_outputs(), self.metadata.input_spec)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 -> (N, 1, S, S) float32 probabilities. Thread-safe.

        Raises:
            ModelOutputError: the output is not finite or not within [0, 1].
        """
        return check_output(OUTPUT_NAME, self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0], self.path)


class OnnxRuntimePart:
    """One part of a two-part model (an ``.onnx`` file) on ONNX Runtime.

    Args:
        path: the part's ``.onnx`` file.
        part: :data:`~fairs_sdk.model_format.IMAGE_ENCODER` or :data:`~fairs_sdk.model_format.DECODER`.
        providers, session_options, engine_cache: as in :class:`OnnxRuntimeBackend`.
    """

    name = "onnxruntime"
    max_batch: int | None = None

    def __init__(
        self,
        path: PathLike,
        part: str,
        providers: Sequence[str] | None = None,
        session_options=None,
        engine_cache: PathLike | None = None,
    ) -> None:
        _check_part_name(part)
        self.path = _existing_file(path)
        self.part = part
        self._session, self.providers = _ort_session(self.path, providers, session_options, engine_cache)
        props = self._session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(props, source=str(self.path))
        self.input_shapes = {i.name: _shape(i.shape) for i in self._session.get_inputs()}
        self.output_shapes = {o.name: _shape(o.shape) for o in self._session.get_outputs()}
        _check_part(self.path, part, self.metadata, self.input_shapes, self.output_shapes)
        check_input_types(self.path, {i.name: i.type for i in self._session.get_inputs()})
        self._outputs = list(PART_OUTPUTS[part])

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named (N, ...) float32 inputs -> the part's named outputs. Thread-safe.

        Raises:
            ModelOutputError: an output is not finite, or the decoder's probabilities are not within [0, 1].
        """
        outputs = self._session.run(self._outputs, dict(feeds))
        return {name: check_output(name, values, self.path) for name, values in zip(self._outputs, outputs)}


def _load_engine(path: Path, engine_cache: PathLike | None, precision: str, max_batch: int):
    """(ONNX path or None, engine path, metadata, ``trt.TensorRTEngine``) of an engine file, or
    of an ``.onnx`` file built once into the engine cache; load errors as the backends raise them."""
    onnx_path = None
    try:
        from fairs_sdk import trt

        if path.suffix.lower() == ".onnx":
            onnx_path = path
            cache = trt.EngineCache(engine_cache or DEFAULT_ENGINE_CACHE)
            path = cache.get_or_build(path, precision=precision, max_batch=max_batch, opt_batch=1)
        return onnx_path, path, read_engine_metadata(path), trt.TensorRTEngine(path)
    except ImportError as err:
        raise ProviderError(f"the TensorRT backend needs the 'gpu' extra (tensorrt, cuda-python): {err}") from None
    except NotAFairsModelError:
        raise
    except (RuntimeError, ValueError, OSError) as err:
        raise ModelLoadError(f"cannot load TensorRT engine {path}: {err}") from None


class TensorRTBackend:
    """A serialized TensorRT engine run by :class:`fairs_sdk.trt.TensorRTEngine`.

    Needs the ``gpu`` extra (tensorrt, cuda-python) and an NVIDIA GPU;
    :mod:`fairs_sdk.trt` is imported only here. ``path`` is an engine file with its
    JSON sidecar, or an ``.onnx`` file: its engine then comes from the
    :class:`fairs_sdk.trt.EngineCache` in ``engine_cache`` (built there on the first
    use on this GPU and TensorRT version, which takes minutes). The engine runner
    holds one execution context and one set of device buffers, so ``run`` is
    serialised by a lock.
    """

    name = "tensorrt"

    def __init__(
        self,
        path: PathLike,
        engine_cache: PathLike | None = None,
        precision: str = "fp16",
        max_batch: int = 8,
    ) -> None:
        path = _existing_file(path)
        self.onnx_path, self.path, self.metadata, self._engine = _load_engine(path, engine_cache, precision, max_batch)
        if self._engine.size is None:
            raise NotAFairsModelError(
                f"{path} takes {list(self._engine.input_names)}, not a FAIRS model's '{INPUT_NAME}' "
                f"(a part of a two-part model? load its combined file)"
            )
        spec = self.metadata.input_spec
        size = spec.input_size
        if self._engine.size != size:
            raise NotAFairsModelError(
                f"{path} takes {self._engine.size} x {self._engine.size} input; its metadata says {size}"
            )
        channels = self._engine.channels
        if channels != spec.channel_count:
            raise NotAFairsModelError(
                f"{path} takes {channels} input channels; its metadata declares {spec.channel_count} "
                f"({list(spec.input_channels)})"
            )
        self.providers = ("TensorRT",)
        self.max_batch = getattr(self._engine, "max_batch", None)
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 -> (N, 1, S, S) float32 probabilities; one call at a time.

        Raises:
            ModelOutputError: the output is not finite or not within [0, 1].
        """
        with self._lock:
            probabilities = self._engine(batch)
        return check_output(OUTPUT_NAME, probabilities, self.path)


class TensorRTPart:
    """One part of a two-part model as a TensorRT engine (see :class:`TensorRTBackend`).

    ``path`` is the part's ``.onnx`` file, built into an engine in ``engine_cache`` by
    the same :class:`fairs_sdk.trt.EngineCache` and builder as any model, or an engine
    file with its sidecar. ``run`` is serialised by a lock.
    """

    name = "tensorrt"

    def __init__(
        self,
        path: PathLike,
        part: str,
        engine_cache: PathLike | None = None,
        precision: str = "fp16",
        max_batch: int = 8,
    ) -> None:
        _check_part_name(part)
        self.part = part
        path = _existing_file(path)
        self.onnx_path, self.path, self.metadata, self._engine = _load_engine(path, engine_cache, precision, max_batch)
        self.input_shapes = {n: self._engine.shapes[n] for n in self._engine.input_names}
        self.output_shapes = {n: self._engine.shapes[n] for n in self._engine.output_names}
        _check_part(path, part, self.metadata, self.input_shapes, self.output_shapes)
        self.providers = ("TensorRT",)
        self.max_batch = self._engine.max_batch
        self._lock = threading.Lock()

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named (N, ...) float32 inputs -> the part's named outputs; one call at a time.

        Raises:
            ModelOutputError: an output is not finite, or the decoder's probabilities are not within [0, 1].
        """
        with self._lock:
            outputs = self._engine.run(feeds)
        return {name: check_output(name, values, self.path) for name, values in outputs.items()}


def _check_part_name(part: str) -> None:
    if part not in PART_INPUTS:
        raise ValueError(f"part must be one of {sorted(PART_INPUTS)}, got {part!r}")


def load_backend(
    model: PathLike,
    backend: str = "auto",
    providers: Sequence[str] | None = None,
    session_options=None,
    engine_cache: PathLike | None = None,
) -> Backend:
    """Open ``model`` with ``backend``: "auto", "onnxruntime" or "tensorrt".

    "auto" picks TensorRT for a file ending in one of :data:`ENGINE_SUFFIXES`, ONNX
    Runtime (with its fastest installed providers) otherwise. "tensorrt" with an
    ``.onnx`` file builds or reuses its engine in ``engine_cache``.
    """
    kind = backend.lower()
    if kind == "auto":
        kind = "tensorrt" if Path(model).suffix.lower() in ENGINE_SUFFIXES else "onnxruntime"
    if kind in ("onnxruntime", "ort", "onnx"):
        return OnnxRuntimeBackend(model, providers=providers, session_options=session_options, engine_cache=engine_cache)
    if kind in ("tensorrt", "trt"):
        if providers is not None:
            raise ValueError("providers apply to the onnxruntime backend only")
        return TensorRTBackend(model, engine_cache=engine_cache)
    raise ValueError(f"unknown backend {backend!r}; choose 'auto', 'onnxruntime' or 'tensorrt'")


def load_part(
    path: PathLike,
    part: str,
    backend: str = "auto",
    providers: Sequence[str] | None = None,
    session_options=None,
    engine_cache: PathLike | None = None,
) -> PartBackend:
    """Open one part of a two-part model (``part``: "image_encoder" or "decoder") as :func:`load_backend` does."""
    kind = backend.lower()
    if kind == "auto":
        kind = "tensorrt" if Path(path).suffix.lower() in ENGINE_SUFFIXES else "onnxruntime"
    if kind in ("onnxruntime", "ort", "onnx"):
        return OnnxRuntimePart(path, part, providers=providers, session_options=session_options,
                               engine_cache=engine_cache)
    if kind in ("tensorrt", "trt"):
        if providers is not None:
            raise ValueError("providers apply to the onnxruntime backend only")
        return TensorRTPart(path, part, engine_cache=engine_cache)
    raise ValueError(f"unknown backend {backend!r}; choose 'auto', 'onnxruntime' or 'tensorrt'")
