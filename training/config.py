"""Training configuration: one dataclass tree, loaded from YAML/JSON, saved with every checkpoint.

``TrainConfig.to_dict()`` is plain JSON; ``TrainConfig.from_dict`` rejects unknown
keys so a typo in a config file is an error, not a silent default. Overrides on the
command line use dotted keys: ``optim.lr=0.01 model.backbone=resnet18``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from fairs_sdk.config import DEFAULT_CHANNELS, InputSpec

from .augmentation import AugmentConfig
from .model import ModelConfig
from .samples import SimulationConfig


@dataclass
class DataConfig:
    """Training and validation instance sources (see :func:`fairs_sdk.training.sources.build_source`).

    val_max_instances caps the per-epoch validation (full-image IoU with 4 exact
    extreme points).
    """

    train: list[Any] = field(default_factory=list)
    val: list[Any] = field(default_factory=list)
    val_max_instances: int | None = 100
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    augmentation: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig:
    """The optimiser ("sgd" with momentum, or "adamw") and a per-step learning-rate schedule.

    schedule: "constant"; "poly" (lr * (1 - t/T) ** power); or "steps" (lr multiplied by
    ``gamma`` at each epoch in ``milestones``, the paper's constant-then-reduced schedule).
    warmup_steps: linear warm-up from 0 over the first steps.
    """

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = False
    schedule: str = "poly"
    power: float = 0.9
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.5
    warmup_steps: int = 0
    head_lr_multiplier: float = 10.0

    def __post_init__(self) -> None:
        if self.name not in ("sgd", "adamw"):
            raise ValueError(f"optim.name must be sgd or adamw, got {self.name!r}")
        if self.schedule not in ("constant", "poly", "steps"):
            raise ValueError(f"optim.schedule must be constant, poly or steps, got {self.schedule!r}")
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")


@dataclass
class TrainConfig:
    """Everything a training run depends on.

    batch_size is per process. amp: "auto" (bf16 on GPUs that have it, else fp16;
    off on CPU), "off", "bf16" or "fp16" (GPU only). freeze_bn keeps every
    BatchNorm in eval mode with frozen affine parameters (small per-process
    batches); sync_bn converts them to SyncBatchNorm under DDP on GPUs.
    max_steps_per_epoch limits an epoch (0: whole data set). init_from: a training
    checkpoint whose network weights start this run (a warm start with a fresh
    optimiser and schedule; a decoder the checkpoint lacks keeps its initialisation, and
    input planes it lacks start as :func:`~fairs_sdk.training.backbones.remap_stem_weight` says).

    ``model.input_channels`` decides the network's input planes; ``input.input_channels``
    (what checkpoints and exported models carry) is set from it. A config that sets
    ``input.input_channels`` to anything else than the default or
    ``model.input_channels`` is refused, so the two can never disagree.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputSpec = field(default_factory=InputSpec)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 100
    batch_size: int = 8
    num_workers: int = 4
    amp: str = "auto"
    freeze_bn: bool = False
    sync_bn: bool = True
    seed: int = 0
    output_dir: str = "runs/fairs"
    max_steps_per_epoch: int = 0
    checkpoint_every: int = 1
    progress: bool = True
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.amp is False:  # YAML 1.1 reads a bare `off` as false
            self.amp = "off"
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}")
        declared = tuple(self.input.input_channels)
        if declared != self.model.input_channels:
            if declared != DEFAULT_CHANNELS:
                raise ValueError(
                    f"input.input_channels {list(declared)} differs from model.input_channels "
                    f"{list(self.model.input_channels)}; set model.input_channels only"
                )
            self.input = dataclasses.replace(self.input, input_channels=self.model.input_channels)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        return _from_plain(cls, data, "")

    def save(self, path: str | Path) -> None:
        """Write as YAML (.yaml/.yml) or JSON (anything else)."""
        path = Path(path)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False) if path.suffix in (".yaml", ".yml") else json.dumps(self.to_dict(), indent=2)
        path.write_text(text)


def _to_plain(value: Any) -> Any:
    if isinstance(value, InputSpec):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value


NESTED = {
    "model": ModelConfig,
    "input": InputSpec,
    "data": DataConfig,
    "optim": OptimConfig,
    "simulation": SimulationConfig,
    "augmentation": AugmentConfig,
}


def _from_plain(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if cls is InputSpec:
        return InputSpec.from_dict(dict(data))
    if cls is ModelConfig:  # its from_dict also reads checkpoints that predate input_channels
        return ModelConfig.from_dict(dict(data))
    if not isinstance(data, dict):
        raise ValueError(f"config section {prefix or '<root>'} must be a mapping, got {type(data).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"unknown config keys in {prefix or '<root>'}: {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key in NESTED and isinstance(value, dict):
            kwargs[key] = _from_plain(NESTED[key], value, f"{prefix}{key}.")
        elif isinstance(value, list) and isinstance(names[key].default, tuple):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set dotted ``key=value`` pairs in a plain config dict; values are parsed as YAML."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must be key=value")
        key, text = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = yaml.safe_load(text)
    return data


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML or JSON file (or defaults), with overrides applied."""
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        data = yaml.safe_load(text) or {}
    return TrainConfig.from_dict(apply_overrides(data, overrides))


def learning_rate_factor(config: OptimConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier of ``config.lr`` at optimiser step ``step`` (0-based) of ``total_steps``."""
    factor = 1.0
    if config.schedule == "poly":
        factor = max(1.0 - step / max(total_steps, 1), 0.0) ** config.power
    elif config.schedule == "steps":
        epoch = step // max(steps_per_epoch, 1)
        factor = config.gamma ** sum(epoch >= m for m in config.milestones)
    if config.warmup_steps > 0 and step < config.warmup_steps:
        factor *= (step + 1) / config.warmup_steps
    return float(factor) if math.isfinite(factor) else 0.0
