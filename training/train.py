"""The training loop: one process or many (torchrun / DistributedDataParallel), AMP, exact resume.

Determinism: sample i of epoch e is built from seed (seed, e, i) (see
:class:`~fairs_sdk.training.samples.InstanceDataset`), the order of epoch e from
seed + e, and torch's global RNG (dropout) is reseeded from (seed, step, rank)
before every step. So a run resumed from any checkpoint continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from fairs_sdk.config import DEFAULT_CHANNELS

from .checkpoint_io import CheckpointError, read_checkpoint
from .config import TrainConfig, learning_rate_factor
from .evaluate import Predictor, mean_iou_4pts
from .iterative import add_corrective_clicks
from .losses import multi_term_loss
from .model import FAIRSNet, ModelConfig, adapt_input_weights, build_model
from .samples import InstanceDataset
from .sources import InstanceSource, build_sources

CHECKPOINT_VERSION = 1


@dataclass
class DistInfo:
    """Where this process sits: rank, world size, local rank and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str | None = None) -> DistInfo:
    """Join the process group set up by torchrun (env:// variables), if any.

    NCCL on GPUs, gloo on CPUs. Without WORLD_SIZE > 1 this is a single process on
    ``device`` (default: cuda if available, else cpu).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if world_size <= 1:
        return DistInfo(device=torch.device(device or ("cuda" if use_cuda else "cpu")))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world_size, local_rank, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"))


class ShardedSampler(Sampler[int]):
    """Epoch-seeded permutation, cut to whole global batches and dealt to ranks.

    Rank r gets entries r, r + W, ... of the permutation, so step s of every rank
    together covers permutation entries [s*B*W, (s+1)*B*W). ``skip_batches`` drops a
    rank's first batches (resume inside an epoch).
    """

    def __init__(self, size: int, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0, max_steps: int = 0) -> None:
        self.size, self.batch_size, self.world_size, self.rank, self.seed = size, batch_size, world_size, rank, seed
        self.steps = size // (batch_size * world_size)
        if max_steps:
            self.steps = min(self.steps, max_steps)
        if self.steps == 0:
            raise ValueError(f"{size} samples make no full global batch of {batch_size} x {world_size}")
        self.epoch = 0
        self.skip_batches = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip_batches = epoch, skip_batches

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator)[: self.steps * self.batch_size * self.world_size]
        mine = order[self.rank :: self.world_size][self.skip_batches * self.batch_size :]
        return iter(mine.tolist())

    def __len__(self) -> int:
        return (self.steps - self.skip_batches) * self.batch_size


def resolve_amp(mode: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use GradScaler) for ``mode`` on ``device``."""
    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None, False
    if mode == "auto":
        mode = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mode == "fp16":
        if device.type != "cuda":
            raise ValueError("amp=fp16 needs a GPU; use bf16 or off on CPU")
        return torch.float16, True
    return torch.bfloat16, False


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode with frozen affine parameters."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
            for parameter in module.parameters():
                parameter.requires_grad_(False)


def build_optimizer(model: FAIRSNet, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD with momentum or AdamW; head and decoder (randomly initialised) at ``head_lr_multiplier`` x lr."""
    optim = config.optim
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    new_modules = [model.head] + ([model.decoder] if model.decoder is not None else [])
    head = [p for module in new_modules for p in module.parameters() if p.requires_grad]
    groups = [
        {"params": backbone, "lr": optim.lr, "base_lr": optim.lr},
        {"params": head, "lr": optim.lr * optim.head_lr_multiplier, "base_lr": optim.lr * optim.head_lr_multiplier},
    ]
    groups = [g for g in groups if g["params"]]
    if optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr, weight_decay=optim.weight_decay)
    return torch.optim.SGD(
        groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay, nesterov=optim.nesterov
    )


def unwrap(model: nn.Module) -> FAIRSNet:
    return model.module if isinstance(model, DistributedDataParallel) else model  # type: ignore[return-value]


class Trainer:
    """Builds model, data, optimiser from a :class:`TrainConfig` and runs the epochs.

    ``train_source`` / ``val_source`` override the config's data entries (tests).
    """

    def __init__(
        self,
        config: TrainConfig,
        dist_info: DistInfo | None = None,
        train_source: InstanceSource | None = None,
        val_source: InstanceSource | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.dist = dist_info or DistInfo()
        self.log = log if self.dist.is_main else (lambda message: None)
        torch.manual_seed(config.seed)  # identical initial weights on every rank
        model = build_model(config.model).to(self.dist.device)
        if config.init_from:
            added = initialise_from(model, config.init_from)
            self.log(f"initialised from {config.init_from}" + (f"; new: {', '.join(added)}" if added else ""))
        if config.freeze_bn:
            freeze_batchnorm(model)
        elif self.dist.distributed and config.sync_bn and self.dist.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model: nn.Module = model
        if self.dist.distributed:
            device_ids = [self.dist.local_rank] if self.dist.device.type == "cuda" else None
            self.model = DistributedDataParallel(model, device_ids=device_ids)
        self.optimizer = build_optimizer(unwrap(self.model), config)
        self.amp_dtype, use_scaler = resolve_amp(config.amp, self.dist.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

        source = train_source if train_source is not None else build_sources(config.data.train)
        self.dataset = InstanceDataset(
            source, config.input, train=True, simulation=config.data.simulation, augmentation=config.data.augmentation, seed=config.seed,
            guidance=config.model.guidance,
        )
        self.sampler = ShardedSampler(
            len(self.dataset), config.batch_size, self.dist.world_size, self.dist.rank, config.seed, config.max_steps_per_epoch
        )
        self.loader = DataLoader(
            self.dataset,
            batch_size=config.batch_size,
            sampler=self.sampler,
            num_workers=config.num_workers,
            pin_memory=self.dist.device.type == "cuda",
            drop_last=True,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(config.seed),
        )
        self.val_source = val_source if val_source is not None else (build_sources(config.data.val) if config.data.val else None)
        self.steps_per_epoch = self.sampler.steps
        self.total_steps = self.steps_per_epoch * config.epochs
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.step_losses: list[float] = []

    # -- one step ---------------------------------------------------------------------------

    def _set_learning_rate(self) -> float:
        factor = learning_rate_factor(self.config.optim, self.global_step, self.total_steps, self.steps_per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        return self.optimizer.param_groups[0]["lr"]

    def _with_corrective_clicks(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """With ``simulation.iterative_probability``, 1 to ``max_iterative_clicks`` rounds of
        clicks on the model's own errors (:func:`~fairs_sdk.training.iterative.add_corrective_clicks`).

        The draw comes from (seed, step, rank), so a resumed run draws the same.
        """
        simulation = self.config.data.simulation
        if simulation.iterative_probability <= 0 or simulation.max_iterative_clicks <= 0:
            return batch
        rng = np.random.default_rng([self.config.seed, self.global_step, self.dist.rank])
        if rng.random() >= simulation.iterative_probability:
            return batch
        rounds = int(rng.integers(1, simulation.max_iterative_clicks + 1))
        return add_corrective_clicks(unwrap(self.model), batch, self.config.input, rounds, self.config.model.guidance)

    def train_step(self, batch: dict[str, torch.Tensor]) -> float:
        """Forward, multi-term loss, backward and SGD update on one batch; returns the loss.

        Gradients stay in ``.grad`` until the next step (tests compare them).
        """
        batch = self._with_corrective_clicks(batch)
        self.model.train()
        if self.config.freeze_bn:
            freeze_batchnorm(self.model)
        torch.manual_seed(hash((self.config.seed, self.global_step, self.dist.rank)) % (2**63))
        self._set_learning_rate()
        device = self.dist.device
        inputs = batch["input"].to(device, non_blocking=True)
        target = batch["target"].to(device, non_blocking=True)
        valid = batch["valid"].to(device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            outputs = self.model(inputs)
        loss = multi_term_loss(outputs, target, valid)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.global_step}")
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.global_step += 1
        self.step_in_epoch += 1
        value = loss.detach()
        if self.dist.distributed:
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value = value / self.dist.world_size
        return float(value)

    # -- epochs -----------------------------------------------------------------------------

    def train_epoch(self, max_steps: int | None = None) -> float:
        """Run the rest of the current epoch (or ``max_steps`` of it); mean loss of the steps run."""
        self.sampler.set_epoch(self.epoch, self.step_in_epoch)
        self.dataset.set_epoch(self.epoch)
        batches: Any = self.loader
        if self.config.progress and self.dist.is_main:
            from tqdm import tqdm

            batches = tqdm(self.loader, desc=f"epoch {self.epoch + 1}/{self.config.epochs}", leave=False)
        losses = []
        for batch in batches:
            losses.append(self.train_step(batch))
            self.step_losses.append(losses[-1])
            if hasattr(batches, "set_postfix"):
                batches.set_postfix(loss=f"{losses[-1]:.4f}")
            if max_steps is not None and len(losses) >= max_steps:
                break
        if self.step_in_epoch >= self.steps_per_epoch:
            self.epoch += 1
            self.step_in_epoch = 0
        return float(sum(losses) / max(len(losses), 1))

    def validate(self) -> float | None:
        """Full-image mIoU with 4 exact extreme points on the validation source (main rank)."""
        if self.val_source is None or not self.dist.is_main:
            return None
        predictor = Predictor(unwrap(self.model), self.config.input, self.dist.device, self.config.model.guidance)
        return mean_iou_4pts(predictor, self.val_source, self.config.data.val_max_instances)

    def fit(self, stop_after_epoch: int | None = None) -> list[dict[str, Any]]:
        """Train until ``config.epochs``; a per-epoch line, metrics.jsonl and checkpoints.

        ``stop_after_epoch`` ends the run early while the learning-rate schedule still
        spans all ``config.epochs`` (short ablation runs that share a long run's schedule).
        """
        output = Path(self.config.output_dir)
        if self.dist.is_main:
            output.mkdir(parents=True, exist_ok=True)
        last_epoch = self.config.epochs if stop_after_epoch is None else min(stop_after_epoch, self.config.epochs)
        while self.epoch < last_epoch:
            epoch = self.epoch
            start = time.perf_counter()
            steps_before = self.global_step
            loss = self.train_epoch()
            seconds = time.perf_counter() - start
            images = (self.global_step - steps_before) * self.config.batch_size * self.dist.world_size
            val_miou = self.validate()
            record = {
                "epoch": epoch + 1,
                "loss": loss,
                "val_miou": val_miou,
                "lr": self.optimizer.param_groups[0]["lr"],
                "images_per_second": images / max(seconds, 1e-9),
            }
            self.history.append(record)
            val_text = "n/a" if val_miou is None else f"{val_miou:.4f}"
            self.log(
                f"epoch {epoch + 1}/{self.config.epochs}  loss {loss:.4f}  val mIoU {val_text}  "
                f"lr {record['lr']:.3g}  {record['images_per_second']:.2f} img/s"
            )
            if self.dist.is_main:
                with open(output / "metrics.jsonl", "a") as handle:
                    handle.write(json.dumps(record) + "\n")
                if self.epoch % self.config.checkpoint_every == 0 or self.epoch == last_epoch:
                    self.save_checkpoint(output / f"epoch_{self.epoch:03d}.pt")
                    self.save_checkpoint(output / "last.pt")
            if self.dist.distributed:
                dist.barrier()
        return self.history

    # -- checkpoints ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly, plus the full config."""
        return {
            "version": CHECKPOINT_VERSION,
            "config": self.config.to_dict(),
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "history": self.history,
        }

    def save_checkpoint(self, path: str | Path) -> None:
        """Write :meth:`state_dict` atomically (temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".tmp")
        torch.save(self.state_dict(), temporary)
        os.replace(temporary, path)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore model, optimiser, scaler and position from a checkpoint of the same config."""
        keys = ("model", "optimizer", "scaler", "epoch", "step_in_epoch", "global_step")
        state = read_checkpoint(path, self.dist.device, keys=keys)
        if state.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(f"{path}: unsupported checkpoint version {state.get('version')}")
        unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self.global_step = int(state["global_step"])
        self.history = list(state.get("history", []))


def initialise_from(model: FAIRSNet, checkpoint: str | Path) -> list[str]:
    """Load a training checkpoint's network weights into ``model`` (a warm start, not a resume).

    ``model`` may have a decoder that the checkpoint's network lacks; those modules
    keep their initialisation. It may declare other input channels than the
    checkpoint's (read from its config; a bare state dict is taken as rgb + sfg): the
    input kernels are remapped by :func:`~fairs_sdk.training.model.adapt_input_weights`.
    Returns the names of the modules left at their initialisation.

    Raises:
        CheckpointError: the file is missing, corrupt or holds more than plain data (read weights-only).
        ValueError: the checkpoint has weights ``model`` lacks, or lacks any outside the decoder.
    """
    state = read_checkpoint(checkpoint)
    weights = state["model"] if isinstance(state, dict) and "model" in state else state
    has_config = isinstance(state, dict) and "config" in state
    source_channels = ModelConfig.from_dict(state["config"]["model"]).input_channels if has_config else DEFAULT_CHANNELS
    weights = adapt_input_weights(model, weights, source_channels)
    result = model.load_state_dict(weights, strict=False)
    missing = [key for key in result.missing_keys if not key.startswith("decoder.")]
    if result.unexpected_keys or missing:
        raise ValueError(
            f"{checkpoint} does not fit the configured network: unexpected {result.unexpected_keys[:3]}, missing {missing[:3]}"
        )
    return sorted({key.split(".")[0] for key in result.missing_keys})


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[FAIRSNet, TrainConfig]:
    """The eval-mode network and config stored in a training checkpoint."""
    state = read_checkpoint(checkpoint, device, keys=("model", "config"))
    config = TrainConfig.from_dict(state["config"])
    model_config = ModelConfig.from_dict({**config.model.to_dict(), "pretrained": None})
    model = build_model(model_config)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config


def run_training(
    config: TrainConfig, resume: str | Path | None = None, device: str | None = None, stop_after_epoch: int | None = None
) -> list[dict[str, Any]]:
    """Entry point for one process (plain or under torchrun): set up, optionally resume, fit."""
    dist_info = setup_distributed(device)
    try:
        trainer = Trainer(config, dist_info)
        if resume:
            trainer.load_checkpoint(resume)
            trainer.log(f"resumed from {resume} at epoch {trainer.epoch + 1}, step {trainer.global_step}")
        if dist_info.is_main:
            Path(config.output_dir).mkdir(parents=True, exist_ok=True)
            config.save(Path(config.output_dir) / "config.yaml")
        return trainer.fit(stop_after_epoch)
    finally:
        if dist_info.distributed and dist.is_initialized():
            dist.destroy_process_group()


def find_free_port() -> int:
    """A free TCP port on 127.0.0.1 (for local multi-process runs)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as handle:
        handle.bind(("127.0.0.1", 0))
        return int(handle.getsockname()[1])


def _local_worker(rank: int, world_size: int, port: int, function: Callable[..., Any], args: tuple) -> None:
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)}
    )
    function(*args)


def launch_local(world_size: int, function: Callable[..., Any], *args: Any) -> None:
    """Run ``function(*args)`` in ``world_size`` spawned processes with torchrun-style env vars.

    For CPU runs and tests without torchrun; ``function`` must be importable (top-level).
    """
    if world_size < 1:
        raise ValueError(f"world_size must be positive, got {world_size}")
    import torch.multiprocessing as mp

    mp.spawn(_local_worker, args=(world_size, find_free_port(), function, args), nprocs=world_size, join=True)
