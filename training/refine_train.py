"""Training the decoder of the two-part model on cached encoder outputs (issue 12, design b).

Every step draws cached crops (:mod:`.feature_cache`), simulates the user on the
crop's canvas as SPEC 4 says (noisy extreme points, sometimes three of them, random
clicks, and rounds of corrective clicks on the model's own errors), encodes the
guidance planes with the runtime's :class:`~fairs_sdk.encoder.InputEncoder`, and
trains :class:`~.refiner.RefineDecoder` with the class-balanced BCE. Checkpoints
(``last.pt``, every ``checkpoint_every`` steps) hold the decoder, the optimiser and
the step, so ``--resume`` goes on where a run stopped; ``log.jsonl`` keeps the losses
and each validation.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fairs_sdk.config import InputSpec
from fairs_sdk.encoder import InputEncoder
from fairs_sdk.sfg import kernel_threads

from .checkpoint_io import read_checkpoint
from .feature_cache import FeatureCache
from .guidance import make_encoder
from .iterative import inside_box
from .losses import balanced_bce
from .refiner import RefineDecoder, U2EndToEnd, refine_decoder
from .simulate import (
    corrective_click, drop_to_three_points, extreme_points, iou, jitter_points, noisy_extreme_points, sample_training_clicks,
)

#: A cached crop's points were mapped from the image and its target resized, so an exact
#: point may sit a pixel or two off the resized object: its snap may reach this much further.
CACHED_POINT_SLACK = 4.0

__all__ = ["RefineConfig", "train_refiner", "validate", "validate_three"]


@dataclass
class CacheSource:
    """One cached training or validation set: a data source (as ``build_source`` takes it),
    which of its instances (``every`` K-th, or ``sample`` of them at random, seed 0), and its
    share of the training samples. ``crop_points`` 3 crops each object from three of its
    extreme points (:func:`.feature_cache.build_cache`); its samples then always use those
    three points. ``crop_jitter`` makes crops from moved points with more or less context."""

    name: str
    source: Any
    weight: float = 1.0
    every: int = 1
    sample: int | None = None
    crop_points: int = 4
    crop_jitter: bool = False

    def indices(self, count: int) -> list[int]:
        if self.sample is not None:
            return np.random.default_rng(0).permutation(count)[: self.sample].tolist()
        return list(range(0, count, self.every))


#: The config fields that shape the decoder (and so must be the same when a checkpoint is rebuilt).
DECODER_OPTIONS = ("width", "attention", "click_similarity", "fine_context", "click_branch", "click_locality",
                   "click_local_strength")


@dataclass
class RefineConfig:
    """What :func:`train_refiner` needs; see training/configs/default_u2_refine.yaml."""

    train: list[CacheSource]
    val: CacheSource
    output_dir: str
    u2netp_weights: str
    cache_dir: str = "runs/cache"
    input: dict[str, Any] = field(default_factory=dict)  # InputSpec fields
    design: str = "decoder"  # "decoder": frozen cached encoder (b); "end_to_end": whole U2-Netp (a)
    guidance: str = "sfg"  # "sfg", or "gaussian" (DEXTR's heat map in the SFG plane, for the ablation only)
    loss: str = "balanced"  # "balanced" (class-balanced BCE, DEXTR's) or "bce"; a soft IoU term is added to both
    width: int = 48
    attention: bool = True
    click_similarity: bool = False
    fine_context: bool = False
    click_branch: bool = False
    click_locality: bool = False  # the click branch's reach is a learned mixture of windows around the clicks
    click_local_strength: float = 0.0  # the click branch's own-Gaussian weights start at +this (positive) / -this (negative)
    val_three: CacheSource | None = None  # three-point crops of the validation objects: adds "3pts_crop" to each validation
    init_from: str | None = None  # a refine checkpoint whose decoder weights start this run (missing modules keep their init)
    train_only: str | list[str] | None = None  # e.g. "click_branch" or ["click_branch", "fine"]: the rest stays frozen
    feature_dropout: float = 0.0
    ema: float = 0.0  # > 0: validate and keep an exponential moving average of the weights (decay per step)
    steps: int = 4000
    stop_step: int | None = None  # end the run after this step (validated, saved); the schedule still spans `steps`
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    point_noise: float = 6.0  # canvas px
    three_point_probability: float = 0.25
    click_probability: float = 0.3
    iterative_probability: float = 0.6
    max_iterative_clicks: int = 3
    validate_every: int = 500
    checkpoint_every: int = 100
    threads: int = 2
    seed: int = 0

    @property
    def spec(self) -> InputSpec:
        return InputSpec.from_dict(self.input)

    @property
    def decoder_options(self) -> dict[str, Any]:
        """The decoder's architecture options, as :func:`~fairs_sdk.training.refiner.refine_decoder` takes them."""
        return {name: getattr(self, name) for name in DECODER_OPTIONS}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RefineConfig":
        """From a parsed YAML / JSON mapping; unknown keys are an error."""
        values = dict(values)
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown refine config keys: {sorted(unknown)}")
        values["train"] = [CacheSource(**c) for c in values.get("train", [])]
        if not values["train"]:
            raise ValueError("refine config needs at least one train cache source")
        values["val"] = CacheSource(**values["val"])
        if values.get("val_three") is not None:
            values["val_three"] = CacheSource(**values["val_three"])
        config = cls(**values)
        config.spec  # validates the input spec now
        if config.design not in ("decoder", "end_to_end"):
            raise ValueError(f"design must be 'decoder' or 'end_to_end', got {config.design!r}")
        if config.guidance not in ("sfg", "gaussian") or config.loss not in ("balanced", "bce"):
            raise ValueError(f"guidance must be sfg or gaussian and loss balanced or bce, got {config.guidance!r}, {config.loss!r}")
        if config.steps < 1 or config.batch_size < 1 or config.checkpoint_every < 1 or config.validate_every < 1:
            raise ValueError("steps, batch_size, checkpoint_every and validate_every must be >= 1")
        if config.stop_step is not None and not 1 <= config.stop_step <= config.steps:
            raise ValueError(f"stop_step must be between 1 and steps ({config.steps}), got {config.stop_step}")
        return config


def encoder_path(config: RefineConfig) -> Path:
    return Path(config.cache_dir) / "image_encoder.onnx"


def prepare_caches(config: RefineConfig, progress: bool = True) -> tuple[list[Path], list[Path]]:
    """Export the frozen image encoder (once) and encode every crop of the config's sources (resumable).

    Returns the train folders and [val folder] (+ the three-point val folder when configured)."""
    from fairs_sdk.export.onnx_export import onnxruntime_session
    from fairs_sdk.export.two_part import export_image_encoder

    from .feature_cache import build_cache
    from .sources import build_source

    session = None
    root = Path(config.cache_dir)
    if config.design == "decoder":
        path = encoder_path(config)
        if not path.exists():
            export_image_encoder(config.u2netp_weights, config.spec, path)
        session = onnxruntime_session(path, threads=config.threads)
    else:
        root = root / "pixels"  # crops only: the end-to-end model runs its encoder every step
    folders = []
    extra = [config.val_three] if config.val_three is not None else []
    for entry in config.train + [config.val] + extra:
        source = build_source(entry.source)
        folder = root / entry.name
        build_cache(source, entry.indices(len(source)), config.spec, session, folder, progress=progress,
                    crop_points=entry.crop_points, crop_jitter=entry.crop_jitter)
        folders.append(folder)
    return folders[: len(config.train)], folders[len(config.train) :]


def _points_planes(encoder: InputEncoder, extreme, positive, negative) -> torch.Tensor:
    return torch.from_numpy(encoder.guidance(extreme, _arr(positive), _arr(negative)))


def _arr(points) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


class CachedDecoder(nn.Module):
    """Design (b): the decoder on cached encoder outputs (features, saliency)."""

    def __init__(self, decoder: RefineDecoder) -> None:
        super().__init__()
        self.decoder = decoder

    @staticmethod
    def inputs(cache: FeatureCache, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        return (torch.from_numpy(cache.features[rows].astype(np.float32)),
                torch.from_numpy(cache.saliency[rows].astype(np.float32)))

    def forward(self, image: tuple[torch.Tensor, ...], guidance: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.decoder(*image, guidance), []


class EndToEnd(nn.Module):
    """Design (a): the whole U2-Netp with the guidance at its input, on cached crop pixels."""

    def __init__(self, model: U2EndToEnd) -> None:
        super().__init__()
        self.model = model

    @staticmethod
    def inputs(cache: FeatureCache, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
        return (torch.from_numpy(cache.pixels[rows].transpose(0, 3, 1, 2).astype(np.float32)),)

    def forward(self, image: tuple[torch.Tensor, ...], guidance: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out = self.model(torch.cat([image[0], guidance], 1))
        return out if isinstance(out, tuple) else (out, [])


def build_trainee(config: RefineConfig) -> nn.Module:
    """The module a config trains: :class:`CachedDecoder` or :class:`EndToEnd` (U2-Netp weights loaded)."""
    spec = config.spec
    if config.design == "decoder":
        return CachedDecoder(refine_decoder(spec, **config.decoder_options, feature_dropout=config.feature_dropout))
    from .u2netp import load_u2netp_onnx

    model = U2EndToEnd(spec)
    load_u2netp_onnx(model.u2, config.u2netp_weights)
    model.init_guidance_stem()
    return EndToEnd(model)


@torch.no_grad()
def _click_rounds(net, image, guidance, encoder, targets, ignores, extreme, positive, negative, rounds):
    """Predict, add the SPEC 4 click on each sample's largest error, re-encode; ``rounds`` times."""
    for _ in range(rounds):
        predicted = (net(image, guidance)[0][:, 0] > 0).numpy()
        for i in range(len(targets)):
            click = corrective_click(targets[i], predicted[i], ignores[i])
            if click is None:
                continue
            point, is_positive = click
            if is_positive and not inside_box(point, extreme[i]):
                continue  # it would move the crop
            (positive if is_positive else negative)[i].append(point)
            guidance[i] = _points_planes(encoder, extreme[i], positive[i], negative[i])
    return guidance


def _masks(cache: FeatureCache, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cache.target[rows] > 0, cache.valid[rows] > 0


def train_step_inputs(cache, rows, config: RefineConfig, encoder: InputEncoder, net, rng):
    """Image inputs, guidance (clicks simulated, iterative rounds run), target, valid for ``rows``."""
    image = net.inputs(cache, rows)
    target, valid = _masks(cache, rows)
    extreme, positive, negative, planes = [], [], [], []
    for row, t in zip(rows, target):
        kept = cache.crop_points(row)
        if kept is not None:  # a three-point crop: its own three points, with the same noise
            points = jitter_points(t, kept, rng, config.point_noise, slack=CACHED_POINT_SLACK)
        else:
            points = noisy_extreme_points(t, rng, config.point_noise)
            if rng.random() < config.three_point_probability:
                points = drop_to_three_points(points, rng)
        pos, neg = np.empty((0, 2)), np.empty((0, 2))
        if rng.random() < config.click_probability:
            pos, neg = sample_training_clicks(
                t, rng, int(rng.integers(0, 3)), int(rng.integers(0, 3)), distance_range=(3.0, 25.0)
            )
            pos = np.array([p for p in pos if inside_box(p, points)]).reshape(-1, 2)
        extreme.append(points)
        positive.append(list(pos))
        negative.append(list(neg))
        planes.append(_points_planes(encoder, points, pos, neg))
    guidance = torch.stack(planes)
    if rng.random() < config.iterative_probability:
        rounds = int(rng.integers(1, config.max_iterative_clicks + 1))
        net.eval()
        guidance = _click_rounds(net, image, guidance, encoder, target, ~valid, extreme, positive, negative, rounds)
        net.train()
    return image, guidance, torch.from_numpy(target[:, None].astype(np.float32)), torch.from_numpy(valid[:, None].astype(np.float32))


def selection_score(val: dict[str, float]) -> float:
    """What ``best.pt`` maximises: the mean validation mIoU over 4 points and each click count
    after them (the area under the mIoU-vs-clicks curve), so that no click may cost more than
    the last click gains; with three-point crops validated, their mIoU too."""
    keys = ["4pts"] + sorted((k for k in val if k.startswith("+")), key=lambda k: int(k[1:]))
    keys += ["3pts_crop"] if "3pts_crop" in val else []
    return sum(val[k] for k in keys) / len(keys)


def plain_bce(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over valid pixels (no class weights)."""
    per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1.0)


def soft_iou_loss(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits) * valid
    t = target * valid
    inter = (p * t).sum((1, 2, 3))
    union = (p + t - p * t).sum((1, 2, 3)).clamp_min(1.0)
    return (1 - inter / union).mean()


def _eval_batches(net, cache: FeatureCache, batch: int):
    """(rows, image inputs, target, ignore) for each ``batch`` cached crops in order, ``net`` in eval mode meanwhile."""
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(cache), batch):
            rows = np.arange(start, min(start + batch, len(cache)))
            target, valid = _masks(cache, rows)
            yield rows, net.inputs(cache, rows), target, ~valid
    finally:
        net.train(was_training)


@torch.no_grad()
def validate(net, cache: FeatureCache, encoder: InputEncoder, clicks: int = 3, batch: int = 8) -> dict[str, float]:
    """Canvas-level mIoU of the cached crops: 3 points, 4 points, then ``clicks`` SPEC 4 clicks.

    Also U2-Netp's own map cut to the points' box (the baseline; decoder caches only). A
    quick proxy of the full-image evaluation, on crops made from exact extreme points.
    """
    scores: dict[str, list[float]] = {"3pts": [], "4pts": []}
    scores.update({f"+{k}": [] for k in range(1, clicks + 1)})
    if cache.saliency is not None:
        scores["u2netp_box"] = []
    for rows, image, target, ignore in _eval_batches(net, cache, batch):
        extreme = [extreme_points(t) for t in target]
        if cache.saliency is not None:
            for i, t in enumerate(target):
                base = 1.0 / (1.0 + np.exp(-cache.saliency[rows[i], 0].astype(np.float32)))
                base = (base - base.min()) / max(base.max() - base.min(), 1e-6)
                (x0, y0), (x1, y1) = np.floor(extreme[i].min(0)).astype(int), np.floor(extreme[i].max(0)).astype(int)
                box = np.zeros_like(t)
                box[y0 : y1 + 1, x0 : x1 + 1] = True
                scores["u2netp_box"].append(iou((base >= 0.5) & box, t, ignore[i]))
        three = torch.stack([_points_planes(encoder, drop_to_three_points(e), [], []) for e in extreme])
        pred = (net(image, three)[0][:, 0] > 0).numpy()
        scores["3pts"] += [iou(p, t, g) for p, t, g in zip(pred, target, ignore)]
        positive = [[] for _ in rows]
        negative = [[] for _ in rows]
        guidance = torch.stack([_points_planes(encoder, e, [], []) for e in extreme])
        for k in range(clicks + 1):
            pred = (net(image, guidance)[0][:, 0] > 0).numpy()
            scores["4pts" if k == 0 else f"+{k}"] += [iou(p, t, g) for p, t, g in zip(pred, target, ignore)]
            if k == clicks:
                break
            for i in range(len(rows)):
                click = corrective_click(target[i], pred[i], ignore[i])
                if click is None:
                    continue
                (positive if click[1] else negative)[i].append(click[0])
                guidance[i] = _points_planes(encoder, extreme[i], positive[i], negative[i])
    return {k: 100.0 * float(np.mean(v)) for k, v in scores.items()}


@torch.no_grad()
def validate_three(net, cache: FeatureCache, encoder: InputEncoder, batch: int = 8) -> float:
    """Canvas-level mIoU of three-point crops from their own exact points (the runtime's 3-point case)."""
    scores = []
    for rows, image, target, ignore in _eval_batches(net, cache, batch):
        planes = []
        for row, t in zip(rows, target):
            kept = cache.crop_points(row)
            planes.append(_points_planes(encoder, kept if kept is not None else drop_to_three_points(extreme_points(t)), [], []))
        pred = (net(image, torch.stack(planes))[0][:, 0] > 0).numpy()
        scores += [iou(p, t, g) for p, t, g in zip(pred, target, ignore)]
    return 100.0 * float(np.mean(scores))


def train_refiner(config: RefineConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train per ``config.design``; returns the output folder (``last.pt``, ``best.pt``, ``log.jsonl``).

    ``best.pt`` is the checkpoint of the best validation so far (:func:`selection_score`).

    ``last.pt`` holds ``model`` (the trained module's state dict: the decoder's for design
    "decoder", the whole U2EndToEnd's for "end_to_end"), the optimiser, the step and the config.

    ``config.stop_step`` ends the run early, after that step's validation and checkpoint,
    with the learning rate still scheduled over ``config.steps`` (the same weights as the
    full run's at that step).
    """
    torch.set_num_threads(config.threads)
    out = Path(config.output_dir)
    last = out / "last.pt"
    # Read (weights-only) the checkpoints this run starts from before the long cache build.
    start = read_checkpoint(config.init_from, keys=("model",))["model"] if config.init_from else None
    resumed = read_checkpoint(last, keys=("model", "optimizer", "step")) if resume and last.exists() else None
    best_path = out / "best.pt"
    best = read_checkpoint(best_path, keys=("score",))["score"] if best_path.exists() else -1.0
    out.mkdir(parents=True, exist_ok=True)
    spec = config.spec
    encoder = make_encoder(spec, config.guidance, sfg_threads=1)
    train_folders, val_folders = prepare_caches(config, progress)
    train = FeatureCache.load(train_folders, [entry.weight for entry in config.train])
    val = FeatureCache.load(val_folders[:1])
    val_three = FeatureCache.load(val_folders[1:]) if config.val_three is not None else None
    torch.manual_seed(config.seed)
    net = build_trainee(config)
    trained = net.decoder if isinstance(net, CachedDecoder) else net.model
    if start is not None:
        missing, unexpected = trained.load_state_dict(start, strict=False)
        if unexpected:
            raise ValueError(f"init_from {config.init_from} has weights this model lacks: {unexpected[:5]}")
    parameters = list(trained.parameters())
    if config.train_only:
        names = [config.train_only] if isinstance(config.train_only, str) else config.train_only
        prefixes = tuple(name + "." for name in names)
        for name, prefix in zip(names, prefixes):
            if not any(n.startswith(prefix) for n, _ in trained.named_parameters()):
                raise ValueError(f"train_only {name!r} names no parameters")
        parameters = [p for n, p in trained.named_parameters() if n.startswith(prefixes)]
        for n, p in trained.named_parameters():
            p.requires_grad_(n.startswith(prefixes))
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    step = 0
    if resumed is not None:
        trained.load_state_dict(resumed.get("trained", resumed["model"]))
        optimizer.load_state_dict(resumed["optimizer"])
        step = int(resumed["step"])
    # The validated and kept weights: the trained ones, or their moving average.
    kept_net = copy.deepcopy(net) if config.ema > 0 else net
    kept = kept_net.decoder if isinstance(kept_net, CachedDecoder) else kept_net.model
    if config.ema > 0 and resumed is not None and "ema" in resumed:
        kept.load_state_dict(resumed["ema"])
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    log = (out / "log.jsonl").open("a")

    def lr_at(s: int) -> float:
        warm = min(1.0, (s + 1) / max(config.warmup_steps, 1))
        return config.lr * warm * max(1 - s / config.steps, 0.0) ** 0.9

    def save(path: Path = last, **info: Any) -> None:
        """``model``: the kept weights (the moving average with ``ema``); ``trained``: the optimiser's, to resume."""
        tmp = path.with_suffix(".pt.tmp")
        extra = {"ema": kept.state_dict(), "trained": trained.state_dict()} if config.ema > 0 else {}
        torch.save({"model": kept.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "config": json.loads(json.dumps(asdict(config), default=str)), **extra, **info}, tmp)
        tmp.replace(path)

    @torch.no_grad()
    def update_average() -> None:
        decay = min(config.ema, (1 + step) / (10 + step))
        for average, current in zip(kept.state_dict().values(), trained.state_dict().values()):
            if average.dtype.is_floating_point:
                average.mul_(decay).add_(current, alpha=1 - decay)

    bar = None
    end = config.steps if config.stop_step is None else config.stop_step
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=end, initial=step, desc=f"refine ({config.design})")
    started = time.time()
    net.train()
    with kernel_threads(1):
        while step < end:
            rng = np.random.default_rng([config.seed, step])
            rows = rng.choice(len(train), size=config.batch_size, p=train.sample_weight)
            image, guidance, target, valid = train_step_inputs(train, rows, config, encoder, net, rng)
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            logits, auxiliary = net(image, guidance)
            pixel_loss = balanced_bce if config.loss == "balanced" else plain_bce
            loss = pixel_loss(logits, target, valid) + soft_iou_loss(logits, target, valid)
            for aux in auxiliary:
                loss = loss + pixel_loss(aux, target, valid)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if config.ema > 0:
                update_average()
            record = {"step": step, "loss": round(float(loss.detach()), 5), "lr": lr_at(step - 1), "seconds": round(time.time() - started, 1)}
            if step % config.validate_every == 0 or step == end:
                record["val"] = validate(kept_net, val, encoder)
                if val_three is not None:
                    record["val"]["3pts_crop"] = validate_three(kept_net, val_three, encoder)
                score = selection_score(record["val"])
                if score > best:
                    best = score
                    save(best_path, score=score, val=record["val"])
            if step % 10 == 0 or "val" in record:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if step % config.checkpoint_every == 0 or step == end:
                save()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=record["loss"])
    if bar is not None:
        bar.close()
    save()
    return out
