"""Network inputs for parity checks, int8 calibration and precision comparisons.

Every input is built by the runtime's own :class:`fairs_sdk.encoder.InputEncoder`, so it
holds exactly the channels the model declares (``InputSpec.input_channels``, SPEC 1b)
in their order, cropped and encoded as the runtime does (SPEC 1 and 2). Real samples
come from a data folder (``images/`` + ``masks/`` by stem), one per object, with the
exact extreme points of its mask (SPEC 4).

Corrective clicks: a model that declares click maps (``positive_clicks`` or
``negative_clicks``) gets simulated corrective clicks in every sample, so that those
planes are not all zero while int8 ranges are calibrated and parity is checked. They
are placed on the errors of a model-free first guess, the extreme points' soft focus
map psi pasted back into the image at the model's threshold (:func:`first_guess`):
one positive click at the innermost pixel of the largest false-negative blob and one
negative click at the innermost pixel of the largest false-positive blob (SPEC 4's
pixel rule, :func:`fairs_sdk.training.simulate.corrective_click`, applied to each
error kind). SPEC 4 itself picks one blob of either kind per round; against this
guess that click was positive for 50 of 60 COCO objects, which would leave the
negative-click plane nearly always empty. A model without click maps gets samples
without clicks, as the runtime sees them before the user clicks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import paste_back, to_canvas
from fairs_sdk.encoder import Encoded, InputEncoder
from fairs_sdk.training.simulate import corrective_click, extreme_points

__all__ = [
    "CLICK_CHANNELS",
    "Sample",
    "check_inputs",
    "declares_clicks",
    "first_guess",
    "iter_samples",
    "list_pairs",
    "make_input",
    "random_inputs",
    "simulated_clicks",
    "stack_inputs",
]

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_NO_POINTS = np.empty((0, 2), dtype=np.float64)
#: The input channels that show corrective clicks on their own (SPEC 1b).
CLICK_CHANNELS = ("positive_clicks", "negative_clicks")


@dataclass
class Sample:
    """One object of a data folder, encoded for its model.

    Attributes:
        name: the image's stem.
        input: (C, S, S) float32, the model's declared channels in order.
        box: (x0, y0, x1, y1) crop box in image pixels, half-open.
        gt: (H, W) bool ground truth (mask value > 0 except 128).
        ignore: (H, W) bool, the mask's 128 pixels.
        extreme: (4, 2) float64 extreme points, (x, y) image pixels.
        positive, negative: (n, 2) float64 corrective clicks, (x, y) image pixels.
    """

    name: str
    input: np.ndarray
    box: tuple[int, int, int, int]
    gt: np.ndarray
    ignore: np.ndarray
    extreme: np.ndarray
    positive: np.ndarray
    negative: np.ndarray


def declares_clicks(spec: InputSpec) -> bool:
    """Whether a model with ``spec`` takes separate click maps."""
    return any(name in CLICK_CHANNELS for name in spec.input_channels)


def check_inputs(inputs: np.ndarray, spec: InputSpec, what: str = "inputs") -> np.ndarray:
    """``inputs`` as C-contiguous float32 (N, C, S, S) with N > 0 and (C, S) of ``spec``; ValueError otherwise."""
    array = np.ascontiguousarray(inputs, dtype=np.float32)
    c, s = spec.channel_count, spec.input_size
    if array.ndim != 4 or array.shape[1:] != (c, s, s) or len(array) == 0:
        raise ValueError(
            f"{what} must be (N, C, S, S) = (N, {c}, {s}, {s}) float32 with N > 0 for channels "
            f"{list(spec.input_channels)}, got {array.shape}"
        )
    return array


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


def make_input(
    image: np.ndarray,
    extreme: np.ndarray,
    spec: InputSpec,
    positive: np.ndarray = _NO_POINTS,
    negative: np.ndarray = _NO_POINTS,
) -> Encoded:
    """The network input of one object, through the runtime's :class:`InputEncoder`.

    Args:
        image: (H, W, 3) uint8 RGB.
        extreme, positive, negative: (n, 2) float64 (x, y) image pixels.
    Returns:
        :class:`Encoded`: ``input`` (C, S, S) float32 (RGB raw 0..255, guidance in [0, 1]),
        the crop box and the image shape.
    """
    return InputEncoder(spec).encode(image, _points(extreme), _points(positive), _points(negative))


def first_guess(image_shape: tuple[int, ...], extreme: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A model-free (H, W) bool mask: the extreme points' soft focus map psi >= ``spec.threshold``.

    psi is computed on the model's canvas (SPEC 1, 2) and pasted back into the image.
    """
    encoder = InputEncoder(replace(spec, input_channels=("rgb", "sfg")))
    extreme = _points(extreme)
    box = encoder.crop_box(extreme)
    (psi,) = encoder.guidance(to_canvas(extreme, box, spec.input_size))
    return paste_back(psi, box, image_shape) >= spec.threshold


def simulated_clicks(
    gt: np.ndarray, extreme: np.ndarray, spec: InputSpec, ignore: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Corrective clicks on the errors of :func:`first_guess`: (positive, negative), (n, 2) float64 (x, y).

    ``positive`` is the SPEC 4 click of the false negatives alone (the innermost pixel of
    their largest blob), ``negative`` that of the false positives alone; each holds one
    click, or none where the guess makes no error of that kind.
    """
    guess = first_guess(gt.shape, extreme, spec)
    clicks = []
    # guess & gt keeps the false negatives and drops the false positives; guess | gt the reverse.
    for prediction in (guess & gt, guess | gt):
        click = corrective_click(gt, prediction, ignore)
        clicks.append(_NO_POINTS if click is None else click[0][None])
    return clicks[0], clicks[1]


def iter_samples(
    data_dir: str | Path,
    spec: InputSpec,
    limit: int | None = None,
    stride: int = 1,
    start: int = 0,
    clicks: bool | None = None,
) -> Iterator[Sample]:
    """Samples of ``data_dir`` (every ``stride``-th pair from ``start``, at most ``limit``).

    Extreme points come from the masks; ``clicks`` adds :func:`simulated_clicks` to each
    sample (None: when the model declares click maps, :func:`declares_clicks`).
    """
    with_clicks = declares_clicks(spec) if clicks is None else clicks
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
        extreme = extreme_points(gt)
        positive, negative = simulated_clicks(gt, extreme, spec, ignore) if with_clicks else (_NO_POINTS, _NO_POINTS)
        encoded = make_input(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), extreme, spec, positive, negative)
        yield Sample(image_path.stem, encoded.input, encoded.box, gt, ignore, extreme, positive, negative)


def stack_inputs(
    data_dir: str | Path, spec: InputSpec, count: int, stride: int = 1, start: int = 0, clicks: bool | None = None
) -> np.ndarray:
    """(n, C, S, S) float32 inputs of the first ``count`` samples (n < ``count`` if the folder is small)."""
    inputs = [s.input for s in iter_samples(data_dir, spec, limit=count, stride=stride, start=start, clicks=clicks)]
    if not inputs:
        raise ValueError(f"{data_dir}: no usable samples")
    return np.stack(inputs)


def random_inputs(spec: InputSpec, count: int, seed: int = 0, image_size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """(count, C, S, S) float32 inputs of random images with random points, through the encoder.

    For checks that need no real data (parity without a data folder): uniform-noise
    (H, W, 3) uint8 images, 4 extreme points uniform in the image and, when the model
    declares click maps, one positive and one negative click.
    """
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    rng = np.random.default_rng(seed)
    height, width = image_size
    encoder = InputEncoder(spec)
    scale = np.array([width - 1, height - 1], dtype=np.float64)
    inputs = []
    for _ in range(count):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        extreme = rng.uniform(0, 1, (4, 2)) * scale
        positive, negative = _NO_POINTS, _NO_POINTS
        if declares_clicks(spec):
            positive, negative = rng.uniform(0, 1, (1, 2)) * scale, rng.uniform(0, 1, (1, 2)) * scale
        inputs.append(encoder.encode(image, extreme, positive, negative).input)
    return np.stack(inputs)


def _points(points: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 2))
