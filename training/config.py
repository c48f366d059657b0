"""Training configuration: one dataclass tree, loaded from YAML/JSON, saved with every checkpoint.

``TrainConfig.to_dict()`` is plain JSON; ``TrainConfig.from_dict`` checks every value
against its field's type and allowed range (:data:`RULES`) and rejects unknown keys, so
a typo or a wrong value in a config file is a :class:`ConfigError` naming the key, the
value and what is allowed, when the config is loaded (not an epoch later). Integers
are real integers (not 2.5, not ``true``), booleans real booleans (not ``"false"``),
names among the known ones. Overrides on the command line use dotted keys:
``optim.lr=0.01 model.backbone=resnet18``, and are checked the same way.
:func:`load_refine_config` does the same for ``fairs-train refine``'s
:class:`~fairs_sdk.training.refine_train.RefineConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import timm
import yaml

from fairs_sdk.config import DEFAULT_CHANNELS, InputSpec

from .augmentation import AugmentConfig
from .backbones import KNOWN_BACKBONES
from .decoder import DECODERS
from .guidance import GUIDANCE_KINDS
from .heads import HEADS
from .model import ModelConfig
from .samples import SimulationConfig

if TYPE_CHECKING:
    from .refine_train import RefineConfig

__all__ = [
    "ConfigError",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "RULES",
    "check_fields",
    "apply_overrides",
    "read_config_file",
    "load_config",
    "load_refine_config",
    "learning_rate_factor",
]


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the key, the value and what is allowed."""


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
        """From a plain mapping (a config file, a checkpoint's ``config``); :class:`ConfigError` if
        a key is unknown or a value has the wrong type or range."""
        if isinstance(data, dict) and data.get("amp") is False:  # YAML 1.1 reads a bare `off` as false
            data = {**data, "amp": "off"}
        check_fields(cls, data)
        try:
            return _from_plain(cls, data, "")
        except ConfigError:
            raise
        except (ValueError, TypeError) as error:  # the dataclasses' own cross-field checks
            raise ConfigError(str(error)) from None

    def save(self, path: str | Path) -> None:
        """Write as YAML (.yaml/.yml) or JSON (anything else)."""
        path = Path(path)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False) if path.suffix in (".yaml", ".yml") else json.dumps(self.to_dict(), indent=2)
        path.write_text(text)


# ------------------------------------------------------------------------ validation
@dataclass(frozen=True)
class Rule:
    """What a field allows beyond its type: ``ok(value)`` is true (or raises ValueError saying why);
    ``allowed`` says it in words, e.g. "an integer >= 1"."""

    ok: Callable[[Any], bool]
    allowed: str


def _at_least(low: float, kind: str = "an integer") -> Rule:
    return Rule(lambda v: v >= low, f"{kind} >= {low:g}")


def _above(low: float) -> Rule:
    return Rule(lambda v: v > low, f"a number > {low:g}")


def _within(low: float, high: float, open_high: bool = False) -> Rule:
    return Rule(lambda v: low <= v < high if open_high else low <= v <= high,
                f"a number in [{low:g}, {high:g}{')' if open_high else ']'}")


def _one_of(choices: Sequence[str]) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


def _known_backbone(name: str) -> bool:
    return name in KNOWN_BACKBONES or timm.is_model(name)


def _range_pair(low: float, kind: str) -> Rule:
    return Rule(lambda v: low <= v[0] <= v[1], f"[low, high] {kind}, {low:g} <= low <= high")


def _valid_input_spec(values: Any) -> bool:
    InputSpec.from_dict(values)  # raises ValueError naming the field
    return True


_PROBABILITY = _within(0.0, 1.0)
_NONNEGATIVE = _at_least(0)
_POSITIVE = _at_least(1)
_SOURCES = Rule(lambda v: all(isinstance(s, (str, dict)) for s in v),
                "a list of data sources: folder paths or mappings such as {kind: folder, root: PATH}")
_SOURCE = Rule(lambda v: isinstance(v, (str, dict)), "a folder path or a mapping such as {kind: folder, root: PATH}")
_PATH = Rule(lambda v: v != "", "a non-empty path")

#: Per config class (by name), the fields whose values are restricted beyond their type.
#: Fields not listed take any value of their annotated type.
RULES: dict[str, dict[str, Rule]] = {
    "TrainConfig": {
        "epochs": _POSITIVE,
        "batch_size": _POSITIVE,
        "num_workers": _NONNEGATIVE,
        "amp": _one_of(("auto", "off", "bf16", "fp16")),
        "seed": _NONNEGATIVE,
        "output_dir": _PATH,
        "max_steps_per_epoch": Rule(lambda v: v >= 0, "an integer >= 0 (0: whole data set)"),
        "checkpoint_every": Rule(lambda v: v >= 1, "an integer >= 1 (epochs between checkpoints)"),
        "init_from": _PATH,
    },
    "ModelConfig": {
        "backbone": Rule(_known_backbone, f"a timm backbone name, e.g. one of {', '.join(KNOWN_BACKBONES)}"),
        "head": _one_of(HEADS),
        "head_channels": _POSITIVE,
        "output_stride": Rule(lambda v: v in (8, 16, 32), "8, 16 or 32"),
        "pretrained": _PATH,
        "dropout": _within(0.0, 1.0, open_high=True),
        "guidance": _one_of(GUIDANCE_KINDS),
        "decoder": _one_of(DECODERS),
        "decoder_channels": _POSITIVE,
    },
    "DataConfig": {
        "train": _SOURCES,
        "val": _SOURCES,
        "val_max_instances": _POSITIVE,
    },
    "SimulationConfig": {
        "point_noise": _at_least(0, "a number"),
        "three_point_probability": _PROBABILITY,
        "click_probability": _PROBABILITY,
        "max_positive_clicks": _NONNEGATIVE,
        "max_negative_clicks": _NONNEGATIVE,
        "click_distance": _range_pair(0.0, "canvas px"),
        "iterative_probability": _PROBABILITY,
        "max_iterative_clicks": _NONNEGATIVE,
    },
    "AugmentConfig": {
        "scale": Rule(lambda v: 0 < v[0] <= v[1], "[low, high] scale factors, 0 < low <= high"),
        "rotation": _within(0.0, 180.0),
        "flip_probability": _PROBABILITY,
    },
    "OptimConfig": {
        "name": _one_of(("sgd", "adamw")),
        "lr": _above(0.0),
        "momentum": _within(0.0, 1.0, open_high=True),
        "weight_decay": _at_least(0, "a number"),
        "schedule": _one_of(("constant", "poly", "steps")),
        "power": _above(0.0),
        "milestones": Rule(lambda v: all(m >= 1 for m in v), "a list of epochs, each >= 1"),
        "gamma": _above(0.0),
        "warmup_steps": _NONNEGATIVE,
        "head_lr_multiplier": _above(0.0),
    },
    # fairs-train refine (training/refine_train.py)
    "RefineConfig": {
        "output_dir": _PATH,
        "u2netp_weights": _PATH,
        "cache_dir": _PATH,
        "input": Rule(_valid_input_spec, "InputSpec fields (input_size, relax, input_channels, ...)"),
        "design": _one_of(("decoder", "end_to_end")),
        "guidance": _one_of(GUIDANCE_KINDS),
        "loss": _one_of(("balanced", "bce")),
        "width": _POSITIVE,
        "init_from": _PATH,
        "train_only": Rule(lambda v: v != [] and "" not in ([v] if isinstance(v, str) else v),
                           "a module name or a non-empty list of them, e.g. click_branch"),
        "feature_dropout": _within(0.0, 1.0, open_high=True),
        "ema": _within(0.0, 1.0, open_high=True),
        "click_local_strength": _at_least(0, "a number"),
        "steps": _POSITIVE,
        "batch_size": _POSITIVE,
        "lr": _above(0.0),
        "weight_decay": _at_least(0, "a number"),
        "warmup_steps": _NONNEGATIVE,
        "point_noise": _at_least(0, "a number"),
        "three_point_probability": _PROBABILITY,
        "click_probability": _PROBABILITY,
        "iterative_probability": _PROBABILITY,
        "max_iterative_clicks": _POSITIVE,
        "validate_every": Rule(lambda v: v >= 1, "an integer >= 1 (steps between validations)"),
        "checkpoint_every": Rule(lambda v: v >= 1, "an integer >= 1 (steps between checkpoints)"),
        "threads": _POSITIVE,
        "seed": _NONNEGATIVE,
    },
    "CacheSource": {
        "name": Rule(lambda v: v != "", "a non-empty name"),
        "source": _SOURCE,
        "weight": _above(0.0),
        "every": _POSITIVE,
        "sample": _POSITIVE,
        "crop_points": _one_of((3, 4)),
    },
}

#: Keys a class reads besides its fields (old checkpoints' ``model.in_chans``); their values
#: are checked by the class itself.
_LEGACY_KEYS: dict[str, frozenset[str]] = {"ModelConfig": frozenset({"in_chans"})}


def _describe(hint: Any) -> str:
    """A type annotation in words: "an integer", "a list of numbers", ..."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        return " or ".join(_describe(a) for a in others) + (" or null" if len(others) < len(args) else "")
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str:
        return "a string"
    if origin in (list, tuple) and args:
        if origin is tuple and args[-1] is not Ellipsis:
            return f"a list of {len(args)} {_plural(args[0])}"
        return f"a list of {_plural(args[0])}"
    if origin in (list, tuple):
        return "a list"
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return "a mapping"
    return "a value"


def _plural(hint: Any) -> str:
    if dataclasses.is_dataclass(hint):
        return "mappings"
    return {int: "integers", float: "numbers", str: "strings", bool: "booleans"}.get(hint, "values")


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (from YAML/JSON) has the type ``hint`` names, recursively for lists;
    a mapping fits a dataclass (its fields are checked by :func:`check_fields`)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if not args:
            return True
        if origin is tuple and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return all(_fits(v, args[0]) for v in value)
    if origin is dict or hint is dict or dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    return isinstance(value, hint)


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass that ``hint`` (``X``, ``X | None`` or ``list[X]``) holds, if any."""
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        found = _dataclass_in(arg)
        if found is not None:
            return found
    return None


def check_fields(cls: type, data: Any, prefix: str = "") -> None:
    """Raise :class:`ConfigError` unless the plain mapping ``data`` fits the config dataclass ``cls``.

    Checks that ``data`` is a mapping, that every key is a field of ``cls`` and every
    field without a default is present, that each value has its field's annotated type
    (recursively into nested config dataclasses and lists of them), and the
    :data:`RULES` of ``cls``. ``prefix`` ("optim.") is prepended to the keys in messages.
    """
    where = prefix.rstrip(".") or "the config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {type(data).__name__} {data!r}")
    if cls is InputSpec:
        try:
            InputSpec.from_dict(data)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{where}: {error}") from None
        return
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    legacy = _LEGACY_KEYS.get(cls.__name__, frozenset())
    unknown = [k for k in data if k not in fields and k not in legacy]
    if unknown:
        names = ", ".join(prefix + str(k) for k in unknown)
        raise ConfigError(f"unknown config keys: {names} ({where} has: {', '.join(fields)})")
    required = [n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [prefix + n for n in required if n not in data]
    if missing:
        raise ConfigError(f"{where} lacks the required key(s) {', '.join(missing)}")
    rules = RULES.get(cls.__name__, {})
    for key, value in data.items():
        if key in legacy:
            continue
        _check_value(prefix + key, value, hints[key], rules.get(key))


def _check_value(key: str, value: Any, hint: Any, rule: Rule | None) -> None:
    if not _fits(value, hint):
        allowed = _describe(hint)
        if rule is not None:
            allowed = f"{allowed} ({rule.allowed})" if _describe(hint) not in rule.allowed else rule.allowed
        raise ConfigError(f"{key} = {value!r}: must be {allowed}")
    nested = _dataclass_in(hint)
    if nested is not None and value is not None:
        if isinstance(value, dict):
            check_fields(nested, value, key + ".")
        else:  # a list of them
            for index, item in enumerate(value):
                check_fields(nested, item, f"{key}[{index}].")
        return
    if rule is None or value is None:
        return
    try:
        ok = rule.ok(value)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{key}: {error}") from None
    if not ok:
        raise ConfigError(f"{key} = {value!r}: must be {rule.allowed}")


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
            raise ConfigError(f"override {item!r} must be key=value")
        key, text = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({getattr(error, 'problem', error)})") from None
    return data


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON config file (an empty file is an empty mapping).

    Raises :class:`ConfigError` (one line, naming the file) when the file is missing or
    unreadable, is not valid YAML/JSON, or does not hold a mapping of keys to values.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" if not path.exists() else f"config {path} is not a file")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config {path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"config {path} is not valid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a mapping of keys to values, got {type(data).__name__}")
    return data


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """A :class:`TrainConfig` from a YAML or JSON file (or defaults), with overrides applied and
    every value checked (:class:`ConfigError`)."""
    data = read_config_file(path) if path is not None else {}
    return TrainConfig.from_dict(apply_overrides(data, overrides))


def load_refine_config(path: str | Path, overrides: Sequence[str] = ()) -> "RefineConfig":
    """``fairs-train refine``'s config from a YAML or JSON file, overrides applied, every value checked."""
    from .refine_train import RefineConfig

    data = apply_overrides(read_config_file(path), overrides)
    check_fields(RefineConfig, data)
    try:
        return RefineConfig.from_dict(data)
    except (ValueError, TypeError) as error:  # its own cross-field checks
        raise ConfigError(str(error)) from None


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
