"""Training-step throughput of a FAIRS model: images per second of forward + loss + backward + SGD step.

Random input tensors (the data pipeline is not timed), batch ``batch_size`` at
``size`` x ``size``, fp32 or bf16 autocast. Used by ``fairs-train speed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .losses import multi_term_loss
from .model import ModelConfig, build_model


@dataclass
class SpeedResult:
    backbone: str
    head: str
    output_stride: int
    size: int
    batch_size: int
    precision: str
    device: str
    threads: int
    seconds_per_step: float
    images_per_second: float

    def line(self) -> str:
        return (
            f"{self.backbone:>24s} {self.head:>5s} OS{self.output_stride:<2d} {self.size}x{self.size} batch {self.batch_size} "
            f"{self.precision:>4s} on {self.device} ({self.threads} threads): {self.seconds_per_step:.3f} s/step, "
            f"{self.images_per_second:.3f} img/s"
        )


def measure_training_speed(
    config: ModelConfig,
    size: int = 512,
    batch_size: int = 2,
    precision: str = "fp32",
    steps: int = 3,
    warmup: int = 1,
    device: str = "cpu",
) -> SpeedResult:
    """Median wall time of ``steps`` training steps after ``warmup`` untimed ones."""
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    torch.manual_seed(0)
    model = build_model(config).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    inputs = torch.randn(batch_size, config.channel_count, size, size, device=device)
    target = (torch.rand(batch_size, 1, size, size, device=device) > 0.7).float()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device, enabled=precision == "fp16")
    times = []
    for step in range(warmup + steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=dtype or torch.float32, enabled=dtype is not None):
            outputs = model(inputs)
        loss = multi_term_loss(outputs, target)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]
    return SpeedResult(
        config.backbone, config.head, config.output_stride, size, batch_size, precision, device,
        torch.get_num_threads(), seconds, batch_size / seconds,
    )
