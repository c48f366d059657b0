"""Cached crops for decoder training: three-point and jittered crops."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fairs_sdk.config import InputSpec
from fairs_sdk.training.feature_cache import MANIFEST, FeatureCache, build_cache
from fairs_sdk.training.sources import build_source

SPEC = InputSpec(input_size=64, relax=10, input_channels=("rgb", "sfg"))


def _pixel_cache(tmp_path, horses_root, name, **options) -> FeatureCache:
    source = build_source({"kind": "folder", "root": str(horses_root), "max_instances": 3})
    build_cache(source, [0, 1, 2], SPEC, None, tmp_path / name, progress=False, **options)
    return FeatureCache.load([tmp_path / name])


def test_four_point_crops_keep_their_four_points_and_no_crop_points(tmp_path, horses_root):
    cache = _pixel_cache(tmp_path, horses_root, "plain")
    assert cache.points.shape == (3, 4, 2) and np.isfinite(cache.points).all()
    assert all(cache.crop_points(row) is None for row in range(3)), "a four-point crop has no three-point guidance"


def test_three_point_crops_drop_one_point_of_the_closest_pair(tmp_path, horses_root):
    cache = _pixel_cache(tmp_path, horses_root, "three", crop_points=3)
    for row in range(3):
        assert np.isnan(cache.points[row]).any(1).sum() == 1, f"row {row}: exactly one point must be dropped"
        kept = cache.crop_points(row)
        assert kept.shape == (3, 2) and (kept >= -1).all() and (kept <= 64).all(), f"row {row}: points off the canvas {kept}"


def test_jittered_crops_differ_from_plain_ones_and_rebuild_identically(tmp_path, horses_root):
    plain = _pixel_cache(tmp_path, horses_root, "plain")
    first = _pixel_cache(tmp_path, horses_root, "jitter_a", crop_jitter=True)
    second = _pixel_cache(tmp_path, horses_root, "jitter_b", crop_jitter=True)
    assert np.array_equal(first.pixels, second.pixels), "a jittered build must be reproducible (resumable)"
    assert not np.array_equal(first.pixels, plain.pixels), "jittered crops must not equal the plain crops"


def test_old_caches_without_points_load_as_four_point_crops(tmp_path, horses_root):
    _pixel_cache(tmp_path, horses_root, "plain")
    shard = next((tmp_path / "plain").glob("shard_*.npz"))
    with np.load(shard) as data:
        arrays = {k: data[k] for k in data.files if k != "points"}
    np.savez(shard, **arrays)
    cache = FeatureCache.load([tmp_path / "plain"])
    assert np.isnan(cache.points).all() and cache.crop_points(0) is None


def test_a_cache_made_with_other_settings_is_refused(tmp_path, horses_root):
    _pixel_cache(tmp_path, horses_root, "plain")
    source = build_source({"kind": "folder", "root": str(horses_root), "max_instances": 3})
    wider = InputSpec(input_size=64, relax=20, input_channels=("rgb", "sfg"))
    with pytest.raises(ValueError, match=r"other settings \(relax 10 -> 20\)"):
        build_cache(source, [0, 1, 2], wider, None, tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match="crop_points 4 -> 3"):
        build_cache(source, [0, 1, 2], SPEC, None, tmp_path / "plain", progress=False, crop_points=3)


def test_a_cache_with_the_same_settings_resumes(tmp_path, horses_root):
    first = _pixel_cache(tmp_path, horses_root, "plain")
    again = _pixel_cache(tmp_path, horses_root, "plain")
    assert np.array_equal(first.pixels, again.pixels), "the same settings must reuse the cache as it is"


def test_a_cache_from_before_the_manifest_is_used_with_a_warning(tmp_path, horses_root):
    _pixel_cache(tmp_path, horses_root, "plain")
    (tmp_path / "plain" / MANIFEST).unlink()
    with pytest.warns(UserWarning, match="cannot be checked"):
        _pixel_cache(tmp_path, horses_root, "plain")


def test_three_point_crops_take_partial_relax_and_record_it(tmp_path, horses_root):
    source = build_source({"kind": "folder", "root": str(horses_root), "max_instances": 3})
    build_cache(source, [0, 1, 2], SPEC, None, tmp_path / "three", progress=False, crop_points=3)
    wider = InputSpec(input_size=64, relax=10, partial_relax=0.3, input_channels=("rgb", "sfg"))
    with pytest.raises(ValueError, match=r"partial_relax None -> 0.3"):  # the same folder, crops made without it
        build_cache(source, [0, 1, 2], wider, None, tmp_path / "three", progress=False, crop_points=3)
    build_cache(source, [0, 1, 2], SPEC, None, tmp_path / "four", progress=False)
    build_cache(source, [0, 1, 2], wider, None, tmp_path / "four", progress=False)  # four points: crops as before
    build_cache(source, [0, 1, 2], wider, None, tmp_path / "three_wide", progress=False, crop_points=3)
    narrow, wide = FeatureCache.load([tmp_path / "three"]), FeatureCache.load([tmp_path / "three_wide"])
    spans = [np.ptp(cache.crop_points(0), axis=0).max() for cache in (narrow, wide)]
    assert spans[1] < spans[0], f"with partial_relax 0.3 the points must span less of the canvas, got {spans}"


def test_three_point_crops_record_corner_partial_relax_sides(tmp_path, horses_root):
    source = build_source({"kind": "folder", "root": str(horses_root), "max_instances": 3})
    every_side = InputSpec(input_size=64, relax=10, partial_relax=0.3, input_channels=("rgb", "sfg"))
    corner = dataclasses.replace(every_side, partial_relax_sides="corner")
    build_cache(source, [0, 1, 2], every_side, None, tmp_path / "three", progress=False, crop_points=3)
    with pytest.raises(ValueError, match=r"partial_relax_sides None -> 'corner'"):  # crops made on every side
        build_cache(source, [0, 1, 2], corner, None, tmp_path / "three", progress=False, crop_points=3)
    build_cache(source, [0, 1, 2], corner, None, tmp_path / "three_corner", progress=False, crop_points=3)
    wide, narrow = FeatureCache.load([tmp_path / "three"]), FeatureCache.load([tmp_path / "three_corner"])
    spans = [np.ptp(cache.crop_points(0), axis=0).max() for cache in (wide, narrow)]
    assert spans[1] > spans[0], f"widening two sides only must leave the points a larger part of the canvas, got {spans}"
