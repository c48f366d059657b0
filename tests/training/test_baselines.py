"""Tests of the GrabCut baseline."""

import numpy as np
import pytest

from fairs_sdk.training.baselines import GrabCutPredictor
from fairs_sdk.training.simulate import extreme_points, iou


def disk_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red disk on a noisy blue-green background, (H, W, 3) uint8, and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:200, 0:260]
    obj = (xx - 140) ** 2 + (yy - 95) ** 2 < 55**2
    image = np.empty((200, 260, 3), np.uint8)
    image[...] = (30, 140, 160)
    image[obj] = (210, 40, 30)
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    return image, obj


def test_grabcut_segments_a_contrasting_disk_from_its_extreme_points():
    image, obj = disk_scene()
    probs = GrabCutPredictor().probabilities(image, extreme_points(obj))
    assert probs.shape == obj.shape and probs.dtype == np.float32
    score = iou(probs >= 0.5, obj, np.zeros_like(obj))
    assert score > 0.9, f"GrabCut IoU on an easy disk is only {score:.3f}"


def test_grabcut_keeps_background_outside_the_relaxed_box():
    image, obj = disk_scene(1)
    probs = GrabCutPredictor().probabilities(image, extreme_points(obj))
    assert probs[:, :30].max() == 0 and probs[:, 250:].max() == 0, "pixels far outside the box must be 0"


def test_negative_click_removes_foreground_under_it():
    image, obj = disk_scene(2)
    predictor = GrabCutPredictor()
    click = np.array([[140.0, 95.0]])
    probs = predictor.probabilities(image, extreme_points(obj), negative=click)
    assert probs[95, 140] == 0, "a negative click must mark its pixel background"


def test_u2netp_crop_baseline_is_zero_outside_the_points_box(fake_u2netp):
    from fairs_sdk.training.baselines import U2NetpCropPredictor

    image, obj = disk_scene()
    points = extreme_points(obj)
    prob = U2NetpCropPredictor(str(fake_u2netp[0])).probabilities(image, points)
    (x0, y0), (x1, y1) = points.min(axis=0).astype(int), points.max(axis=0).astype(int)
    outside = np.ones(obj.shape, bool)
    outside[y0 : y1 + 1, x0 : x1 + 1] = False
    assert prob.shape == obj.shape and prob.dtype == np.float32
    assert not prob[outside].any(), "U2-Netp's map must be cut to the extreme points' box"
    assert 0.0 <= prob.min() and prob.max() <= 1.0, "the map is min-max normalised to [0, 1]"


def test_u2netp_crop_baseline_ignores_clicks(fake_u2netp):
    from fairs_sdk.training.baselines import U2NetpCropPredictor

    image, obj = disk_scene()
    points = extreme_points(obj)
    predictor = U2NetpCropPredictor(str(fake_u2netp[0]))
    plain = predictor.probabilities(image, points)
    clicked = predictor.probabilities(image, points, negative=np.array([[140.0, 95.0]]))
    assert np.array_equal(plain, clicked)


class RecordingSession:
    """Stands in for U2-Netp: records the input shape, returns a centred blob of that size."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def run(self, _names, feeds):
        x = next(iter(feeds.values()))
        self.shapes.append(x.shape)
        side = x.shape[-1]
        yy, xx = np.mgrid[:side, :side]
        return [np.exp(-((xx - side / 2) ** 2 + (yy - side / 2) ** 2) / (side / 4) ** 2)[None, None].astype(np.float32)]


def test_u2netp_crop_baseline_runs_a_given_session_at_its_size():
    from fairs_sdk.training.baselines import U2NetpCropPredictor

    image, obj = disk_scene()
    session = RecordingSession()
    prob = U2NetpCropPredictor("never-read.onnx", size=288, session=session).probabilities(image, extreme_points(obj))
    assert session.shapes == [(1, 3, 288, 288)], f"the crop must reach the session at 288 x 288, got {session.shapes}"
    assert prob.shape == obj.shape and prob.max() > 0.95, f"the session's map must be pasted back, min-max normalised (max {prob.max()})"


def test_u2netp_crop_baseline_refuses_another_size_for_the_onnx_file(fake_u2netp):
    from fairs_sdk.training.baselines import U2NetpCropPredictor

    with pytest.raises(ValueError, match="320"):
        U2NetpCropPredictor(str(fake_u2netp[0]), size=288)
