"""Checkpoint -> ONNX file with metadata, checked by ``onnx.checker`` and by ONNX Runtime parity.

The graph follows :mod:`fairs_sdk.model_format`: input ``input`` (N, C, S, S) float32
holding the model's declared channels (``InputSpec.input_channels``; C is
``InputSpec.channel_count``: 3 planes for ``rgb``, 1 for each guidance channel), output
``probabilities`` (N, 1, S, S) float32; N is dynamic unless ``dynamic_batch=False``.
The input spec, channels included, is written into the metadata. Exported with the TorchScript exporter (``dynamo=False``):
it keeps module scopes in node names (``/model/head/channel/MatMul``), which the
fp16 / int8 / TensorRT steps use to keep the attention in fp32.
"""

from __future__ import annotations

import io
import warnings
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from fairs_sdk.model_format import INPUT_NAME, OUTPUT_NAME, ModelMetadata
from fairs_sdk.training.heads import ChannelAttention, PositionAttention

from .checkpoint import Checkpoint
from .wrapper import ExportWrapper

__all__ = [
    "DEFAULT_OPSET",
    "ParityError",
    "export_onnx",
    "attention_scopes",
    "set_metadata",
    "read_metadata",
    "onnxruntime_session",
    "run_onnx",
    "run_torch",
    "check_parity",
]

DEFAULT_OPSET = 17
#: Largest allowed max-abs difference of ORT against PyTorch probabilities (fp32).
PARITY_ATOL = 1e-4


class ParityError(AssertionError):
    """ONNX Runtime and PyTorch disagree by more than the tolerance."""


def _sdk_version() -> str:
    try:
        return importlib_metadata.version("fairs-sdk")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def set_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> onnx.ModelProto:
    """Replace the ``fairs.*`` entries of ``model.metadata_props`` with ``meta``; returns ``model``."""
    props = meta.to_props()
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in kept}, **props})
    return model


def read_metadata(path_or_model: str | Path | onnx.ModelProto) -> ModelMetadata:
    """The :class:`ModelMetadata` of an ONNX file or proto (weights not loaded for a path)."""
    if isinstance(path_or_model, onnx.ModelProto):
        model, source = path_or_model, "model"
    else:
        source = str(path_or_model)
        try:
            model = onnx.load(source, load_external_data=False)
        except FileNotFoundError:
            raise
        except Exception as err:  # protobuf DecodeError and friends
            raise ValueError(f"{source} is not an ONNX file: {err}") from err
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, source=source)


def attention_scopes(wrapper: ExportWrapper) -> list[str]:
    """ONNX node-name prefixes of the attention modules (``/model/head/channel/``), as the
    TorchScript exporter names nodes after module paths. fp16, int8 and TensorRT keep
    the nodes under these prefixes in fp32."""
    return [
        "/" + name.replace(".", "/") + "/"
        for name, module in wrapper.named_modules()
        if isinstance(module, (PositionAttention, ChannelAttention))
    ]


def _fix_output_shape(model: onnx.ModelProto, size: int, dynamic_batch: bool) -> None:
    """Declare the output (N, 1, S, S): the exporter cannot infer it through Resize's runtime sizes."""
    dims = model.graph.output[0].type.tensor_type.shape.dim
    del dims[:]
    for value in ("N" if dynamic_batch else 1, 1, size, size):
        dim = dims.add()
        if isinstance(value, str):
            dim.dim_param = value
        else:
            dim.dim_value = value


def export_onnx(
    checkpoint: Checkpoint,
    output: str | Path,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Export ``checkpoint`` to ``output`` (fp32) and run ``onnx.checker`` (full check) on it.

    Args:
        opset: ONNX opset, 17 or newer.
        dynamic_batch: N is a dynamic axis; otherwise the file is fixed to N = 1.
        extra: added to the metadata's free-form ``extra`` dict.
    Returns:
        ``output`` as a Path.
    """
    if opset < 17:
        raise ValueError(f"opset must be 17 or newer, got {opset}")
    if checkpoint.model_config.guidance != "sfg":
        raise ValueError(
            f"this model was trained with guidance={checkpoint.model_config.guidance!r}; the runtime "
            "computes only the SFG, so only guidance='sfg' models can be exported"
        )
    output = Path(output)
    spec = checkpoint.input_spec
    wrapper = ExportWrapper(checkpoint.model, spec).eval()
    dummy = torch.zeros(1, spec.channel_count, spec.input_size, spec.input_size, dtype=torch.float32)
    buffer = io.BytesIO()
    axes = {INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            torch.onnx.export(
                wrapper,
                (dummy,),
                buffer,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamic_axes=axes,
                do_constant_folding=True,
                dynamo=False,
            )
        except RuntimeError as err:  # a stem built for another channel count fails here
            raise ValueError(
                f"cannot export: the network does not run on the (1, {spec.channel_count}, {spec.input_size}, "
                f"{spec.input_size}) input of its declared channels {list(spec.input_channels)}: {err}"
            ) from err
    model = onnx.load_model_from_string(buffer.getvalue())
    _fix_output_shape(model, spec.input_size, dynamic_batch)
    model.producer_name = "fairs_sdk.export"
    model.producer_version = _sdk_version()
    meta = ModelMetadata(
        input_spec=spec,
        backbone=checkpoint.model_config.backbone,
        head=checkpoint.model_config.head,
        precision="fp32",
        config_digest=checkpoint.digest,
        extra={
            "sdk_version": _sdk_version(),
            "torch_version": torch.__version__,
            "opset": opset,
            "dynamic_batch": dynamic_batch,
            "model_config": checkpoint.model_config.to_dict(),
            "checkpoint": checkpoint.path.name if checkpoint.path else None,
            "checkpoint_info": checkpoint.info,
            "attention_scopes": attention_scopes(wrapper),
            **(extra or {}),
        },
    )
    set_metadata(model, meta)
    onnx.checker.check_model(model, full_check=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(output))
    return output


def onnxruntime_session(model: str | Path | bytes, threads: int | None = None, optimize: bool = True):
    """A CPU :class:`onnxruntime.InferenceSession` for ``model`` (a path, or the serialised
    model's bytes), ``threads`` intra-op threads (None: ORT's default); ``optimize=False``
    turns ORT's graph optimisations off, so every node's output stays as the graph names it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=["CPUExecutionProvider"])


def run_onnx(session, inputs: np.ndarray, batch: int | None = None) -> np.ndarray:
    """Probabilities (N, 1, S, S) float32 of ``inputs`` (N, C, S, S) float32, ``batch`` at a time."""
    inputs = np.ascontiguousarray(inputs, dtype=np.float32)
    step = batch or len(inputs)
    outs = [session.run([OUTPUT_NAME], {INPUT_NAME: inputs[i : i + step]})[0] for i in range(0, len(inputs), step)]
    return np.concatenate(outs).astype(np.float32, copy=False)


def run_torch(checkpoint: Checkpoint, inputs: np.ndarray, batch: int | None = None) -> np.ndarray:
    """PyTorch eager probabilities of the same inputs, through the same :class:`ExportWrapper`."""
    wrapper = ExportWrapper(checkpoint.model, checkpoint.input_spec).eval()
    step = batch or len(inputs)
    with torch.no_grad():
        outs = [wrapper(torch.from_numpy(np.ascontiguousarray(inputs[i : i + step], dtype=np.float32))).numpy() for i in range(0, len(inputs), step)]
    return np.concatenate(outs)


def check_parity(
    checkpoint: Checkpoint, onnx_path: str | Path, inputs: np.ndarray, atol: float = PARITY_ATOL
) -> float:
    """Max |ORT - PyTorch| over the probabilities of ``inputs`` (N, C, S, S); :class:`ParityError` above ``atol``."""
    expected = run_torch(checkpoint, inputs, batch=1)
    actual = run_onnx(onnxruntime_session(onnx_path), inputs)
    if actual.shape != expected.shape:
        raise ParityError(f"ONNX output shape {actual.shape} != PyTorch {expected.shape}")
    diff = float(np.abs(actual - expected).max())
    if not diff <= atol:
        raise ParityError(f"{onnx_path}: ONNX Runtime differs from PyTorch by {diff:.3g} (max abs probability) > {atol:g}")
    return diff
