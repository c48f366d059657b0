"""Inference backends: run an exported FAIRS model on a prepared batch.

A backend loads one model file, reads its :class:`~fairs_sdk.model_format.ModelMetadata`
and maps a batch ``(N, C, S, S)`` float32 (the channels its metadata declares, see
:mod:`fairs_sdk.model_format`) to probabilities ``(N, 1, S, S)`` float32 in [0, 1].
At load it checks that the graph (or engine) takes the C and S of its metadata.
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
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, Union

import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME, ModelMetadata, NotAFairsModelError
from fairs_sdk.trt import engine_metadata_path, read_engine_metadata  # the engine sidecar's one reader

__all__ = [
    "Backend",
    "ModelLoadError",
    "ProviderError",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "PROVIDER_PREFERENCE",
    "ENGINE_SUFFIXES",
    "engine_metadata_path",
    "read_engine_metadata",
    "DEFAULT_ENGINE_CACHE",
    "load_backend",
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
        import onnxruntime as ort

        self.path = _existing_file(path)
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
            self._session = ort.InferenceSession(
                str(self.path), sess_options=session_options, providers=_provider_entries(requested, engine_cache)
            )
        except Exception as err:  # ORT raises its own pybind types: InvalidProtobuf, Fail, ...
            raise ModelLoadError(
                f"cannot load {self.path} with ONNX Runtime (truncated or not an ONNX model?): {err}"
            ) from None
        used = tuple(self._session.get_providers())
        failed = [p for p in requested if p not in used]
        if failed and explicit:
            raise ProviderError(
                f"ONNX Runtime execution provider(s) {failed} failed to load for {self.path} "
                f"(session fell back to {list(used)}); check the CUDA/TensorRT libraries"
            )
        if failed:
            warnings.warn(f"execution provider(s) {failed} failed to load; using {list(used)}", RuntimeWarning, stacklevel=3)
        self.providers = used
        props = self._session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_props(props, source=str(self.path))
        _check_io(self.path, self._session.get_inputs(), self._session.get_outputs(), self.metadata.input_spec)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 -> (N, 1, S, S) float32 probabilities. Thread-safe."""
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]


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
        try:
            from fairs_sdk import trt

            if path.suffix.lower() == ".onnx":
                self.onnx_path = path
                cache = trt.EngineCache(engine_cache or DEFAULT_ENGINE_CACHE)
                path = cache.get_or_build(path, precision=precision, max_batch=max_batch, opt_batch=1)
            self.path = path
            self.metadata = read_engine_metadata(path)
            self._engine = trt.TensorRTEngine(path)
        except ImportError as err:
            raise ProviderError(f"the TensorRT backend needs the 'gpu' extra (tensorrt, cuda-python): {err}") from None
        except NotAFairsModelError:
            raise
        except (RuntimeError, ValueError, OSError) as err:
            raise ModelLoadError(f"cannot load TensorRT engine {path}: {err}") from None
        spec = self.metadata.input_spec
        size = spec.input_size
        if getattr(self._engine, "size", size) != size:
            raise NotAFairsModelError(
                f"{path} takes {self._engine.size} x {self._engine.size} input; its metadata says {size}"
            )
        channels = getattr(self._engine, "channels", spec.channel_count)
        if channels != spec.channel_count:
            raise NotAFairsModelError(
                f"{path} takes {channels} input channels; its metadata declares {spec.channel_count} "
                f"({list(spec.input_channels)})"
            )
        self.providers = ("TensorRT",)
        self.max_batch = getattr(self._engine, "max_batch", None)
        self._lock = threading.Lock()

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 -> (N, 1, S, S) float32 probabilities; one call at a time."""
        with self._lock:
            return self._engine(batch)


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
