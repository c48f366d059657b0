"""TensorRT 10 engines for FAIRS ONNX models: build, cache by key, and run.

Torch-free: the runtime imports this module; ``tensorrt`` and ``cuda-python``
(``cuda.bindings.runtime``) are imported inside the functions that need them, so
``import fairs_sdk.trt`` works without either.

- :func:`build_engine` parses an ONNX file with TensorRT's own parser and builds a
  serialized engine (fp32, fp16 or int8) with an optimisation profile over the dynamic
  batch axis, the attention layers forced to fp32 (OBEY_PRECISION_CONSTRAINTS), and a
  timing cache file that later builds reuse.
- :class:`EngineCache` stores engines under a key holding the ONNX file's sha256, the
  TensorRT version, the GPU name and compute capability, the precision and the shapes,
  so another GPU or TensorRT version builds a new engine instead of loading one that
  does not fit. The model's metadata travels in a JSON file beside each engine.
- :class:`TensorRTEngine` runs an engine: (N, 4, S, S) float32 in, (N, 1, S, S)
  float32 probabilities out, through ``set_tensor_address`` / ``execute_async_v3``.

This module was written against the TensorRT 10 Python API documentation; it has not
been run on a GPU in this repository's CI (no GPU and no TensorRT there).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME

__all__ = [
    "PRECISIONS",
    "EngineKey",
    "EngineCache",
    "GpuInfo",
    "build_engine",
    "file_sha256",
    "gpu_info",
    "make_calibrator",
    "read_onnx_props",
    "tensorrt_version",
    "TensorRTEngine",
]

PRECISIONS = ("fp32", "fp16", "int8")
_META_PREFIX = "fairs."


# -- pure Python: cache keys ------------------------------------------------------------


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
        onnx_sha256: digest of the ONNX file the engine was built from.
        tensorrt_version: ``tensorrt.__version__`` of the builder.
        gpu_name, compute_capability: the GPU it was built on.
        precision: "fp32", "fp16" or "int8".
        input_size: S of the (N, 4, S, S) input.
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
    def from_dict(cls, data: dict[str, Any]) -> "EngineKey":
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


class EngineCache:
    """A folder of engines, one per :class:`EngineKey`, each with a JSON sidecar.

    The sidecar (``<engine>.json``) holds the full key and the model's ``fairs.*``
    metadata; :meth:`lookup` returns an engine only when the stored key equals the
    requested one, so a digest collision or a hand-copied file cannot be loaded.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def engine_path(self, key: EngineKey) -> Path:
        return self.directory / key.filename()

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.engine_path(key).with_suffix(".json")

    def lookup(self, key: EngineKey) -> Path | None:
        """The cached engine of ``key``, or None (missing, incomplete, or another key)."""
        engine, sidecar = self.engine_path(key), self.sidecar_path(key)
        if not engine.is_file() or not sidecar.is_file():
            return None
        try:
            stored = EngineKey.from_dict(json.loads(sidecar.read_text())["key"])
        except (ValueError, KeyError, TypeError):
            return None
        return engine if stored == key else None

    def store(self, key: EngineKey, engine: bytes, metadata: dict[str, str] | None = None) -> Path:
        """Write ``engine`` and its sidecar atomically (temporary files, then rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path, sidecar = self.engine_path(key), self.sidecar_path(key)
        for target, data in ((path, bytes(engine)), (sidecar, json.dumps({"key": key.to_dict(), "metadata": metadata or {}}, indent=2, sort_keys=True).encode())):
            temporary = target.with_name(target.name + f".tmp{os.getpid()}")
            temporary.write_bytes(data)
            os.replace(temporary, target)
        return path

    def metadata(self, key: EngineKey) -> dict[str, str]:
        """The ``fairs.*`` metadata stored beside the engine of ``key``."""
        return dict(json.loads(self.sidecar_path(key).read_text()).get("metadata", {}))

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
        to :func:`build_engine` (tests pass a stand-in to check the caching logic);
        ``gpu`` and ``trt_version`` default to this machine's.
        """
        props = read_onnx_props(onnx_path)
        input_size = _input_size(props, onnx_path)
        key = self.key_for(onnx_path, precision, input_size, max_batch, opt_batch, gpu=gpu, trt_version=trt_version)
        found = self.lookup(key)
        if found is not None:
            return found
        build = builder or build_engine
        engine = build(
            onnx_path,
            precision=precision,
            max_batch=max_batch,
            opt_batch=opt_batch,
            calibrator=calibrator,
            timing_cache_path=timing_cache_path or self.directory / "timing.cache",
        )
        metadata = {**props, _META_PREFIX + "precision": precision}
        return self.store(key, engine, metadata)


def read_onnx_props(onnx_path: str | Path) -> dict[str, str]:
    """``metadata_props`` of an ONNX file, through ``onnx`` if installed, else ONNX Runtime."""
    try:
        import onnx

        model = onnx.load(str(onnx_path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    except ImportError:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)


def _input_size(props: dict[str, str], source: str | Path) -> int:
    from fairs_sdk.model_format import ModelMetadata

    return ModelMetadata.from_props(props, source=str(source)).input_spec.input_size


# -- TensorRT and CUDA: imported lazily -----------------------------------------------


def _tensorrt():
    try:
        import tensorrt
    except ImportError as error:
        raise ImportError("TensorRT engines need the 'tensorrt' package (pip install 'fairs-sdk[gpu]')") from error
    if int(tensorrt.__version__.split(".")[0]) < 10:
        raise ImportError(f"fairs_sdk.trt needs TensorRT 10 or newer, found {tensorrt.__version__}")
    return tensorrt


def _cudart():
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6 layout
        except ImportError as error:
            raise ImportError("TensorRT engines need 'cuda-python' for device memory (pip install cuda-python)") from error
    return cudart


def _check(result: Any) -> Any:
    """Unpack a cuda-python call's (error, *values), raising on an error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA call failed: {err}")
    return values[0] if len(values) == 1 else (tuple(values) or None)


def tensorrt_version() -> str:
    """The installed TensorRT version string."""
    return str(_tensorrt().__version__)


def gpu_info(device: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``device``."""
    cudart = _cudart()
    try:
        props = _check(cudart.cudaGetDeviceProperties(device))
    except RuntimeError as error:
        raise RuntimeError(f"no usable CUDA GPU {device} for TensorRT: {error}") from None
    name = props.name.decode(errors="replace").rstrip("\x00") if isinstance(props.name, bytes) else str(props.name)
    return GpuInfo(name=name, compute_capability=(int(props.major), int(props.minor)))


def _logger(trt):
    return trt.Logger(trt.Logger.WARNING)


def _attention_prefixes(onnx_path: str | Path) -> list[str]:
    """Node-name prefixes of the attention modules, from the export metadata."""
    from fairs_sdk.model_format import ModelMetadata

    meta = ModelMetadata.from_props(read_onnx_props(onnx_path), source=str(onnx_path))
    return list(meta.extra.get("attention_scopes") or [])


def _force_fp32(trt, network, prefixes: Sequence[str]) -> int:
    """Pin the floating-point layers whose names start with ``prefixes`` to fp32; returns their count."""
    floating = (trt.float32, trt.float16)
    pinned = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if not layer.name.startswith(tuple(prefixes)):
            continue
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        if not outputs or any(out.dtype not in floating for out in outputs):
            continue  # shape arithmetic (int64) and the like keep their own types
        layer.precision = trt.float32
        for i in range(layer.num_outputs):
            layer.set_output_type(i, trt.float32)
        pinned += 1
    return pinned


def _has_qdq(trt, network) -> bool:
    return any(
        network.get_layer(i).type in (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE) for i in range(network.num_layers)
    )


def build_engine(
    onnx_path: str | Path,
    precision: str = "fp16",
    max_batch: int = 1,
    opt_batch: int = 1,
    min_batch: int = 1,
    calibrator: Any = None,
    timing_cache_path: str | Path | None = None,
    fp32_prefixes: Sequence[str] | None = None,
    workspace_bytes: int = 4 << 30,
) -> bytes:
    """Serialized TensorRT engine of ``onnx_path``.

    Args:
        precision: "fp32", "fp16", or "int8" (int8 also allows fp16 where faster). int8
            needs ``calibrator`` (see :func:`make_calibrator`) unless the ONNX file is
            already quantised (QDQ nodes, e.g. from ``fairs-export quantize --precision int8``).
        max_batch, opt_batch, min_batch: optimisation profile over the dynamic N axis;
            a fixed-batch ONNX file needs all three to equal its N.
        timing_cache_path: read if it exists, written after the build.
        fp32_prefixes: layer-name prefixes kept fp32 (default: the attention scopes of the
            export metadata), enforced with OBEY_PRECISION_CONSTRAINTS.
    Raises:
        ValueError: bad precision or batch, parse errors, int8 without calibration.
        RuntimeError: the builder failed.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got {min_batch}, {opt_batch}, {max_batch}")
    trt = _tensorrt()
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT cannot parse {onnx_path}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)

    tensor = network.get_input(0)
    if tensor.name != INPUT_NAME:
        raise ValueError(f"{onnx_path}: input is named {tensor.name!r}, not {INPUT_NAME!r}")
    _, channels, height, width = tuple(tensor.shape)
    if tensor.shape[0] != -1 and not min_batch == opt_batch == max_batch == tensor.shape[0]:
        raise ValueError(f"{onnx_path} has a fixed batch of {tensor.shape[0]}; set min/opt/max batch to it")
    profile = builder.create_optimization_profile()
    profile.set_shape(
        INPUT_NAME,
        (min_batch, channels, height, width),
        (opt_batch, channels, height, width),
        (max_batch, channels, height, width),
    )
    config.add_optimization_profile(profile)

    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if calibrator is not None:
            config.int8_calibrator = calibrator
            config.set_calibration_profile(profile)
        elif not _has_qdq(trt, network):
            raise ValueError("int8 needs a calibrator (make_calibrator on real crops) or a QDQ-quantised ONNX file")
    if precision != "fp32":
        prefixes = _attention_prefixes(onnx_path) if fp32_prefixes is None else list(fp32_prefixes)
        if prefixes and _force_fp32(trt, network, prefixes):
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)

    timing_cache = None
    if timing_cache_path is not None:
        timing_path = Path(timing_cache_path)
        data = timing_path.read_bytes() if timing_path.is_file() else b""
        timing_cache = config.create_timing_cache(data)
        config.set_timing_cache(timing_cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build a {precision} engine from {onnx_path} (see the log above)")
    if timing_cache is not None:
        timing_path.parent.mkdir(parents=True, exist_ok=True)
        timing_path.write_bytes(bytes(memoryview(config.get_timing_cache().serialize())))
    return bytes(memoryview(serialized))


def make_calibrator(inputs: np.ndarray, batch_size: int = 8, cache_path: str | Path | None = None):
    """A ``trt.IInt8EntropyCalibrator2`` over (N, 4, S, S) float32 real crops.

    The calibration table is read from / written to ``cache_path`` when given.
    (Implicit int8 calibration is deprecated in recent TensorRT 10 releases in favour of
    QDQ models; both are supported by :func:`build_engine`.)
    """
    trt = _tensorrt()
    cudart = _cudart()
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    if inputs.ndim != 4 or inputs.shape[1] != 4 or len(inputs) == 0:
        raise ValueError(f"calibration inputs must be (N, 4, S, S) with N > 0, got {inputs.shape}")

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.position = 0
            self.nbytes = batch_size * inputs[0].nbytes
            self.device = _check(cudart.cudaMalloc(self.nbytes))

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.position + batch_size > len(inputs):
                return None
            chunk = np.ascontiguousarray(inputs[self.position : self.position + batch_size])
            self.position += batch_size
            _check(cudart.cudaMemcpy(self.device, chunk.ctypes.data, chunk.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            if cache_path is not None and Path(cache_path).is_file():
                return Path(cache_path).read_bytes()
            return None

        def write_calibration_cache(self, cache: Any) -> None:
            if cache_path is not None:
                Path(cache_path).write_bytes(bytes(memoryview(cache)))

        def __del__(self) -> None:
            try:
                cudart.cudaFree(self.device)
            except Exception:
                pass

    if len(inputs) < batch_size:
        raise ValueError(f"need at least one full calibration batch: {len(inputs)} crops < batch_size {batch_size}")
    return _Calibrator()


class TensorRTEngine:
    """Run a serialized FAIRS engine on CUDA device ``device``.

    ``engine`` is a path to a ``.engine`` file or its bytes. Call with (N, 4, S, S)
    float32 (raw RGB 0..255 + SFG); returns (N, 1, S, S) float32 probabilities. Inputs
    larger than the profile's max batch run in chunks.
    """

    def __init__(self, engine: str | Path | bytes, device: int = 0) -> None:
        trt = _tensorrt()
        self._cudart = cudart = _cudart()
        _check(cudart.cudaSetDevice(device))
        data = Path(engine).read_bytes() if isinstance(engine, (str, Path)) else bytes(engine)
        self._runtime = trt.Runtime(_logger(trt))
        self.engine = self._runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise RuntimeError("TensorRT could not deserialize the engine (built for another TensorRT or GPU?)")
        names = {self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)}
        if names != {INPUT_NAME, OUTPUT_NAME}:
            raise ValueError(f"engine tensors {sorted(names)} are not the FAIRS I/O {INPUT_NAME!r}, {OUTPUT_NAME!r}")
        for name in names:
            if self.engine.get_tensor_dtype(name) != trt.float32:
                raise ValueError(f"engine tensor {name} is {self.engine.get_tensor_dtype(name)}, expected float32")
        self.context = self.engine.create_execution_context()
        _, _, max_shape = self.engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.max_batch, _, self.size, _ = (int(v) for v in max_shape)
        self.min_batch = int(self.engine.get_tensor_profile_shape(INPUT_NAME, 0)[0][0])
        self._in_bytes = self.max_batch * 4 * self.size * self.size * 4
        self._out_bytes = self.max_batch * 1 * self.size * self.size * 4
        self._stream = _check(cudart.cudaStreamCreate())
        self._d_in = _check(cudart.cudaMalloc(self._in_bytes))
        self._d_out = _check(cudart.cudaMalloc(self._out_bytes))
        self.context.set_tensor_address(INPUT_NAME, int(self._d_in))
        self.context.set_tensor_address(OUTPUT_NAME, int(self._d_out))

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        if inputs.ndim != 4 or inputs.shape[1:] != (4, self.size, self.size):
            raise ValueError(f"expected (N, 4, {self.size}, {self.size}) float32, got {inputs.shape}")
        outputs = [self._run(inputs[i : i + self.max_batch]) for i in range(0, len(inputs), self.max_batch)]
        return np.concatenate(outputs) if outputs else np.zeros((0, 1, self.size, self.size), np.float32)

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        cudart = self._cudart
        count = len(chunk)
        if count < self.min_batch:  # pad up to the profile's minimum
            chunk = np.concatenate([chunk, np.zeros((self.min_batch - count, *chunk.shape[1:]), np.float32)])
        out = np.empty((len(chunk), 1, self.size, self.size), dtype=np.float32)
        if not self.context.set_input_shape(INPUT_NAME, tuple(chunk.shape)):
            raise ValueError(f"engine rejects input shape {chunk.shape}")
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(self._d_in, chunk.ctypes.data, chunk.nbytes, h2d, self._stream))
        if not self.context.execute_async_v3(int(self._stream)):
            raise RuntimeError("TensorRT execution failed")
        _check(cudart.cudaMemcpyAsync(out.ctypes.data, self._d_out, out.nbytes, d2h, self._stream))
        _check(cudart.cudaStreamSynchronize(self._stream))
        return out[:count]

    def close(self) -> None:
        """Free the device buffers and the stream (also done on garbage collection)."""
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for name in ("_d_in", "_d_out"):
            pointer = getattr(self, name, None)
            if pointer is not None:
                cudart.cudaFree(pointer)
                setattr(self, name, None)
        if getattr(self, "_stream", None) is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
