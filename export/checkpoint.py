"""Load a training checkpoint into an eval-mode :class:`~fairs_sdk.training.model.FAIRSNet` with its input spec.

A checkpoint is a ``torch.save``d dict with at least ``"model"`` (the state dict)
and ``"config"``: a dict holding ``"model"`` (``ModelConfig.to_dict()``) and
``"input"`` (``InputSpec.to_dict()``). The file is read weights-only by
:func:`~fairs_sdk.training.checkpoint_io.read_checkpoint` (it never runs code), and every
way it can fail to be that raises :class:`CheckpointError` with what is wrong and which file.

The model's input channels (SPEC 1b) come from the saved input spec
(``config["input"]["input_channels"]``) or the model section
(``config["model"]["input_channels"]``); where both are given they must agree, and a
checkpoint saved before models declared channels takes ``rgb, sfg``
(:data:`~fairs_sdk.config.DEFAULT_CHANNELS`). The network must take that many planes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from torch import nn

from fairs_sdk.config import DEFAULT_CHANNELS, InputSpec
from fairs_sdk.training.checkpoint_io import CheckpointError, read_checkpoint
from fairs_sdk.training.model import ModelConfig, build_model

__all__ = ["CheckpointError", "Checkpoint", "config_digest", "declared_channels", "from_state", "load_checkpoint"]


@dataclass
class Checkpoint:
    """An eval-mode model with everything export needs to describe it.

    Attributes:
        model: the network (a ``FAIRSNet`` when loaded from a file), eval mode, on CPU, float32.
        model_config: how it was built.
        input_spec: its input conventions (size, relax, SFG, normalisation, input channels).
        config: the checkpoint's full training config dict.
        digest: sha256 of ``config`` (:func:`config_digest`).
        path: the file it came from (None when built in memory).
        info: the checkpoint's own bookkeeping, where present (version, epoch, global_step).
    """

    model: nn.Module
    model_config: ModelConfig
    input_spec: InputSpec
    config: dict[str, Any]
    digest: str
    path: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)


def config_digest(config: Mapping[str, Any]) -> str:
    """sha256 hex of ``config`` as canonical JSON (sorted keys); non-JSON values use ``str``."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _section(config: Mapping[str, Any], key: str, source: str) -> dict[str, Any]:
    value = config.get(key)
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{source}: config has no '{key}' section (a dict); found keys {sorted(config)}")
    return dict(value)


def declared_channels(
    model_section: Mapping[str, Any], input_section: Mapping[str, Any], source: str = "checkpoint"
) -> tuple[str, ...]:
    """The input channels a checkpoint's config declares, in order (see the module docstring)."""
    declared = {}
    for name, section in (("input", input_section), ("model", model_section)):
        value = section.get("input_channels")
        if value is None:
            continue
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise CheckpointError(f"{source}: {name}.input_channels must be a list of channel names, got {value!r}")
        declared[f"{name}.input_channels"] = tuple(value)
    if len(set(declared.values())) > 1:
        raise CheckpointError(f"{source}: the config declares two different input channel lists: {declared}")
    return next(iter(declared.values()), DEFAULT_CHANNELS)


def from_state(state: Mapping[str, Any], source: str = "checkpoint") -> Checkpoint:
    """Build the model of an already loaded checkpoint dict (see module docstring)."""
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{source}: expected a dict with 'model' and 'config', got {type(state).__name__}")
    missing = [key for key in ("model", "config") if key not in state]
    if missing:
        raise CheckpointError(f"{source}: missing {missing}; a FAIRS checkpoint has 'model' and 'config' (keys found: {sorted(state)})")
    config = state["config"]
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{source}: 'config' must be a dict, got {type(config).__name__}")
    model_section, input_section = _section(config, "model", source), _section(config, "input", source)
    try:
        model_config = ModelConfig.from_dict(model_section)
        input_spec = InputSpec.from_dict(input_section)
        input_spec = replace(input_spec, input_channels=declared_channels(model_section, input_section, source))
    except (TypeError, ValueError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{source}: config does not describe a FAIRS model: {err}") from err
    # The model config's own plane count: ``channel_count`` of its input_channels, or the
    # ``in_chans`` of configs written before models declared their channels.
    planes = getattr(model_config, "channel_count", getattr(model_config, "in_chans", None))
    if planes is not None and planes != input_spec.channel_count:
        raise CheckpointError(
            f"{source}: the network takes {planes} input planes but its input channels "
            f"{list(input_spec.input_channels)} make {input_spec.channel_count}"
        )
    # Weights come from the checkpoint itself; never read the ImageNet file again.
    try:
        model = build_model(replace(model_config, pretrained=None))
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{source}: cannot build the model of its config {model_config}: {err}") from err
    weights = state["model"]
    if not isinstance(weights, Mapping):
        raise CheckpointError(f"{source}: 'model' must be a state dict, got {type(weights).__name__}")
    weights = {k[len("module."):] if k.startswith("module.") else k: v for k, v in weights.items()}
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{source}: weights do not fit {model_config.backbone}/{model_config.head}: {err}") from err
    model.eval().float()
    info = {k: state[k] for k in ("version", "epoch", "global_step") if isinstance(state.get(k), (int, str))}
    return Checkpoint(model, model_config, input_spec, dict(config), config_digest(config), info=info)


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read ``path`` (CPU, weights-only) and rebuild its model; :class:`CheckpointError` on any mismatch."""
    path = Path(path)
    state = read_checkpoint(path)
    checkpoint = from_state(state, source=str(path))
    checkpoint.path = path
    return checkpoint
