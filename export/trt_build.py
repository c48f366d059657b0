"""Build TensorRT 10 engines from exported FAIRS ONNX files (fp32, fp16, int8).

Torch-free: :meth:`fairs_sdk.trt.EngineCache.get_or_build` imports :func:`build_engine`
from here when its cache misses, so ``Segmenter(model.onnx, backend="tensorrt")``
builds an engine without the training stack. ``tensorrt`` and ``cuda-python`` are
imported inside the functions that need them.

- :func:`build_engine`: TensorRT's ONNX parser, an optimisation profile over the dynamic
  batch axis whose (C, S, S) come from the model's ``InputSpec`` (its declared input
  channels), FP16 / INT8 builder flags, the attention layers pinned to fp32
  (OBEY_PRECISION_CONSTRAINTS) and a timing cache file that later builds reuse.
- The two parts of a two-part model (image encoder, decoder; :mod:`fairs_sdk.model_format`)
  build the same way, with one profile entry per named input (:func:`part_profile_shapes`),
  so each goes through the same :class:`fairs_sdk.trt.EngineCache`.
- :func:`make_calibrator`: an ``IInt8EntropyCalibrator2`` over real encoded crops
  (:func:`fairs_sdk.export.samples.stack_inputs`), for int8 engines from fp32 ONNX files;
  a QDQ ONNX file from ``fairs-export quantize --precision int8`` needs none.

Written against the TensorRT 10 Python API documentation; not run on a GPU in this
repository's CI (no GPU and no TensorRT there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import INPUT_NAME, PART_INPUTS, ModelMetadata
from fairs_sdk.trt import PRECISIONS, cuda_check, import_cudart, import_tensorrt, read_onnx_props, trt_logger

from .samples import check_inputs

__all__ = ["build_engine", "make_calibrator", "part_profile_shapes", "profile_shapes"]

Shape = tuple[int, int, int, int]


def profile_shapes(spec: InputSpec, min_batch: int = 1, opt_batch: int = 1, max_batch: int = 1) -> tuple[Shape, Shape, Shape]:
    """(min, opt, max) input shapes (N, C, S, S) of the optimisation profile of a model with ``spec``.

    C is ``spec.channel_count`` (its declared input channels), S ``spec.input_size``.
    """
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got {min_batch}, {opt_batch}, {max_batch}")
    c, s = spec.channel_count, spec.input_size
    return (min_batch, c, s, s), (opt_batch, c, s, s), (max_batch, c, s, s)


def part_profile_shapes(
    part: str,
    inputs: dict[str, Sequence[int]],
    source: str | Path,
    min_batch: int = 1,
    opt_batch: int = 1,
    max_batch: int = 1,
) -> dict[str, tuple[Shape, Shape, Shape]]:
    """(min, opt, max) shapes of each input of ``part`` of a two-part model, by name.

    ``inputs`` maps the parsed network's input names to their dimensions (-1: dynamic).
    The batch axis (first) spans ``min_batch``..``max_batch``; every other dimension
    must be fixed in the graph (the export fixes them from the model's ``InputSpec``).
    """
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= opt_batch <= max_batch, got {min_batch}, {opt_batch}, {max_batch}")
    if tuple(inputs) != PART_INPUTS[part]:
        raise ValueError(f"{source}: the {part} takes inputs {list(inputs)}, expected {list(PART_INPUTS[part])}")
    profiles = {}
    for name, dims in inputs.items():
        rest = tuple(int(d) for d in dims[1:])
        batch_fits = dims[0] == -1 or dims[0] == min_batch == max_batch
        if len(dims) != 4 or any(d < 0 for d in rest) or not batch_fits:
            raise ValueError(
                f"{source}: {part} input {name!r} has shape {tuple(dims)}; expected a dynamic (or "
                f"{min_batch}..{max_batch}) batch axis and fixed other dimensions"
            )
        profiles[name] = tuple((batch, *rest) for batch in (min_batch, opt_batch, max_batch))
    return profiles  # type: ignore[return-value]


def _check_network_input(dims: Sequence[int], shapes: tuple[Shape, Shape, Shape], source: str | Path) -> None:
    """The parsed input's fixed dimensions (not -1) must match the profile built from the metadata."""
    if len(dims) != 4 or any(d != -1 and any(d != shape[i] for shape in shapes) for i, d in enumerate(dims)):
        raise ValueError(
            f"{source}: graph input {INPUT_NAME!r} has shape {tuple(dims)}, but its metadata declares "
            f"(N, {shapes[0][1]}, {shapes[0][2]}, {shapes[0][3]}) with N in {shapes[0][0]}..{shapes[2][0]} "
            "(a fixed-batch file needs min/opt/max batch equal to its N)"
        )


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
    kinds = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    return any(network.get_layer(i).type in kinds for i in range(network.num_layers))


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
    """Serialized TensorRT engine of the FAIRS model ``onnx_path``.

    Args:
        precision: "fp32", "fp16", or "int8" (int8 also allows fp16 where faster). int8
            needs ``calibrator`` (:func:`make_calibrator`) unless the ONNX file is
            already quantised (QDQ nodes, e.g. from ``fairs-export quantize --precision int8``).
        max_batch, opt_batch, min_batch: optimisation profile over the dynamic N axis
            (:func:`profile_shapes`); a fixed-batch ONNX file needs all three to equal its N.
        timing_cache_path: read if it exists, written after the build.
        fp32_prefixes: layer-name prefixes kept fp32 (default: the attention scopes of the
            export metadata), enforced with OBEY_PRECISION_CONSTRAINTS.
    Raises:
        ValueError: bad precision or batch, parse errors, a graph input that disagrees
            with the metadata, int8 without calibration.
        RuntimeError: the builder failed.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    meta = ModelMetadata.from_props(read_onnx_props(onnx_path), source=str(onnx_path))
    shapes = profile_shapes(meta.input_spec, min_batch, opt_batch, max_batch)
    trt = import_tensorrt()
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ValueError(f"TensorRT cannot parse {onnx_path}: {errors}")
    inputs = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    if meta.part in PART_INPUTS:  # one part of a two-part model: its own named inputs
        if calibrator is not None:
            raise ValueError(f"{onnx_path}: int8 calibration takes a model's single input; for the {meta.part} "
                             "of a two-part model use fp16 or a QDQ-quantised file")
        profiles = part_profile_shapes(meta.part, inputs, onnx_path, min_batch, opt_batch, max_batch)
    else:
        if list(inputs) != [INPUT_NAME]:
            raise ValueError(f"{onnx_path}: inputs {list(inputs)}, expected [{INPUT_NAME!r}]")
        _check_network_input(inputs[INPUT_NAME], shapes, onnx_path)
        profiles = {INPUT_NAME: shapes}

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in profiles.items():
        profile.set_shape(name, low, opt, high)
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
        prefixes = list(meta.extra.get("attention_scopes") or []) if fp32_prefixes is None else list(fp32_prefixes)
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


def make_calibrator(
    inputs: np.ndarray, spec: InputSpec, batch_size: int = 8, cache_path: str | Path | None = None
):
    """A ``trt.IInt8EntropyCalibrator2`` over (N, C, S, S) float32 encoded crops of a model with ``spec``.

    ``inputs`` must hold ``spec``'s channels (:func:`fairs_sdk.export.samples.stack_inputs`
    builds them with the runtime's encoder) and at least one full batch. The calibration
    table is read from / written to ``cache_path`` when given. (Implicit int8 calibration
    is deprecated in recent TensorRT 10 releases in favour of QDQ models; :func:`build_engine`
    takes both.)
    """
    inputs = check_inputs(inputs, spec, what="calibration inputs")
    if batch_size < 1 or len(inputs) < batch_size:
        raise ValueError(f"need at least one full calibration batch: {len(inputs)} crops, batch_size {batch_size}")
    trt = import_tensorrt()
    cudart = import_cudart()

    class _Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.position = 0
            self.device = cuda_check(cudart.cudaMalloc(batch_size * inputs[0].nbytes))

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.position + batch_size > len(inputs):
                return None
            chunk = np.ascontiguousarray(inputs[self.position : self.position + batch_size])
            self.position += batch_size
            cuda_check(cudart.cudaMemcpy(self.device, chunk.ctypes.data, chunk.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
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

    return _Calibrator()
