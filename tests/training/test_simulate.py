"""Simulated user input (SPEC section 4) on hand-made masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fairs_sdk.training.simulate import (
    corrective_click,
    drop_to_three_points,
    extreme_points,
    iou,
    jitter_points,
    noisy_extreme_points,
    sample_training_clicks,
)


def rectangle(h: int = 40, w: int = 50, rows=(10, 20), cols=(5, 25)) -> np.ndarray:
    mask = np.zeros((h, w), dtype=bool)
    mask[rows[0]:rows[1], cols[0]:cols[1]] = True
    return mask


def test_extreme_points_take_middle_of_ties() -> None:
    points = extreme_points(rectangle())  # rows 10..19, cols 5..24
    expected = np.array([[5, 14], [24, 14], [14, 10], [14, 19]], dtype=float)
    np.testing.assert_array_equal(points, expected, err_msg="left/right/top/bottom with the (lower) middle of each tie")


def test_extreme_points_of_a_diamond_are_its_tips() -> None:
    mask = np.zeros((31, 31), dtype=np.uint8)
    cv2.fillPoly(mask, [np.array([[15, 3], [27, 15], [15, 27], [3, 15]], dtype=np.int32)], 1)
    np.testing.assert_array_equal(extreme_points(mask), [[3, 15], [27, 15], [15, 3], [15, 27]], err_msg="diamond tips")


def test_extreme_points_reject_empty_mask() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        extreme_points(np.zeros((5, 5), dtype=bool))


def test_noisy_points_stay_on_object_and_near() -> None:
    mask = np.zeros((120, 120), dtype=np.uint8)
    cv2.circle(mask, (60, 60), 35, 1, -1)
    exact = extreme_points(mask)
    rng = np.random.default_rng(0)
    moved = 0.0
    for _ in range(200):
        points = noisy_extreme_points(mask, rng, max_noise=10)
        cols, rows = points[:, 0].astype(int), points[:, 1].astype(int)
        assert mask[rows, cols].all(), f"noisy points {points.tolist()} left the object"
        distance = np.hypot(*(points - exact).T)
        assert distance.max() <= 10 * np.sqrt(2) + 1e-9, f"noise beyond 10 px per axis: {distance.max():.2f}"
        moved += distance.mean()
    assert moved / 200 > 1.0, "noise never moves the points"


def test_zero_noise_gives_exact_points() -> None:
    mask = rectangle()
    np.testing.assert_array_equal(noisy_extreme_points(mask, np.random.default_rng(1), 0.0), extreme_points(mask))


def test_three_points_drop_one_of_the_closest_pair() -> None:
    points = np.array([[0, 50], [100, 50], [50, 0], [95, 55]], dtype=float)  # pair (1, 3) is closest
    np.testing.assert_array_equal(drop_to_three_points(points), points[[0, 1, 2]], err_msg="should drop point 3")
    dropped = {tuple(map(tuple, drop_to_three_points(points, np.random.default_rng(s)))) for s in range(20)}
    assert dropped == {tuple(map(tuple, points[[0, 1, 2]])), tuple(map(tuple, points[[0, 2, 3]]))}, dropped


def test_corrective_click_on_missed_object_is_positive_at_centre() -> None:
    gt = rectangle(rows=(10, 21), cols=(5, 16))  # 11 x 11 square centred at (10, 15)
    point, positive = corrective_click(gt, np.zeros_like(gt))
    assert positive, "a false-negative blob must give a positive click"
    np.testing.assert_array_equal(point, [10, 15], err_msg="click must be the blob's innermost pixel")


def test_corrective_click_picks_largest_blob_false_positive() -> None:
    gt = rectangle(rows=(10, 21), cols=(5, 26))
    prediction = gt.copy()
    prediction[10:12, 5:8] = False  # small false negative
    prediction[30:39, 35:44] = True  # larger false positive
    point, positive = corrective_click(gt, prediction)
    assert not positive, "the larger false-positive blob must give a negative click"
    np.testing.assert_array_equal(point, [39, 34])


def test_corrective_click_none_without_errors_and_respects_ignore() -> None:
    gt = rectangle()
    assert corrective_click(gt, gt) is None, "no error, no click"
    prediction = gt.copy()
    prediction[0:5, 0:5] = True
    ignore = np.zeros_like(gt)
    ignore[0:5, 0:5] = True
    assert corrective_click(gt, prediction, ignore) is None, "errors on ignore pixels must not draw clicks"


def test_training_clicks_lie_in_distance_band() -> None:
    mask = np.zeros((300, 300), dtype=np.uint8)
    cv2.circle(mask, (150, 150), 80, 1, -1)
    positive, negative = sample_training_clicks(mask.astype(bool), np.random.default_rng(0), 5, 5, box=(40, 40, 260, 260))
    assert positive.shape == (5, 2) and negative.shape == (5, 2), f"{positive.shape}, {negative.shape}"
    for x, y in positive:
        assert mask[int(y), int(x)] and 15 - 1.5 <= 80 - np.hypot(x - 150, y - 150) <= 60 + 1.5, (x, y)
    for x, y in negative:
        assert not mask[int(y), int(x)] and 15 - 1.5 <= np.hypot(x - 150, y - 150) - 80 <= 60 + 1.5, (x, y)
        assert 40 <= x < 260 and 40 <= y < 260, f"negative click {(x, y)} outside the box"


def test_training_clicks_empty_for_thin_object() -> None:
    positive, _ = sample_training_clicks(rectangle(rows=(10, 14)), np.random.default_rng(0), 3, 0)
    assert positive.shape == (0, 2), "no object pixel is 15 px from the boundary of a 4 px strip"


def test_iou_ignores_marked_pixels() -> None:
    gt = rectangle()
    prediction = gt.copy()
    prediction[0:5, 0:5] = True  # 25 false-positive pixels
    assert iou(prediction, gt) == pytest.approx(200 / 225)
    ignore = np.zeros_like(gt)
    ignore[0:5, 0:5] = True
    assert iou(prediction, gt, ignore) == 1.0, "pixels marked ignore must not count"


def test_jitter_points_stays_on_the_object():
    mask = np.zeros((40, 40), bool)
    mask[10:30, 12:25] = True
    points = np.array([[12.0, 20.0], [24.0, 15.0], [18.0, 29.0]])
    jittered = jitter_points(mask, points, np.random.default_rng(0), 6.0, slack=4.0)
    assert all(mask[int(y), int(x)] for x, y in jittered), f"jittered points left the object: {jittered}"
    assert np.abs(jittered - points).max() <= 6.0 + 4.0, "jitter moved a point further than noise + snap"


def test_jitter_points_leaves_a_point_with_no_object_in_reach():
    mask = np.zeros((40, 40), bool)
    mask[0:3, 0:3] = True
    far = np.array([[35.0, 35.0]])
    jittered = jitter_points(mask, far, np.random.default_rng(1), 2.0)
    assert np.abs(jittered - far).max() <= 2.0, f"a point with no object pixel in reach moved by more than its noise: {jittered}"


def test_noisy_extreme_points_are_jittered_extreme_points():
    mask = np.zeros((40, 40), bool)
    mask[5:30, 8:33] = True
    noisy = noisy_extreme_points(mask, np.random.default_rng(3), 5.0)
    same = jitter_points(mask, extreme_points(mask), np.random.default_rng(3), 5.0)
    assert np.array_equal(noisy, same), f"noisy_extreme_points {noisy} differs from jitter_points of the extreme points {same}"
