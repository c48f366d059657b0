"""The bundled default model (fairs_sdk/models/default.onnx): size, metadata, quality on real objects.

Skips when no model is bundled. The quality floor sits below what the shipped model
(v2, U2-Netp based, two-part) measures on these objects (0.852) and far above the
trivial answers to the same clicks (the extreme points' box: 0.463, their
quadrilateral: 0.514) and the previous release (0.620), so it fails for a broken or
wrong model, for a stale bundled part, and for one that only fills the clicks' outline.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fairs_sdk import Segmenter
from fairs_sdk import segmenter as segmenter_module
from fairs_sdk.training.simulate import extreme_points

from model_files import DATA

DAVIS = DATA / "dev" / "davis345"
MAX_BYTES = 40 * 1024 * 1024
QUALITY_FLOOR = 0.80  # mean IoU with 4 exact extreme points on every 23rd DAVIS-345 object

pytestmark = pytest.mark.skipif(not segmenter_module.DEFAULT_MODEL.is_file(), reason="no default model bundled")


def test_default_model_fits_the_size_budget() -> None:
    files = sorted(segmenter_module.DEFAULT_MODEL.parent.glob("default*.onnx"))
    size = sum(f.stat().st_size for f in files)
    assert size <= MAX_BYTES, f"default model files {[f.name for f in files]} take {size / 2**20:.1f} MiB, over 40 MiB"


def test_default_model_is_two_part_with_click_maps() -> None:
    segmenter = Segmenter(warmup=False)
    assert segmenter.two_part, "the bundled model's encoder and decoder parts did not load"
    assert segmenter.spec.input_channels == ("rgb", "sfg", "positive_clicks", "negative_clicks")


def test_default_model_lowers_the_probability_under_a_negative_click() -> None:
    """A negative click on the coffee sample's saucer lowers the probability under it.

    The v2 model moves it from 0.98 to 0.88 (a weak response where its map is confident,
    see the README); the previous release moved any pixel by at most 0.035.
    """
    from pathlib import Path

    image = cv2.cvtColor(cv2.imread(str(Path(__file__).parents[2] / "examples" / "coffee.png")), cv2.COLOR_BGR2RGB)
    points = [(77, 250), (479, 235), (290, 18), (280, 388)]
    segmenter = Segmenter()
    plain = segmenter.segment(image, points)
    assert plain.mask[330, 200], "the saucer below the cup should be object without clicks"
    clicked = segmenter.segment(image, points, negative_clicks=[(200, 330)])
    assert clicked.probabilities[330, 200] < plain.probabilities[330, 200] - 0.05, (
        f"a negative click moved the probability under it from {plain.probabilities[330, 200]:.2f} "
        f"only to {clicked.probabilities[330, 200]:.2f}"
    )


def davis_objects():
    """(stem, RGB image, object mask) of every 23rd DAVIS-345 object (15 objects)."""
    if not (DAVIS / "images").is_dir():
        pytest.skip(f"DAVIS-345 not found at {DAVIS}")
    for stem in sorted(p.stem for p in (DAVIS / "masks").glob("*.png"))[::23]:
        image = cv2.cvtColor(cv2.imread(str(DAVIS / "images" / f"{stem}.jpg")), cv2.COLOR_BGR2RGB)
        yield stem, image, cv2.imread(str(DAVIS / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 0


def iou(mask: np.ndarray, obj: np.ndarray) -> float:
    return np.count_nonzero(mask & obj) / np.count_nonzero(mask | obj)


def test_default_model_segments_real_objects_well() -> None:
    segmenter = Segmenter()
    ious = {stem: iou(segmenter.segment(image, extreme_points(obj)).mask, obj) for stem, image, obj in davis_objects()}
    mean = float(np.mean(list(ious.values())))
    assert mean >= QUALITY_FLOOR, f"mean IoU {mean:.3f} below {QUALITY_FLOOR} on {len(ious)} DAVIS objects: {ious}"

