"""Run TensorRT 10 engines of FAIRS models: find them in the engine cache, deserialise, execute.

Torch-free: the runtime imports this module; ``tensorrt`` and ``cuda-python``
(``cuda.bindings.runtime``) are imported inside the functions that need them, so
``import fairs_sdk.trt`` works without either. Building engines is the job of
:mod:`fairs_sdk.export.trt_build`, which :meth:`EngineCache.get_or_build` imports on a
cache miss (it needs ``tensorrt``, never torch).

- :class:`EngineKey` / :class:`EngineCache`: engines are stored under a key holding the
  ONNX file's sha256, the TensorRT version, the GPU name and compute capability, the
  precision and the shapes, so another GPU or TensorRT version builds a new engine
  instead of loading one that does not fit.
- The engine's JSON sidecar ``X.json`` beside ``X.engine`` is written by
  :func:`write_engine_sidecar` and read by :func:`read_engine_sidecar`, nowhere else:
  ``{"key": {...}, "metadata": {props}}`` where ``metadata`` is the ONNX model's
  ``fairs.*`` ``metadata_props`` (:meth:`ModelMetadata.to_props`).
- :class:`TensorRTEngine` runs an engine: (N, C, S, S) float32 in, (N, 1, S, S) float32
  probabilities out, through ``set_tensor_address`` / ``execute_async_v3``; C and S come
  from the engine's optimisation profile (and so from the model's ``InputSpec``). The
  parts of a two-part model (several named inputs and outputs) run through its ``run``.

Written against the TensorRT 10 Python API documentation; not run on a GPU in this
repository's CI (no GPU and no TensorRT there).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME, ModelMetadata, NotAFairsModelError

__all__ = [
    "PRECISIONS",
    "EngineCache",
    "EngineKey",
    "EngineSidecar",
    "GpuInfo",
    "TensorRTEngine",
    "cuda_check",
    "engine_metadata_path",
    "file_sha256",
    "gpu_info",
    "import_cudart",
    "import_tensorrt",
    "read_engine_metadata",
    "read_engine_sidecar",
    "read_onnx_props",
    "tensorrt_version",
    "trt_logger",
    "write_engine_sidecar",
]

PRECISIONS = ("fp32", "fp16", "int8")
_META_PREFIX = "fairs."
_FLOAT32_BYTES = np.dtype(np.float32).itemsize


# -- pure Python: cache keys and the metadata sidecar ------------------------------------


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class GpuInfo:
    """A GPU as an engine depends on it: name and compute capability (major, minor)."""

    name: str
    compute_capability: tuple[int, int]


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized engine depends on; equal keys mean a reusable engine.

    Attributes:
        onnx_sha256: digest of the ONNX file the engine was built from (its metadata,
            and so its input channels, included).
        tensorrt_version: ``tensorrt.__version__`` of the builder.
        gpu_name, compute_capability: the GPU it was built on.
        precision: "fp32", "fp16" or "int8".
        input_size: S of the (N, C, S, S) input.
        min_batch, opt_batch, max_batch: the optimisation profile over N.
    """

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    precision: str
    input_size: int
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                f"need 1 <= min_batch <= opt_batch <= max_batch, got {self.min_batch}, {self.opt_batch}, {self.max_batch}"
            )
        if self.input_size < 1:
            raise ValueError(f"input_size must be positive, got {self.input_size}")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["compute_capability"] = list(self.compute_capability)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EngineKey":
        values = dict(data)
        values["compute_capability"] = tuple(values["compute_capability"])
        return cls(**values)

    def digest(self) -> str:
        """sha256 of the key's canonical JSON."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def filename(self) -> str:
        """``fairs-<precision>-<S>px-b<min>-<max>-sm<cc>-<digest16>.engine``: readable, unique per key."""
        major, minor = self.compute_capability
        return (
            f"fairs-{self.precision}-{self.input_size}px-b{self.min_batch}-{self.max_batch}"
            f"-sm{major}{minor}-{self.digest()[:16]}.engine"
        )


@dataclass(frozen=True)
class EngineSidecar:
    """What the JSON file beside an engine holds.

    Attributes:
        props: the model's ``fairs.*`` metadata_props (string to string).
        key: the :class:`EngineKey` the engine was built under, as a dict; None for a
            sidecar written by hand (a bare props object).
    """

    props: dict[str, str]
    key: dict[str, Any] | None = None


def engine_metadata_path(engine_path: str | os.PathLike) -> Path:
    """The sidecar of an engine: ``X.engine`` -> ``X.json``."""
    return Path(engine_path).with_suffix(".json")


def write_engine_sidecar(
    engine_path: str | os.PathLike, props: Mapping[str, str], key: EngineKey | None = None
) -> Path:
    """Write the sidecar of ``engine_path`` atomically (temporary file, then rename); returns its path."""
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in props.items()):
        raise ValueError("engine metadata must map strings to strings (ONNX metadata_props)")
    path = engine_metadata_path(engine_path)
    data = {"key": key.to_dict() if key is not None else None, "metadata": dict(props)}
    _write_atomic(path, json.dumps(data, indent=2, sort_keys=True).encode())
    return path


def read_engine_sidecar(engine_path: str | os.PathLike) -> EngineSidecar:
    """The sidecar of ``engine_path``: ``X.json``, else ``X.engine.json``.

    Takes what :func:`write_engine_sidecar` writes and a file holding the props object
    alone. Raises :class:`NotAFairsModelError` when it is missing or malformed.
    """
    path = Path(engine_path)
    candidates = [engine_metadata_path(path), path.with_name(path.name + ".json")]
    side = next((c for c in candidates if c.is_file()), None)
    if side is None:
        raise NotAFairsModelError(
            f"{engine_path} is not a FAIRS engine: its metadata file {candidates[0].name} is missing beside it"
        )
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as err:
        raise NotAFairsModelError(f"cannot read FAIRS engine metadata {side}: {err}") from None
    if not isinstance(data, Mapping):
        raise NotAFairsModelError(f"{side} must hold a JSON object, got {type(data).__name__}")
    wrapped = "metadata" in data
    props = data["metadata"] if wrapped else data
    key = data.get("key") if wrapped else None
    if not isinstance(props, Mapping) or not all(isinstance(v, str) for v in props.values()):
        raise NotAFairsModelError(f"{side} must hold the model's metadata_props as a JSON object of strings")
    return EngineSidecar(props=dict(props), key=dict(key) if isinstance(key, Mapping) else None)


def read_engine_metadata(engine_path: str | os.PathLike) -> ModelMetadata:
    """The :class:`ModelMetadata` in an engine's sidecar (:func:`read_engine_sidecar`)."""
    return ModelMetadata.from_props(read_engine_sidecar(engine_path).props, source=str(engine_path))


def _write_atomic(target: Path, data: bytes) -> None:
    temporary = target.with_name(target.name + f".tmp{os.getpid()}")
    temporary.write_bytes(data)
    os.replace(temporary, target)


class EngineCache:
    """A folder of engines, one per :class:`EngineKey`, each with its sidecar.

    :meth:`lookup` returns an engine only when the key stored in its sidecar equals the
    requested one, so a digest collision or a hand-copied file cannot be loaded.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def engine_path(self, key: EngineKey) -> Path:
        return self.directory / key.filename()

    def sidecar_path(self, key: EngineKey) -> Path:
        return engine_metadata_path(self.engine_path(key))

    def lookup(self, key: EngineKey) -> Path | None:
        """The cached engine of ``key``, or None (missing, incomplete, or another key)."""
        engine = self.engine_path(key)
        if not engine.is_file() or not self.sidecar_path(key).is_file():
            return None
        try:
            stored = read_engine_sidecar(engine).key
            return engine if stored is not None and EngineKey.from_dict(stored) == key else None
        except (NotAFairsModelError, ValueError, KeyError, TypeError):
            return None

    def store(self, key: EngineKey, engine: bytes, metadata: Mapping[str, str] | None = None) -> Path:
        """Write ``engine`` and its sidecar, each atomically; the engine first, so a sidecar means a whole engine."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.engine_path(key)
        _write_atomic(path, bytes(engine))
        write_engine_sidecar(path, metadata or {}, key)
        return path

    def metadata(self, key: EngineKey) -> dict[str, str]:
        """The ``fairs.*`` metadata stored beside the engine of ``key``."""
        return read_engine_sidecar(self.engine_path(key)).props

    def key_for(
        self,
        onnx_path: str | Path,
        precision: str,
        input_size: int,
        max_batch: int = 1,
        opt_batch: int = 1,
        min_batch: int = 1,
        gpu: GpuInfo | None = None,
        trt_version: str | None = None,
    ) -> EngineKey:
        """The key of ``onnx_path`` on this machine (``gpu`` and ``trt_version`` found when None)."""
        trt_version = trt_version or tensorrt_version()
        gpu = gpu or gpu_info()
        return EngineKey(
            onnx_sha256=file_sha256(onnx_path),
            tensorrt_version=trt_version,
            gpu_name=gpu.name,
            compute_capability=gpu.compute_capability,
            precision=precision,
            input_size=input_size,
            min_batch=min_batch,
            opt_batch=opt_batch,
            max_batch=max_batch,
        )

    def get_or_build(
        self,
        onnx_path: str | Path,
        precision: str = "fp16",
        max_batch: int = 1,
        opt_batch: int = 1,
        calibrator: Any = None,
        timing_cache_path: str | Path | None = None,
        builder: Callable[..., bytes] | None = None,
        gpu: GpuInfo | None = None,
        trt_version: str | None = None,
    ) -> Path:
        """The cached engine for ``onnx_path`` here, built (and stored) on a miss.

        The timing cache defaults to ``<directory>/timing.cache``; ``builder`` defaults
        to :func:`fairs_sdk.export.trt_build.build_engine` (imported only on a miss; tests
        pass a stand-in to check the caching logic); ``gpu`` and ``trt_version`` default
        to this machine's.
        """
        props = read_onnx_props(onnx_path)
        spec = _input_spec(props, onnx_path)
        key = self.key_for(onnx_path, precision, spec.input_size, max_batch, opt_batch, gpu=gpu, trt_version=trt_version)
        found = self.lookup(key)
        if found is not None:
            return found
        if builder is None:
            from fairs_sdk.export.trt_build import build_engine as builder
        engine = builder(
            onnx_path,
            precision=precision,
            max_batch=max_batch,
            opt_batch=opt_batch,
            calibrator=calibrator,
            timing_cache_path=timing_cache_path or self.directory / "timing.cache",
        )
        return self.store(key, engine, {**props, _META_PREFIX + "precision": precision})


def read_onnx_props(onnx_path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file, through ``onnx`` if installed, else ONNX Runtime."""
    try:
        import onnx
    except ImportError:
        from fairs_sdk.extras import import_onnxruntime

        session = import_onnxruntime().InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _input_spec(props: Mapping[str, str], source: str | Path) -> InputSpec:
    return ModelMetadata.from_props(props, source=str(source)).input_spec


# -- TensorRT and CUDA: imported lazily -----------------------------------------------


def import_tensorrt():
    """The ``tensorrt`` module (10 or newer); ImportError saying what to install otherwise."""
    try:
        import tensorrt
    except ImportError as error:
        raise ImportError("TensorRT engines need the 'tensorrt' package (pip install 'fairs-sdk[gpu]')") from error
    if int(tensorrt.__version__.split(".")[0]) < 10:
        raise ImportError(f"fairs_sdk.trt needs TensorRT 10 or newer, found {tensorrt.__version__}")
    return tensorrt


def import_cudart():
    """cuda-python's CUDA runtime bindings; ImportError saying what to install otherwise."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError as error:
            raise ImportError("TensorRT engines need 'cuda-python' for device memory (pip install cuda-python)") from error
    return cudart


def cuda_check(result: Any) -> Any:
    """Unpack a cuda-python call's (error, *values), raising on an error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else (tuple(values) or None)


def trt_logger(trt):
    """A TensorRT logger printing warnings and errors."""
    return trt.Logger(trt.Logger.WARNING)


def tensorrt_version() -> str:
    """The installed TensorRT version string."""
    return str(import_tensorrt().__version__)


def gpu_info(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device``."""
    cudart = import_cudart()
    try:
        props = cuda_check(cudart.cudaGetDeviceProperties(device))
    except RuntimeError as error:
        raise RuntimeError(f"no usable CUDA GPU {device} for TensorRT: {error}") from None
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name=name, compute_capability=(int(props.major), int(props.minor)))


class TensorRTEngine:
    """Run a serialized FAIRS engine on CUDA device ``device``.

    ``engine`` is a path to a ``.engine`` file or its bytes. A model's engine (input
    ``input``, output ``probabilities``) is called with (N, C, S, S) float32 (the
    model's declared channels, RGB raw 0..255) and returns (N, 1, S, S) float32
    probabilities; C and S are read from the engine's optimisation profile, and
    ``spec`` (the model's :class:`InputSpec`), when given, must agree with them. Any
    engine, a part of a two-part model included, runs through :meth:`run`: named
    (N, ...) float32 inputs to named outputs. Inputs larger than the profile's max
    batch run in chunks.

    Attributes:
        input_names, output_names: the engine's I/O tensors, in the engine's order.
        shapes: each tensor's shape at the profile's max batch, with None for N.
        channels, size: C and S of a model's input (None for an engine with other I/O).
        min_batch, max_batch: the profile's range of N (smaller chunks are zero-padded).
    """

    def __init__(self, engine: str | Path | bytes, device: int = 0, spec: InputSpec | None = None) -> None:
        trt = import_tensorrt()
        self._cudart = cudart = import_cudart()
        self._device_memory: dict[str, Any] = {}
        self._stream = None
        cuda_check(cudart.cudaSetDevice(device))
        data = Path(engine).read_bytes() if isinstance(engine, (str, Path)) else bytes(engine)
        self._runtime = trt.Runtime(trt_logger(trt))
        self.engine = self._runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine (built for another TensorRT or GPU?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = tuple(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_names = tuple(n for n in names if n not in self.input_names)
        if not self.input_names or not self.output_names:
            raise ValueError(f"engine tensors {names}: need at least one input and one output")
        for name in names:
            if self.engine.get_tensor_dtype(name) != trt.float32:
                raise ValueError(f"engine tensor {name} is {self.engine.get_tensor_dtype(name)}, expected float32")
        profiles = {
            n: [tuple(int(v) for v in shape) for shape in self.engine.get_tensor_profile_shape(n, 0)]
            for n in self.input_names
        }
        batches = {(shapes[0][0], shapes[2][0]) for shapes in profiles.values()}
        if len(batches) != 1:
            raise ValueError(f"the engine's inputs have different batch ranges in their profile: {profiles}")
        self.min_batch, self.max_batch = batches.pop()
        self.context = self.engine.create_execution_context()
        largest = {n: shapes[2] for n, shapes in profiles.items()}
        for name, shape in largest.items():
            if not self.context.set_input_shape(name, shape):
                raise ValueError(f"engine rejects its own profile's max shape {shape} for {name!r}")
        for name in self.output_names:
            shape = tuple(int(v) for v in self.context.get_tensor_shape(name))
            if any(v < 0 for v in shape):
                raise ValueError(f"engine output {name!r} has a data-dependent shape {shape}")
            largest[name] = shape
        self.shapes: dict[str, tuple[int | None, ...]] = {n: (None, *shape[1:]) for n, shape in largest.items()}
        self.channels: int | None = None
        self.size: int | None = None
        if self.input_names == (INPUT_NAME,) and OUTPUT_NAME in self.output_names:
            _, self.channels, self.size, _ = largest[INPUT_NAME]
            if spec is not None and (self.channels, self.size) != (spec.channel_count, spec.input_size):
                raise ValueError(
                    f"engine takes (N, {self.channels}, {self.size}, {self.size}); the model's metadata declares "
                    f"(N, {spec.channel_count}, {spec.input_size}, {spec.input_size}) for {list(spec.input_channels)}"
                )
        elif spec is not None:
            raise ValueError(f"spec checks a model's engine ({INPUT_NAME!r} -> {OUTPUT_NAME!r}); this one takes "
                             f"{list(self.input_names)}")
        self._stream = cuda_check(cudart.cudaStreamCreate())
        for name, shape in largest.items():
            self._device_memory[name] = cuda_check(cudart.cudaMalloc(int(np.prod(shape)) * _FLOAT32_BYTES))
            self.context.set_tensor_address(name, int(self._device_memory[name]))

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        """(N, C, S, S) float32 -> (N, 1, S, S) float32 probabilities, for a model's engine."""
        if self.size is None:
            raise ValueError(f"this engine takes {list(self.input_names)}: call run() with named inputs")
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        expected = (self.channels, self.size, self.size)
        if inputs.ndim != 4 or inputs.shape[1:] != expected:
            raise ValueError(f"expected (N, {', '.join(map(str, expected))}) float32, got {inputs.shape}")
        return self.run({INPUT_NAME: inputs})[OUTPUT_NAME]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Named (N, ...) float32 inputs, one per input tensor, all with the same N -> named outputs."""
        if set(feeds) != set(self.input_names):
            raise ValueError(f"engine inputs are {list(self.input_names)}, got {sorted(feeds)}")
        arrays = {n: np.ascontiguousarray(feeds[n], dtype=np.float32) for n in self.input_names}
        for name, array in arrays.items():
            if array.shape[1:] != self.shapes[name][1:]:
                raise ValueError(f"input {name!r}: expected (N, {', '.join(map(str, self.shapes[name][1:]))}), "
                                 f"got {array.shape}")
        counts = {len(array) for array in arrays.values()}
        if len(counts) != 1:
            raise ValueError(f"inputs have different batch sizes: { {n: a.shape for n, a in arrays.items()} }")
        count = counts.pop()
        if count == 0:
            return {n: np.zeros((0, *self.shapes[n][1:]), np.float32) for n in self.output_names}
        step = self.max_batch
        chunks = [self._run({n: a[i : i + step] for n, a in arrays.items()}) for i in range(0, count, step)]
        if len(chunks) == 1:
            return chunks[0]
        return {n: np.concatenate([c[n] for c in chunks]) for n in self.output_names}

    def _run(self, chunk: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = self._cudart
        count = len(next(iter(chunk.values())))
        if count < self.min_batch:  # pad up to the profile's minimum
            pad = self.min_batch - count
            chunk = {n: np.concatenate([a, np.zeros((pad, *a.shape[1:]), np.float32)]) for n, a in chunk.items()}
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, array in chunk.items():
            if not self.context.set_input_shape(name, tuple(array.shape)):
                raise ValueError(f"engine rejects input shape {array.shape} for {name!r}")
            cuda_check(cudart.cudaMemcpyAsync(self._device_memory[name], array.ctypes.data, array.nbytes, h2d,
                                              self._stream))
        if not self.context.execute_async_v3(int(self._stream)):
            raise RuntimeError("TensorRT execution failed")
        outputs = {}
        for name in self.output_names:
            out = np.empty(tuple(int(v) for v in self.context.get_tensor_shape(name)), dtype=np.float32)
            cuda_check(cudart.cudaMemcpyAsync(out.ctypes.data, self._device_memory[name], out.nbytes, d2h,
                                              self._stream))
            outputs[name] = out
        cuda_check(cudart.cudaStreamSynchronize(self._stream))
        return {name: out[:count] for name, out in outputs.items()}

    def close(self) -> None:
        """Free the device buffers and the stream (also done on garbage collection)."""
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        memory = getattr(self, "_device_memory", {})
        for name in list(memory):
            cudart.cudaFree(memory.pop(name))
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
