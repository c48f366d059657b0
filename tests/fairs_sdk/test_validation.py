"""Tests of fairs_sdk.validation: values are refused, never coerced; documented limits on points.

Each check is exercised where users reach it (Segmenter.segment, soft_focus) and
directly where that is clearer.
"""

from __future__ import annotations

import numpy as np
import pytest

from fairs_sdk import InputError, soft_focus
from fairs_sdk.sfg import soft_focus_reference
from fairs_sdk.validation import (
    MAX_POINTS,
    check_batch_size,
    check_click,
    check_points,
    check_threshold,
)

IMAGE_SHAPE = (240, 320, 3)
POINTS = [(100, 90), (199, 90), (150, 50), (150, 129)]


def image() -> np.ndarray:
    out = np.zeros(IMAGE_SHAPE, dtype=np.uint8)
    out[50:130, 100:200] = (255, 0, 0)
    return out


# ------------------------------------------------------------------ coordinates
@pytest.mark.parametrize(
    "points",
    [
        [("100", 90), (199, 90)],
        [("100", "90"), ("199", "90")],
        np.array([["100", "90"], ["199", "90"]]),
        [(True, 90), (199, 90)],
        [(100, 90), (199, np.bool_(False))],
        np.array([[True, False], [False, True]]),
        np.array([[1 + 0j, 2], [3, 4]]),
        [(100, None), (199, 90)],
        np.array([[100, 90], [199, 90]], dtype=object),
        b"1234",
    ],
    ids=["str-x", "all-str", "str-array", "bool-x", "numpy-bool", "bool-array", "complex", "none", "object-array",
         "bytes"],
)
def test_coordinates_that_are_not_real_numbers_are_refused(points):
    with pytest.raises(InputError, match="extreme_points"):
        check_points(points, "extreme_points", IMAGE_SHAPE, min_count=2)


@pytest.mark.parametrize(
    "points",
    [
        [(100, 90), (199.5, 90.25)],
        np.array([[100, 90], [199, 90]], dtype=np.int32),
        np.array([[100, 90], [199, 90]], dtype=np.uint16),
        np.array([[100, 90], [199, 90]], dtype=np.float16),
        [(np.float32(100), np.int64(90)), (199, 90)],
        ((100, 90), (199, 90)),
    ],
    ids=["python", "int32", "uint16", "float16", "numpy-scalars", "tuple"],
)
def test_real_coordinates_of_any_numeric_type_are_accepted(points):
    got = check_points(points, "extreme_points", IMAGE_SHAPE, min_count=2)
    assert got.dtype == np.float64 and got.shape == (2, 2), f"got {got.dtype} {got.shape}"
    np.testing.assert_array_equal(got, np.asarray(points, dtype=np.float64))


def test_segment_refuses_numeric_strings_as_coordinates(red_segmenter):
    with pytest.raises(InputError, match="positive_clicks must hold real numbers"):
        red_segmenter.segment(image(), POINTS, positive_clicks=[("150", "90")])


def test_soft_focus_refuses_strings_and_bools():
    with pytest.raises(ValueError, match="extreme_points"):
        soft_focus((20, 20), [("1", "2"), ("10", "12")])
    with pytest.raises(ValueError, match="negative_clicks"):
        soft_focus((20, 20), [(1, 2), (10, 12)], negative_clicks=[(True, 3)])
    for name in ("beta", "kappa", "sigma"):
        for bad in (True, "5"):
            with pytest.raises(ValueError, match=name):
                soft_focus((20, 20), [(1, 2), (10, 12)], **{name: bad})


# --------------------------------------------------------------------- counts
def test_points_limit_is_documented_value():
    assert MAX_POINTS == 1000, "the README and docstrings document 1000 points per argument"


def test_up_to_max_points_are_accepted():
    points = np.random.default_rng(0).uniform(0, 200, (MAX_POINTS, 2))
    assert check_points(points, "negative_clicks", IMAGE_SHAPE).shape == (MAX_POINTS, 2)


@pytest.mark.parametrize("make", [np.zeros, lambda shape: [(0.0, 0.0)] * shape[0]], ids=["array", "list"])
def test_more_than_max_points_are_refused_naming_the_limit(make):
    with pytest.raises(InputError, match=f"negative_clicks has {MAX_POINTS + 1} points; at most {MAX_POINTS}"):
        check_points(make((MAX_POINTS + 1, 2)), "negative_clicks", IMAGE_SHAPE)


def test_a_million_extreme_points_are_refused_by_segment_and_soft_focus(red_segmenter):
    points = np.random.default_rng(0).uniform(0, 200, (1_000_000, 2))
    with pytest.raises(InputError, match="at most 1000"):
        red_segmenter.segment(image(), points)
    with pytest.raises(ValueError, match="at most 1000"):
        soft_focus((64, 64), points)
    with pytest.raises(ValueError, match="at most 1000"):
        soft_focus_reference((64, 64), points)


# ------------------------------------------------------------------ thresholds
@pytest.mark.parametrize("threshold", [True, False, np.bool_(True), "0.5", b"0.5", None, [0.5], np.array(0.5), 1 + 0j])
def test_threshold_that_is_not_a_real_number_is_refused(threshold):
    with pytest.raises(InputError, match="threshold must be a number"):
        check_threshold(threshold)


@pytest.mark.parametrize("threshold", [0, 1, 0.25, np.float32(0.5), np.int64(1), np.float64(0.0)])
def test_real_thresholds_in_the_unit_interval_are_accepted(threshold):
    assert check_threshold(threshold) == float(threshold)


@pytest.mark.parametrize("threshold", [True, "0.5"])
def test_segment_refuses_a_bool_or_string_threshold(red_segmenter, threshold):
    with pytest.raises(InputError, match="threshold"):
        red_segmenter.segment(image(), POINTS, threshold=threshold)


# ---------------------------------------------------------------------- clicks
@pytest.mark.parametrize("positive", ["no", "yes", 1, 0, None, 1.0], ids=repr)
def test_click_sign_must_be_a_bool(positive):
    with pytest.raises(InputError, match="positive must be True or False"):
        check_click(10, 20, positive, IMAGE_SHAPE)


@pytest.mark.parametrize("x, y", [("10", 20), (10, "20.5"), (True, 20), (10, np.bool_(False)), (None, 20), ([10], 20)])
def test_click_coordinates_must_be_numbers(x, y):
    with pytest.raises(InputError, match="must be a number"):
        check_click(x, y, True, IMAGE_SHAPE)


def test_numpy_click_values_are_accepted():
    assert check_click(np.float32(10.5), np.int16(20), np.bool_(False), IMAGE_SHAPE) == (10.5, 20.0, False)


def test_click_outside_the_image_is_refused():
    with pytest.raises(InputError, match=r"negative_click\[0\] = \(400, 20\) is outside"):
        check_click(400, 20, False, IMAGE_SHAPE)


# ------------------------------------------------------------------ batch size
@pytest.mark.parametrize("size", [0, -3, 2.0, True, "4", None])
def test_batch_size_must_be_a_positive_int(size):
    with pytest.raises(InputError, match="batch_size"):
        check_batch_size(size)


def test_numpy_int_batch_size_is_accepted():
    assert check_batch_size(np.int64(3)) == 3
