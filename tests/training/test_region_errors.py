"""Simulated region errors for click training: one region of one side, flipped."""

from __future__ import annotations

import numpy as np

from fairs_sdk.training.region_errors import ERROR_LOGIT, feature_regions, region_error


def _two_part_crop(size: int = 128, cells: int = 32):
    """Features with two kinds of cell inside the object (left and right halves), four outside (quadrants).

    The object is the middle half of the crop each way; the background ring around it
    within the box enlarged by a quarter is 4 cells thick, so it survives the opening.
    """
    features = np.zeros((6, cells, cells), np.float32)
    half, quarter = cells // 2, cells // 4
    features[0, :half, :half] = features[3, :half, half:] = features[4, half:, :half] = features[5, half:, half:] = 1.0
    target = np.zeros((size, size), bool)
    target[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    left = np.zeros((cells, cells), bool)
    left[quarter : 3 * quarter, quarter:half] = True
    right = np.zeros((cells, cells), bool)
    right[quarter : 3 * quarter, half : 3 * quarter] = True
    features[:, left] = np.array([0, 1, 0, 0, 0, 0], np.float32)[:, None]
    features[:, right] = np.array([0, 0, 1, 0, 0, 0], np.float32)[:, None]
    return features, target


def test_feature_regions_cluster_alike_cells_only_where_asked() -> None:
    features, _ = _two_part_crop()
    cells = np.zeros((32, 32), bool)
    cells[8:24, 8:24] = True
    labels = feature_regions(features, cells, 2, np.random.default_rng(0))
    assert (labels[~cells] == -1).all(), "cells outside the asked area must stay -1"
    assert len(np.unique(labels[8:24, 8:16])) == 1 and len(np.unique(labels[8:24, 16:24])) == 1, "alike cells must share a cluster"
    assert labels[8, 8] != labels[8, 16], "the two kinds of cell must be told apart"


def test_region_error_flips_a_whole_part_of_one_side() -> None:
    features, target = _two_part_crop()
    seen = set()
    for seed in range(12):
        error = region_error(features, target, np.random.default_rng(seed))
        assert error.shape == target.shape and error.dtype == np.float32
        if not error.any():
            continue
        values = set(np.unique(error[error != 0]).tolist())
        assert values in ({-ERROR_LOGIT}, {ERROR_LOGIT}), f"one side, one sign: got {values}"
        if error.min() < 0:
            assert not (error < 0)[~target].any(), "an object-side error must stay inside the object"
            part = error < 0
            in_left, in_right = part[:, :64].any(), part[:, 64:].any()
            assert in_left != in_right, "an object-side error must lie within alike cells (one half), not span both"
            seen.add("object")
        else:
            assert not (error > 0)[target].any(), "a background error must stay outside the object"
            seen.add("background")
    assert seen == {"object", "background"}, f"both sides must be drawn over 12 seeds, got {seen}"


def test_region_error_is_empty_for_an_empty_object() -> None:
    features, target = _two_part_crop()
    error = region_error(features, np.zeros_like(target), np.random.default_rng(0))
    assert not error.any(), "no object, no region error"
