"""fp16 and int8 versions of an exported fp32 ONNX model, attention kept in fp32.

- fp16: ONNX Runtime's float16 converter with the attention modules on its node block
  list (DANet's channel-attention Gram matrix A A^T sums C*N products and overflows
  fp16's 65504), I/O kept float32 so the runtime contract does not change.
- int8: ONNX Runtime static quantization (QDQ, per-channel int8 weights, uint8
  activations) of the convolutions only, calibrated on real crops encoded for the
  model's declared input channels (:func:`fairs_sdk.export.samples.stack_inputs`),
  attention nodes excluded. The element-wise arithmetic between convolutions stays
  fp32: quantising it rounds probabilities to steps of 1/255 before a log (the
  refine decoder's saliency logit and log-SFG), which sends small values to -inf.
  Convolutions whose output is a small difference of large terms stay fp32 too
  (:func:`cancelling_convs`): U2-Netp's folded BatchNorms give some channels a bias
  of up to 1,361 for an output that spans 57, and 8-bit rounding of their inputs,
  summed over the kernel, swamps such an output (on the default model, quantising
  them cost 13.7 mIoU points on DAVIS).

Both keep the input (N, C, S, S) of the fp32 file and its metadata (input channels
included); only ``precision`` and a few ``extra`` entries change.

The attention nodes are the ones under the ``attention_scopes`` that export wrote into
the metadata (``/model/head/position/``, ``/model/head/channel/``).

Both read their source through :func:`load_source`: a FAIRS model with float32 inputs,
whose external data (weights kept in files beside it) lies in its own folder; anything
else is a ValueError naming the file, not a traceback from deep inside onnx.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import onnx

from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import DECODER, IMAGE_ENCODER, INPUT_NAME, PART_INPUTS, PART_OUTPUTS, check_input_types
from fairs_sdk.trt import file_sha256

from .onnx_export import onnxruntime_session, read_metadata, set_metadata
from .samples import check_inputs

__all__ = ["attention_nodes", "cancelling_convs", "convert_bundle", "FeedReader", "check_source", "load_source", "convert_fp16", "CropCalibrationReader", "quantize_int8"]

#: Op types int8 quantises by default: where the arithmetic is (see the module docstring).
INT8_OP_TYPES = ("Conv",)

#: A convolution stays fp32 when some live output channel's |bias| exceeds this many times
#: the channel's range on the calibration crops (:func:`cancelling_convs`).
CANCELLING_BIAS_RATIO = 10.0

#: Op types that are attention arithmetic wherever they sit (used when metadata has no scopes).
_ATTENTION_OPS = ("MatMul", "Softmax", "ReduceMax")


def attention_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that must stay fp32: everything under the metadata's attention scopes.

    Models without scopes in their metadata fall back to every MatMul / Softmax / ReduceMax.
    """
    scopes = read_metadata(model).extra.get("attention_scopes") or []
    if scopes:
        names = [n.name for n in model.graph.node if any(n.name.startswith(s) for s in scopes)]
    else:
        names = [n.name for n in model.graph.node if n.op_type in _ATTENTION_OPS]
    if any(n.op_type in ("Softmax",) for n in model.graph.node) and not names:
        raise ValueError("the graph has a Softmax but no attention node was found; cannot keep attention in fp32")
    return names


def _feeds(inputs: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Named float32 model inputs: an array is the whole model's ``input``; a mapping names each input."""
    named = {INPUT_NAME: inputs} if isinstance(inputs, np.ndarray) else dict(inputs)
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in named.items()}


def _conv_output_ranges(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{Conv node name: (C,) float64 per-channel max - min of its output over ``feeds``}, one sample at a time."""
    convs = {n.output[0]: n.name for n in model.graph.node if n.op_type == "Conv"}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(onnx.ValueInfoProto(name=t) for t in convs if t not in known)
    session = onnxruntime_session(probe.SerializeToString(), optimize=False)  # keeps every Conv output
    names = [o.name for o in session.get_outputs()]
    low: dict[str, np.ndarray] = {}
    high: dict[str, np.ndarray] = {}
    for index in range(len(next(iter(feeds.values())))):
        outputs = dict(zip(names, session.run(None, {k: v[index : index + 1] for k, v in feeds.items()})))
        for tensor in convs:
            value = outputs[tensor].astype(np.float64)
            axes = (0,) + tuple(range(2, value.ndim))
            low[tensor] = np.minimum(low.get(tensor, np.inf), value.min(axis=axes))
            high[tensor] = np.maximum(high.get(tensor, -np.inf), value.max(axis=axes))
    return {convs[t]: high[t] - low[t] for t in convs}


def cancelling_convs(
    model: onnx.ModelProto, inputs: np.ndarray | Mapping[str, np.ndarray], ratio: float = CANCELLING_BIAS_RATIO,
    count: int = 8,
) -> list[str]:
    """Names of the Conv nodes whose output is a small difference of large terms.

    A Conv is listed when some live output channel c (one that varies over the crops)
    has ``|bias_c| > ratio * range_c``, the range being max - min of channel c over the
    first ``count`` of ``inputs``: (N, C, S, S) float32 crops for the model's ``input``, or
    {input name: (N, ...) float32} for a model with other inputs (a two-part model's part).
    Its pre-activation is then a large weighted sum cancelling a large bias, so 8-bit
    rounding of its inputs, summed over the kernel, is large against the output.
    ``model`` must hold its weights (biases are read from its initializers).
    """
    if ratio <= 0:
        raise ValueError(f"ratio must be positive, got {ratio}")
    weights = {t.name: t for t in model.graph.initializer}
    ranges = _conv_output_ranges(model, {k: v[:count] for k, v in _feeds(inputs).items()})
    listed = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3 or node.input[2] not in weights:
            continue
        bias = np.abs(onnx.numpy_helper.to_array(weights[node.input[2]]).astype(np.float64))
        spread = ranges[node.name]
        live = spread > 1e-3 * max(spread.max(), 1e-12)
        if np.any(bias[live] > ratio * spread[live]):
            listed.append(node.name)
    return listed


def _element_type(elem_type: int) -> str:
    """An ONNX element type as NumPy names it ("float32", "int64", ...), else ONNX's own name."""
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower() if elem_type in onnx.TensorProto.DataType.values() else str(elem_type)


def check_source(path: str | Path) -> onnx.ModelProto:
    """The FAIRS model at ``path`` without its external data, checked: FAIRS metadata and float32 inputs.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ONNX file, or not a FAIRS model (its metadata or input types).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}")
    read_metadata(path)  # not ONNX, or a foreign model: ValueError / NotAFairsModelError
    model = onnx.load(str(path), load_external_data=False)
    check_input_types(path, {i.name: _element_type(i.type.tensor_type.elem_type) for i in model.graph.input})
    return model


def load_source(path: str | Path) -> onnx.ModelProto:
    """The FAIRS model at ``path`` with its weights, ready to convert (:func:`check_source`, then its data).

    External data (tensors kept in files beside the model) is read from the model's own
    folder only, as onnx allows; its inputs must be float32 (:func:`fairs_sdk.model_format.check_input_types`).

    Raises:
        ValueError: not an ONNX file, not a FAIRS model (its metadata or input types), or
            external data that is missing, truncated or outside the model's folder; the
            message names ``path``.
    """
    path = Path(path)
    model = check_source(path)
    external = sorted({
        entry.value
        for tensor in model.graph.initializer
        if onnx.external_data_helper.uses_external_data(tensor)
        for entry in tensor.external_data
        if entry.key == "location"
    })
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as error:  # onnx's ValidationError, OSError, ... for missing or out-of-folder data
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ValueError(
            f"{path}: cannot read its external data {external} (weights kept in files beside the model must lie "
            f"in its folder, {path.parent}): {first}"
        ) from None
    return model


def _sort_topologically(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` so every node follows its inputs' producers (the fp16 converter
    appends its I/O casts at the end, which ``onnx.checker`` rejects)."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError(f"graph has a cycle or a missing input near node {pending[0].name!r}")
        for node in ready:
            available.update(node.output)
        ordered.extend(ready)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def _remove_cast_round_trips(graph: onnx.GraphProto) -> int:
    """Bypass ``x -> Cast(fp16) -> Cast(fp32)`` pairs: the float16 converter puts one between
    every two blocked nodes, which would round the attention's Gram matrix through fp16
    (and overflow it) although both nodes run in fp32. Returns the number bypassed."""
    producer = {o: n for n in graph.node for o in n.output}

    def cast_to(node: onnx.NodeProto) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    rename: dict[str, str] = {}
    for node in graph.node:
        first = producer.get(node.input[0]) if node.input else None
        if cast_to(node) == onnx.TensorProto.FLOAT and first is not None and cast_to(first) == onnx.TensorProto.FLOAT16:
            rename[node.output[0]] = first.input[0]
    graph_outputs = {o.name for o in graph.output}
    rename = {k: v for k, v in rename.items() if k not in graph_outputs}
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name in rename:
                node.input[index] = rename[name]
    # Drop the casts nobody reads any more.
    while True:
        used = {i for n in graph.node for i in n.input} | graph_outputs
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    return len(rename)


#: Metadata entries of a two-part model's combined file that a converted copy must not keep.
_PART_ENTRIES = ("parts", "part_sha256")


def _with_precision(
    model: onnx.ModelProto, precision: str, source: onnx.ModelProto, parts: Mapping[str, Path] | None = None, **extra
) -> onnx.ModelProto:
    """``model`` with ``source``'s metadata at ``precision``, plus ``extra``.

    A two-part model's combined file names its fp32 parts; the converted copy names
    ``parts`` instead (the converted parts' files beside it, by part, with their sha256),
    or none, so the runtime runs it whole rather than loading the fp32 parts beside it.
    """
    meta = read_metadata(source)
    kept = {k: v for k, v in meta.extra.items() if k not in _PART_ENTRIES}
    if parts:
        kept["parts"] = {part: Path(path).name for part, path in parts.items()}
        kept["part_sha256"] = {part: file_sha256(path) for part, path in parts.items()}
    set_metadata(model, replace(meta, precision=precision, extra={**kept, **extra}))
    return model


def convert_fp16(
    fp32_path: str | Path, output: str | Path, keep_fp32: Sequence[str] | None = None, *,
    parts: Mapping[str, Path] | None = None,
) -> Path:
    """Write the fp16 version of ``fp32_path`` to ``output``; float32 I/O, attention in fp32.

    ``keep_fp32``: node names to keep fp32 (default: :func:`attention_nodes`). ``parts``:
    the converted parts beside ``output`` that its metadata names (:func:`convert_bundle`).
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    source = load_source(fp32_path)
    blocked = list(attention_nodes(source) if keep_fp32 is None else keep_fp32)
    model = onnx.ModelProto()
    model.CopyFrom(source)  # the converter changes its argument
    model = convert_float_to_float16(model, keep_io_types=True, node_block_list=blocked, disable_shape_infer=False)
    _remove_cast_round_trips(model.graph)
    _sort_topologically(model.graph)
    _with_precision(model, "fp16", source, parts, fp32_nodes=len(blocked))
    onnx.checker.check_model(model)
    output = Path(output)
    onnx.save_model(model, str(output))
    return output


class FeedReader:
    """ONNX Runtime ``CalibrationDataReader`` over named float32 arrays of one length N, ``batch`` per read.

    Subclasses nothing at import time so the module loads without onnxruntime's
    quantization package; :func:`quantize_int8` wraps it.
    """

    def __init__(self, feeds: Mapping[str, np.ndarray], batch: int = 1) -> None:
        if batch < 1:
            raise ValueError(f"batch must be positive, got {batch}")
        self.feeds = _feeds(feeds)
        lengths = {name: len(value) for name, value in self.feeds.items()}
        if not lengths or len(set(lengths.values())) != 1 or 0 in lengths.values():
            raise ValueError(f"calibration inputs must be non-empty and of one length, got {lengths}")
        self.count = next(iter(lengths.values()))
        self.batch, self.position = batch, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.count:
            return None
        start, self.position = self.position, self.position + self.batch
        return {name: np.ascontiguousarray(value[start : self.position]) for name, value in self.feeds.items()}

    def rewind(self) -> None:
        self.position = 0

    def __len__(self) -> int:
        return -(-self.count // self.batch)


class CropCalibrationReader(FeedReader):
    """:class:`FeedReader` over (N, C, S, S) float32 crops for a whole model's ``input``.

    ``inputs`` must hold the channels of ``spec`` (the model's input spec).
    """

    def __init__(self, inputs: np.ndarray, spec: InputSpec, batch: int = 1) -> None:
        if batch < 1:
            raise ValueError(f"batch must be positive, got {batch}")
        super().__init__({INPUT_NAME: check_inputs(inputs, spec, what="calibration inputs")}, batch)

    @property
    def inputs(self) -> np.ndarray:
        return self.feeds[INPUT_NAME]


def quantize_int8(
    fp32_path: str | Path,
    output: str | Path,
    calibration: np.ndarray | Mapping[str, np.ndarray],
    method: str = "minmax",
    per_channel: bool = True,
    keep_fp32: Sequence[str] | None = None,
    op_types: Sequence[str] = INT8_OP_TYPES,
    bias_ratio: float | None = CANCELLING_BIAS_RATIO,
    *,
    parts: Mapping[str, Path] | None = None,
) -> Path:
    """Static int8 (QDQ) quantisation of ``fp32_path`` calibrated on ``calibration``.

    ``calibration`` is (N, C, S, S) float32 encoded crops holding the model's declared
    channels (its metadata's input spec), e.g. from :func:`fairs_sdk.export.samples.stack_inputs`;
    for a two-part model's part, {input name: (N, ...) float32} naming each of its inputs
    (:func:`convert_bundle` makes them).

    Args:
        method: "minmax", "entropy" or "percentile" (ONNX Runtime calibration methods).
        per_channel: per-output-channel weight scales (better accuracy on convolutions).
        keep_fp32: node names left unquantised (default: :func:`attention_nodes`).
        op_types: op types to quantise (default :data:`INT8_OP_TYPES`, the convolutions);
            ONNX Runtime then quantises the inputs those ops read and the outputs they write.
        bias_ratio: also keep fp32 the convolutions :func:`cancelling_convs` lists at this
            ratio (``None``: none). Their names go into the metadata (``fp32_convs``).
        parts: the converted parts beside ``output`` that its metadata names (:func:`convert_bundle`).
    """
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {sorted(methods)}")
    if isinstance(op_types, str) or not op_types or not all(isinstance(t, str) and t for t in op_types):
        raise ValueError(f"op_types must be a non-empty list of ONNX op type names, got {op_types!r}")
    source = load_source(fp32_path)
    if isinstance(calibration, np.ndarray):
        feeds = {INPUT_NAME: check_inputs(calibration, read_metadata(source).input_spec, what="calibration inputs")}
    else:
        feeds = _feeds(calibration)
    wanted = sorted(i.name for i in source.graph.input)
    if sorted(feeds) != wanted:
        raise ValueError(f"{fp32_path} takes inputs {wanted}; the calibration names {sorted(feeds)}")

    class _Reader(FeedReader, CalibrationDataReader):
        pass

    reader = _Reader(feeds)

    excluded = list(attention_nodes(source) if keep_fp32 is None else keep_fp32)
    output = Path(output)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference + ORT graph optimisation (conv-BN already folded by export), as ORT recommends.
        source_path = str(Path(fp32_path).resolve())
        # ORT writes a debug copy of the model into the working directory when its
        # symbolic shape inference gives up: keep that inside the temporary folder.
        with contextlib.chdir(tmp):
            try:
                quant_pre_process(source_path, str(prepared), skip_symbolic_shape=False)
            except Exception as error:  # ORT raises a bare Exception("Incomplete symbolic shape inference")
                if "symbolic shape" not in str(error):
                    raise
                # Lite0's "same" padding plus the skip decoder's resizes defeat ORT's symbolic
                # inference; ONNX's own shape inference (still run) is enough for static quantisation.
                quant_pre_process(source_path, str(prepared), skip_symbolic_shape=True)
        # Pre-processing renames nothing, but may fuse: keep only names that still exist.
        prepared_model = onnx.load(str(prepared))
        existing = {n.name for n in prepared_model.graph.node}
        fp32_convs = [] if bias_ratio is None else cancelling_convs(prepared_model, reader.feeds, bias_ratio)
        del prepared_model
        quantize_static(
            str(prepared),
            str(output),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(op_types),
            nodes_to_exclude=[n for n in excluded if n in existing] + fp32_convs,
            calibrate_method=methods[method],
            extra_options={"CalibTensorRangeSymmetric": False},
        )
    model = onnx.load(str(output))
    _with_precision(model, "int8", source, parts, calibration_method=method, calibration_crops=reader.count,
                    fp32_nodes=len(excluded) + len(fp32_convs), int8_op_types=list(op_types), fp32_convs=fp32_convs)
    onnx.save_model(model, str(output))
    return output


def convert_bundle(
    fp32_path: str | Path, output: str | Path, precision: str, calibration: np.ndarray | None = None,
    method: str = "minmax", bias_ratio: float | None = CANCELLING_BIAS_RATIO,
) -> dict[str, Path]:
    """fp16 or int8 copy of a two-part model, ready for the runtime's sessions.

    ``fp32_path`` is the combined file of a bundle (its metadata names its parts). Writes
    ``output`` (``<stem>.onnx``, the whole model converted) and the converted parts beside
    it, ``<stem>.encoder.onnx`` and ``<stem>.decoder.onnx``; ``output``'s metadata names
    them with their sha256, as :func:`fairs_sdk.export.two_part.export_bundle` does.

    int8: ``calibration`` is (N, C, S, S) float32 crops, as for :func:`quantize_int8`. Each
    file is calibrated on what it reads at run time: the whole model on the crops, the
    image encoder on their RGB planes, the decoder on the fp32 encoder's outputs for
    them and their guidance planes. ``method`` and ``bias_ratio`` as for :func:`quantize_int8`.

    Returns {"combined", "image_encoder", "decoder": path}.
    """
    if precision not in ("fp16", "int8"):
        raise ValueError(f"precision must be 'fp16' or 'int8', got {precision!r}")
    if precision == "int8" and calibration is None:
        raise ValueError("int8 needs calibration crops")
    source = Path(fp32_path)
    meta = read_metadata(source)
    parts = meta.part_paths(source)
    if parts is None:
        raise ValueError(f"{source} is not the combined file of a two-part model (its metadata names no parts)")
    missing = [str(path) for path in parts.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"{source}: its parts {missing} are missing")
    output = Path(output)
    if output.suffix != ".onnx":
        raise ValueError(f"output must be a .onnx file name, got {output}")
    written = {IMAGE_ENCODER: output.with_name(f"{output.stem}.encoder.onnx"),
               DECODER: output.with_name(f"{output.stem}.decoder.onnx")}
    if precision == "fp16":
        for part in (IMAGE_ENCODER, DECODER):
            convert_fp16(parts[part], written[part])
        convert_fp16(source, output, parts=written)
    else:
        crops = check_inputs(calibration, meta.input_spec, what="calibration inputs")
        (rgb_name,) = PART_INPUTS[IMAGE_ENCODER]
        rgb = np.ascontiguousarray(crops[:, :3])
        options = {"method": method, "bias_ratio": bias_ratio}
        quantize_int8(parts[IMAGE_ENCODER], written[IMAGE_ENCODER], {rgb_name: rgb}, **options)
        encoder = onnxruntime_session(parts[IMAGE_ENCODER])
        encoded = [encoder.run(list(PART_OUTPUTS[IMAGE_ENCODER]), {rgb_name: rgb[i : i + 1]}) for i in range(len(rgb))]
        decoder_feeds = {name: np.concatenate([e[k] for e in encoded]) for k, name in enumerate(PART_OUTPUTS[IMAGE_ENCODER])}
        guidance_name = next(n for n in PART_INPUTS[DECODER] if n not in decoder_feeds)
        decoder_feeds[guidance_name] = np.ascontiguousarray(crops[:, 3:])
        quantize_int8(parts[DECODER], written[DECODER], decoder_feeds, **options)
        quantize_int8(source, output, crops, **options, parts=written)
    return {"combined": output, **written}
