"""Evaluation of a FAIRS model on a folder set: SPEC section 4 metrics, JSON, markdown and a plot.

Metrics per instance, on the full image (crop, predict, paste back as SPEC 2):
IoU with the 4 exact extreme points, IoU with 3 points (closest pair thinned),
then IoU after each corrective click (SPEC 4 click rule) up to ``max_clicks``
clicks in total, counting the 4 extreme points as clicks. Reported: mIoU@4pts,
mIoU@3pts, mIoU@k for k = 4..max_clicks, NoC@85 and NoC@90.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import paste_back
from fairs_sdk.encoder import Encoded

from .guidance import make_encoder
from .samples import normalize_input
from .simulate import corrective_click, drop_to_three_points, extreme_points, iou
from .sources import InstanceSource

MAX_CLICKS = 20
NOC_THRESHOLDS = (0.85, 0.90)


class Predictor:
    """Full-image probabilities from a FAIRS torch model (the training-side twin of the runtime).

    The input is built as the runtime builds it, by :class:`fairs_sdk.encoder.InputEncoder`
    (:meth:`encode`), then normalised by :func:`~fairs_sdk.training.samples.normalize_input`.
    ``model`` maps that (B, C, S, S) input of ``spec.input_channels`` to (B, 1, S, S)
    logits in eval mode; ``guidance`` is what its ``sfg`` plane was trained with ("sfg"
    or "gaussian").
    """

    def __init__(self, model: nn.Module, spec: InputSpec, device: torch.device | str = "cpu", guidance: str = "sfg") -> None:
        self.model = model
        self.spec = spec
        self.device = torch.device(device)
        self.guidance = guidance
        # The SFG of one 320-512 px canvas takes about a millisecond on one thread; on a CPU
        # shared with torch a parallel kernel only waits for descheduled workers.
        self.encoder = make_encoder(spec, guidance, sfg_threads=1 if self.device.type == "cpu" else None)

    def encode(
        self,
        image: np.ndarray,
        extreme: np.ndarray,
        positive: np.ndarray | None = None,
        negative: np.ndarray | None = None,
    ) -> Encoded:
        """The runtime input of one object (raw RGB 0..255, guidance planes) and its crop box.

        ``image`` (H, W, 3) uint8 RGB; points (n, 2) (x, y) image pixels, None for no clicks.
        """
        extreme, positive, negative = (
            np.empty((0, 2)) if p is None else np.asarray(p, dtype=np.float64).reshape(-1, 2)
            for p in (extreme, positive, negative)
        )
        return self.encoder.encode(image, extreme, positive, negative)

    @torch.no_grad()
    def probabilities(
        self,
        image: np.ndarray,
        extreme: np.ndarray,
        positive: np.ndarray | None = None,
        negative: np.ndarray | None = None,
    ) -> np.ndarray:
        """(H, W) float32 object probabilities for an (H, W, 3) uint8 RGB image; points (x, y)."""
        encoded = self.encode(image, extreme, positive, negative)
        was_training = self.model.training
        self.model.eval()
        try:
            logits = self.model(torch.from_numpy(normalize_input(encoded.input, self.spec))[None].to(self.device))
        finally:
            self.model.train(was_training)
        canvas = torch.sigmoid(logits.float())[0, 0].cpu().numpy()
        return paste_back(canvas, encoded.box, image.shape)


class RuntimePredictor:
    """Full-image probabilities from an exported model through :class:`fairs_sdk.Segmenter`.

    Evaluates exactly what users run (ONNX file or TensorRT engine, its metadata's
    input spec). A two-part model keeps the image embedding of the last crop, so a
    corrective click that leaves the crop box as it was runs only the decoder, as an
    interactive session does (results equal to ``segment`` within 1e-5). A degenerate
    object whose extreme points are all one pixel, which the runtime refuses, predicts nothing.
    """

    def __init__(self, model: str | Path, **segmenter_options: Any) -> None:
        from fairs_sdk.segmenter import Segmenter

        self.segmenter = Segmenter(model, **segmenter_options)
        self.spec = self.segmenter.spec
        self._embedding = None  # (the image, embedding) of the last crop

    def probabilities(
        self,
        image: np.ndarray,
        extreme: np.ndarray,
        positive: np.ndarray | None = None,
        negative: np.ndarray | None = None,
    ) -> np.ndarray:
        """(H, W) float32 object probabilities for an (H, W, 3) uint8 RGB image; points (x, y)."""
        from fairs_sdk.validation import InputError

        seg = self.segmenter
        clicks = {
            "positive_clicks": () if positive is None else positive,
            "negative_clicks": () if negative is None else negative,
        }
        try:
            if not seg.two_part:
                return seg.segment(image, extreme_points=extreme, **clicks).probabilities
            prepared = seg.prepare(image, extreme, **clicks)
        except InputError:
            if len(np.unique(np.asarray(extreme), axis=0)) > 1:
                raise
            return np.zeros(image.shape[:2], dtype=np.float32)
        cached = self._embedding
        if cached is None or cached[0] is not image or cached[1].box != prepared.box:
            cached = (image, seg.embed(prepared))
            self._embedding = cached
        return seg.predict([prepared], embedding=cached[1])[0].probabilities


def evaluate_instance(
    predictor: Predictor, image: np.ndarray, obj: np.ndarray, ignore: np.ndarray, max_clicks: int = MAX_CLICKS
) -> dict[str, Any]:
    """IoU with 3 points, and with 4 points plus corrective clicks up to ``max_clicks`` clicks.

    Returns {"iou_3pts": float, "ious": [IoU after 4, 5, ..., max_clicks clicks]}; once
    there is no error left the IoU is carried forward.
    """
    threshold = predictor.spec.threshold
    points = extreme_points(obj)
    three = predictor.probabilities(image, drop_to_three_points(points)) >= threshold
    positive: list[np.ndarray] = []
    negative: list[np.ndarray] = []
    ious: list[float] = []
    prediction = predictor.probabilities(image, points) >= threshold
    ious.append(iou(prediction, obj, ignore))
    while len(ious) < max_clicks - len(points) + 1:
        click = corrective_click(obj, prediction, ignore)
        if click is None:
            ious.append(ious[-1])
            continue
        (positive if click[1] else negative).append(click[0])
        prediction = predictor.probabilities(
            image, points, np.array(positive).reshape(-1, 2), np.array(negative).reshape(-1, 2)
        ) >= threshold
        ious.append(iou(prediction, obj, ignore))
    return {"iou_3pts": iou(three, obj, ignore), "ious": ious}


def number_of_clicks(ious: list[float], threshold: float, first_clicks: int = 4, max_clicks: int = MAX_CLICKS) -> int:
    """Clicks (extreme points counted) until IoU >= threshold; ``max_clicks`` if never reached."""
    for offset, value in enumerate(ious):
        if value >= threshold:
            return first_clicks + offset
    return max_clicks


def summarize(per_instance: list[dict[str, Any]], max_clicks: int = MAX_CLICKS) -> dict[str, Any]:
    """Mean metrics over instances: miou_4pts, miou_3pts, miou_at (clicks -> mIoU), noc85, noc90."""
    if not per_instance:
        raise ValueError("no instances were evaluated")
    curves = np.array([r["ious"] for r in per_instance], dtype=np.float64)
    summary: dict[str, Any] = {
        "instances": len(per_instance),
        "miou_4pts": float(curves[:, 0].mean()),
        "miou_3pts": float(np.mean([r["iou_3pts"] for r in per_instance])),
        "miou_at": {str(4 + k): float(curves[:, k].mean()) for k in range(curves.shape[1])},
    }
    for threshold in NOC_THRESHOLDS:
        clicks = [number_of_clicks(list(c), threshold, 4, max_clicks) for c in curves]
        summary[f"noc{round(threshold * 100)}"] = float(np.mean(clicks))
    return summary


def markdown_table(summary: dict[str, Any], clicks_shown: tuple[int, ...] = (4, 5, 6, 8, 10, 15, 20)) -> str:
    """The summary as a markdown table."""
    shown = [k for k in clicks_shown if str(k) in summary["miou_at"]]
    header = ["instances", "mIoU 3 pts", "mIoU 4 pts", *[f"mIoU@{k}" for k in shown], "NoC@85", "NoC@90"]
    row = [
        str(summary["instances"]),
        f"{summary['miou_3pts']:.4f}",
        f"{summary['miou_4pts']:.4f}",
        *[f"{summary['miou_at'][str(k)]:.4f}" for k in shown],
        f"{summary['noc85']:.2f}",
        f"{summary['noc90']:.2f}",
    ]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(row) + " |"]) + "\n"


def comparison_table(summaries: dict[str, dict[str, Any]], clicks_shown: tuple[int, ...] = (4, 5, 6, 7)) -> str:
    """Markdown table, one row per method: mIoU 4 and 3 points, after 1-3 clicks, NoC@85/90."""
    header = ["method", "instances", "mIoU 4 pts", "mIoU 3 pts",
              *[f"mIoU +{k - 4} click{'s' if k > 5 else ''}" for k in clicks_shown[1:]], "NoC@85", "NoC@90"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, summary in summaries.items():
        row = [name, str(summary["instances"]), f"{100 * summary['miou_4pts']:.2f}", f"{100 * summary['miou_3pts']:.2f}",
               *[f"{100 * summary['miou_at'][str(k)]:.2f}" if str(k) in summary["miou_at"] else "n/a" for k in clicks_shown[1:]],
               f"{summary['noc85']:.2f}", f"{summary['noc90']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot_iou_curve(summary: dict[str, Any], path: str | Path) -> None:
    """PNG plot of mIoU against the number of clicks."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    clicks = [int(k) for k in summary["miou_at"]]
    values = [summary["miou_at"][str(k)] for k in clicks]
    figure, axes = plt.subplots(figsize=(5, 3.5))
    axes.plot(clicks, values, marker="o")
    axes.set_xlabel("clicks (4 extreme points + corrective clicks)")
    axes.set_ylabel("mIoU")
    axes.set_xticks(clicks)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def read_summaries(folders: list[str | Path]) -> dict[str, dict[str, Any]]:
    """{folder name: summary} from the metrics.json of earlier runs over the same instances.

    Raises ValueError if a folder has no metrics.json or the runs saw different instances,
    so a comparison table never mixes two evaluation sets.
    """
    summaries: dict[str, dict[str, Any]] = {}
    reference: list[str] | None = None
    for folder in map(Path, folders):
        path = folder / "metrics.json"
        if not path.is_file():
            raise ValueError(f"{folder}: no metrics.json (run fairs-train evaluate --out {folder} first)")
        data = json.loads(path.read_text())
        instances = [r.get("instance") for r in data["instances"]]
        if reference is None:
            reference = instances
        elif instances != reference:
            raise ValueError(f"{folder} was evaluated on other instances than {folders[0]}: not comparable")
        summaries[folder.name] = data["summary"]
    return summaries


@dataclass
class EvaluationResult:
    summary: dict[str, Any]
    per_instance: list[dict[str, Any]]


def evaluate(
    predictor: Predictor,
    source: InstanceSource,
    max_clicks: int = MAX_CLICKS,
    max_instances: int | None = None,
    progress: bool = False,
    every: int = 1,
) -> EvaluationResult:
    """Run :func:`evaluate_instance` over instances 0, every, 2 * every, ... of ``source``
    (at most ``max_instances`` of them)."""
    if max_clicks < 4:
        raise ValueError(f"max_clicks must be at least 4 (the extreme points), got {max_clicks}")
    if every < 1:
        raise ValueError(f"every must be a positive stride, got {every}")
    indices = range(0, len(source), every)
    if max_instances is not None:
        indices = indices[:max_instances]
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="evaluate")
    results = []
    for index in indices:
        image, obj, ignore = source.load(index)
        if not obj.any():
            continue
        result = evaluate_instance(predictor, image, obj, ignore, max_clicks)
        result["instance"] = source.describe(index)
        results.append(result)
    return EvaluationResult(summarize(results, max_clicks), results)


def write_report(result: EvaluationResult, output_dir: str | Path) -> dict[str, Path]:
    """metrics.json (summary + per instance), metrics.md and iou_vs_clicks.png in ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / "metrics.json", "markdown": output_dir / "metrics.md", "plot": output_dir / "iou_vs_clicks.png"}
    paths["json"].write_text(json.dumps({"summary": result.summary, "instances": result.per_instance}, indent=2))
    paths["markdown"].write_text(markdown_table(result.summary))
    plot_iou_curve(result.summary, paths["plot"])
    return paths


def mean_iou_4pts(predictor: Predictor, source: InstanceSource, max_instances: int | None = None) -> float:
    """Mean full-image IoU with the 4 exact extreme points (the per-epoch validation metric)."""
    count = len(source) if max_instances is None else min(max_instances, len(source))
    values = []
    for index in range(count):
        image, obj, ignore = source.load(index)
        if obj.any():
            prediction = predictor.probabilities(image, extreme_points(obj)) >= predictor.spec.threshold
            values.append(iou(prediction, obj, ignore))
    if not values:
        raise ValueError("validation source has no non-empty instance")
    return float(np.mean(values))
