"""Tests of fairs_sdk.crop: SPEC section 2 crop, point mapping and paste-back."""

import cv2
import numpy as np
import pytest

from fairs_sdk.crop import corner_sides, crop_box, crop_resize, paste_back, to_canvas


def test_crop_box_is_points_box_enlarged_by_relax_half_open():
    box = crop_box(np.array([(10.2, 20.0), (70.0, 90.9), (40.0, 55.0)]), relax=50)
    assert box == (-40, -30, 121, 141), f"got {box}"


def test_crop_box_takes_a_margin_per_side():
    box = crop_box(np.array([(10.2, 20.0), (70.0, 90.9), (40.0, 55.0)]), relax=(1, 2, 3, 4))
    assert box == (9, 18, 74, 95), f"margins (left, top, right, bottom) = (1, 2, 3, 4) should give (9, 18, 74, 95), got {box}"


def test_crop_box_refuses_a_margin_list_that_is_not_four_long():
    with pytest.raises(ValueError, match="one margin or four"):
        crop_box(np.array([(10.0, 20.0)]), relax=(1, 2))


def test_corner_sides_are_the_sides_of_the_point_on_a_corner():
    # left (10, 20) is also the top-most point; right (70, 50) and bottom (40, 90) touch one side each
    sides = corner_sides(np.array([(10.0, 20.0), (70.0, 50.0), (40.0, 90.0)]))
    assert sides == {"left", "top"}, f"got {sorted(sides)}"


def test_corner_sides_of_two_corner_points_are_all_their_sides():
    sides = corner_sides(np.array([(100.0, 90.0), (199.0, 90.0), (150.0, 50.0)]))  # left, right, top
    assert sides == {"left", "right", "bottom"}, f"got {sorted(sides)}"


def test_corner_sides_are_empty_when_each_point_touches_one_side():
    sides = corner_sides(np.array([(0.0, 5.0), (10.0, 5.0), (5.0, 0.0), (5.0, 10.0)]))
    assert sides == set(), f"four points on four sides leave no corner, got {sorted(sides)}"


def test_crop_box_rejects_nan():
    with pytest.raises(ValueError, match="finite"):
        crop_box(np.array([(1.0, np.nan)]), relax=5)


def test_crop_resize_zero_pads_outside_the_image():
    image = np.full((20, 30, 3), 200, dtype=np.uint8)
    crop = crop_resize(image, (-10, -10, 30, 30), size=40, interpolation=cv2.INTER_NEAREST)
    assert crop.shape == (40, 40, 3) and crop.dtype == np.uint8
    assert np.all(crop[:10] == 0) and np.all(crop[:, :10] == 0), "outside the image must read as 0"
    assert np.all(crop[10:30, 10:40] == 200), "inside the image must keep its pixels"


def test_crop_resize_of_mask_keeps_two_dimensions():
    mask = np.zeros((50, 50), dtype=np.uint8)
    mask[10:20, 10:20] = 255
    out = crop_resize(mask, (0, 0, 50, 50), size=100, interpolation=cv2.INTER_NEAREST)
    assert out.shape == (100, 100) and set(np.unique(out)) == {0, 255}


def test_to_canvas_follows_the_resize_of_pixel_centres():
    # A single bright pixel moves exactly where to_canvas maps its centre.
    image = np.zeros((64, 64), dtype=np.float32)
    image[21, 37] = 1.0
    box, size = (5, 9, 69, 73), 128  # 64 x 64 crop, scale 2
    resized = crop_resize(image, box, size)
    yy, xx = np.mgrid[0:size, 0:size]
    centroid = np.array([(xx * resized).sum(), (yy * resized).sum()]) / resized.sum()
    mapped = to_canvas(np.array([(37.0, 21.0)]), box, size)[0]
    assert np.allclose(centroid, mapped, atol=1e-3), f"resized centre {centroid} != mapped {mapped}"


def test_paste_back_inverts_crop_and_zeroes_outside_box():
    h, w = 60, 80
    probs = np.zeros((h, w), dtype=np.float32)
    probs[20:40, 30:50] = 1.0
    box = (25, 15, 55, 45)  # 30 x 30
    canvas = crop_resize(probs, box, size=60, interpolation=cv2.INTER_NEAREST)
    back = paste_back(canvas, box, (h, w, 3))
    assert back.shape == (h, w) and back.dtype == np.float32
    assert np.array_equal(back >= 0.5, probs >= 0.5), "paste-back of a crop must give the original mask"
    outside = np.ones((h, w), bool)
    outside[15:45, 25:55] = False
    assert np.all(back[outside] == 0), "pixels outside the crop box must be 0"


def test_paste_back_clips_a_box_that_leaves_the_image():
    back = paste_back(np.ones((32, 32), np.float32), (-16, -16, 16, 16), (20, 20))
    assert back[:16, :16].min() == 1.0 and back[16:, :].max() == 0.0 and back[:, 16:].max() == 0.0
