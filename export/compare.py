"""Accuracy and CPU latency of ONNX models of one network at different precisions.

On a folder set (``images/`` + ``masks/``), each model segments every object from
its 4 exact extreme points (crop, predict, paste back: SPEC 2 and 4) and is scored by
full-image IoU against the ground truth; the first model is the reference (fp32).
The inputs are :func:`fairs_sdk.export.samples.iter_samples`'s: a model that declares
click maps also gets its simulated corrective clicks, the same for every model.
Latency is the median ONNX Runtime CPU time of one crop, all models timed on the
same inputs in the same process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fairs_sdk.crop import paste_back
from fairs_sdk.training.simulate import iou

from .onnx_export import onnxruntime_session, read_metadata, run_onnx
from .samples import iter_samples

__all__ = ["ModelScore", "compare_models", "format_table"]


@dataclass
class ModelScore:
    """One model's result: per-object IoUs, their mean, and the median crop latency (ms)."""

    path: Path
    precision: str
    ious: list[float]
    latency_ms: float

    @property
    def miou(self) -> float:
        return float(np.mean(self.ious))


def _median_latency_ms(session, sample: np.ndarray, repeats: int) -> float:
    run_onnx(session, sample)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_onnx(session, sample)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def compare_models(
    models: Sequence[str | Path],
    data_dir: str | Path,
    limit: int | None = None,
    threads: int | None = None,
    latency_repeats: int = 10,
    progress: Callable[[int], None] | None = None,
) -> list[ModelScore]:
    """Score ``models`` (the first is the reference) on ``data_dir``; all must share one input spec.

    ``progress`` is called with the number of objects done after each one.
    """
    if not models:
        raise ValueError("no models to compare")
    metas = [read_metadata(m) for m in models]
    spec = metas[0].input_spec
    for path, meta in zip(models, metas):
        if meta.input_spec != spec:
            raise ValueError(f"{path} has input spec {meta.input_spec}, the reference {spec}: not the same network")
    sessions = [onnxruntime_session(m, threads) for m in models]
    ious: list[list[float]] = [[] for _ in models]
    first_input = None
    for sample in iter_samples(data_dir, spec, limit=limit):
        batch = sample.input[None]
        first_input = batch if first_input is None else first_input
        for index, session in enumerate(sessions):
            canvas = run_onnx(session, batch)[0, 0]
            prediction = paste_back(canvas, sample.box, sample.gt.shape) >= spec.threshold
            ious[index].append(iou(prediction, sample.gt, sample.ignore))
        if progress is not None:
            progress(len(ious[0]))
    if first_input is None:
        raise ValueError(f"{data_dir}: no usable samples")
    return [
        ModelScore(Path(m), meta.precision, scores, _median_latency_ms(session, first_input, latency_repeats))
        for m, meta, scores, session in zip(models, metas, ious, sessions)
    ]


def format_table(scores: Sequence[ModelScore]) -> str:
    """Markdown table: mIoU, change against the first model in points, latency and its ratio."""
    ref = scores[0]
    lines = [
        f"objects: {len(ref.ious)}",
        "",
        "| model | precision | mIoU (%) | change (points) | CPU ms / crop | vs reference |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in scores:
        lines.append(
            f"| {s.path.name} | {s.precision} | {100 * s.miou:.2f} | {100 * (s.miou - ref.miou):+.2f} "
            f"| {s.latency_ms:.1f} | {ref.latency_ms / s.latency_ms:.2f}x |"
        )
    return "\n".join(lines)
