"""Real network inputs built from a data folder (``images/`` + ``masks/`` by stem).

Used for parity checks, int8 calibration and the precision comparison: each sample
is one object, cropped around its extreme points (SPEC 2 and 4) with its SFG, as
the runtime would feed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import crop_box, crop_resize, to_canvas
from fairs_sdk.sfg import soft_focus
from fairs_sdk.training.simulate import extreme_points

__all__ = ["Sample", "list_pairs", "make_input", "iter_samples", "stack_inputs"]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass
class Sample:
    """One object: network input (4, S, S) float32, its crop box and the full-size ground truth.

    ``gt`` is (H, W) bool (any mask value > 0 except 128); ``ignore`` marks 128 pixels.
    """

    name: str
    input: np.ndarray
    box: tuple[int, int, int, int]
    gt: np.ndarray
    ignore: np.ndarray


def list_pairs(data_dir: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) paths of ``data_dir``, paired by stem, sorted by name."""
    data_dir = Path(data_dir)
    images, masks = data_dir / "images", data_dir / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise ValueError(f"{data_dir} needs images/ and masks/ folders")
    mask_by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() == ".png"}
    pairs = [
        (p, mask_by_stem[p.stem])
        for p in sorted(images.iterdir())
        if p.suffix.lower() in _IMAGE_SUFFIXES and p.stem in mask_by_stem
    ]
    if not pairs:
        raise ValueError(f"{data_dir}: no image/mask pairs with the same stem")
    return pairs


def make_input(image: np.ndarray, points: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Network input for ``image`` ((H, W, 3) uint8 RGB) and extreme ``points`` ((n, 2) x, y).

    Returns the (4, S, S) float32 input (raw RGB 0..255, SFG 0..1) and the crop box.
    """
    size = spec.input_size
    box = crop_box(points, spec.relax)
    rgb = crop_resize(image, box, size).astype(np.float32)
    canvas_points = to_canvas(points, box, size)
    sfg = soft_focus((size, size), canvas_points, beta=spec.beta, kappa=spec.kappa, sigma=spec.sigma)
    return np.concatenate([rgb.transpose(2, 0, 1), sfg[None].astype(np.float32)], axis=0), box


def iter_samples(
    data_dir: str | Path, spec: InputSpec, limit: int | None = None, stride: int = 1, start: int = 0
) -> Iterator[Sample]:
    """Samples of ``data_dir`` (every ``stride``-th pair from ``start``, at most ``limit``), extreme points from the masks."""
    pairs = list_pairs(data_dir)[start::stride]
    for image_path, mask_path in pairs[:limit]:
        bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        if bgr is None or mask is None:
            raise ValueError(f"cannot read {image_path} or {mask_path}")
        ignore = mask == 128
        gt = (mask > 0) & ~ignore
        if not gt.any():
            continue
        inputs, box = make_input(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), extreme_points(gt), spec)
        yield Sample(image_path.stem, inputs, box, gt, ignore)


def stack_inputs(data_dir: str | Path, spec: InputSpec, count: int, stride: int = 1, start: int = 0) -> np.ndarray:
    """(count, 4, S, S) float32 inputs of the first ``count`` samples (fewer if the folder is small)."""
    inputs = [s.input for s in iter_samples(data_dir, spec, limit=count, stride=stride, start=start)]
    if not inputs:
        raise ValueError(f"{data_dir}: no usable samples")
    return np.stack(inputs)
