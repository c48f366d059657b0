"""Tests of Segmenter.segment_many and iter_segment_many: bounded batches, a stream with flat memory.

Uses the red echo model (conftest: probability = red channel / 255), whose backend
calls are counted through a wrapper of ``backend.run``.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from fairs_sdk import InputError, Segmenter
from fairs_sdk.segmenter import BATCH_SIZE

SHAPE = (480, 854)


def scene() -> np.ndarray:
    image = np.zeros(SHAPE + (3,), dtype=np.uint8)
    image[100:300, 200:600] = (255, 0, 0)
    return image


def objects(count: int) -> list[dict]:
    """``count`` different objects spread over the scene."""
    out = []
    for i in range(count):
        x, y = 20 + (i * 37) % 700, 20 + (i * 53) % 350
        out.append({"extreme_points": [(x, y + 40), (x + 100, y + 50), (x + 50, y), (x + 60, y + 90)]})
    return out


@pytest.fixture
def counted(red_model, monkeypatch):
    """A Segmenter on the red echo model whose backend records the size of each batch it runs."""
    seg = Segmenter(red_model, warmup=False)
    sizes: list[int] = []
    run = seg.backend.run
    monkeypatch.setattr(seg.backend, "run", lambda batch: sizes.append(len(batch)) or run(batch))
    return seg, sizes


def test_batch_size_default_is_a_small_bound():
    assert isinstance(BATCH_SIZE, int) and 1 <= BATCH_SIZE <= 16, f"BATCH_SIZE = {BATCH_SIZE!r}"


def test_segment_many_runs_at_most_batch_size_objects_per_backend_call(counted):
    seg, sizes = counted
    count = 2 * BATCH_SIZE + 1
    results = seg.segment_many(scene(), objects(count))
    assert sizes == [BATCH_SIZE, BATCH_SIZE, 1], f"backend batches {sizes} for {count} objects"
    assert len(results) == count


def test_segment_many_takes_a_batch_size(counted):
    seg, sizes = counted
    seg.segment_many(scene(), objects(10), batch_size=3)
    assert sizes == [3, 3, 3, 1], f"backend batches {sizes} with batch_size=3"


def test_stream_equals_segment_many_and_segment(red_segmenter):
    image, objs = scene(), objects(7)
    listed = red_segmenter.segment_many(image, objs, batch_size=3)
    streamed = list(red_segmenter.iter_segment_many(image, objs, batch_size=3))
    assert len(streamed) == len(listed) == 7
    for i, (a, b) in enumerate(zip(streamed, listed)):
        single = red_segmenter.segment(image, **objs[i])
        assert a.box == b.box == single.box, f"object {i}: boxes {a.box}, {b.box}, {single.box}"
        assert np.array_equal(a.probabilities, b.probabilities), f"object {i}: stream differs from segment_many"
        assert np.array_equal(a.probabilities, single.probabilities), f"object {i}: stream differs from segment"
        assert np.array_equal(a.mask, b.mask)


def test_stream_runs_one_batch_at_a_time(counted):
    seg, sizes = counted
    stream = seg.iter_segment_many(scene(), objects(3 * BATCH_SIZE))
    assert sizes == [], f"the stream ran the model before it was asked for a result: {sizes}"
    next(stream)
    assert sizes == [BATCH_SIZE], f"the first result ran batches {sizes}, expected only the first"
    for _ in range(BATCH_SIZE):
        next(stream)
    assert sizes == [BATCH_SIZE, BATCH_SIZE], f"after {BATCH_SIZE + 1} results the backend ran {sizes}"


def peak_mib(seg: Segmenter, count: int) -> float:
    """Peak traced memory (MiB) of streaming ``count`` objects and dropping each result."""
    image, objs = scene(), objects(count)
    tracemalloc.start()
    try:
        for result in seg.iter_segment_many(image, objs):
            assert result.mask.shape == SHAPE
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_stream_memory_does_not_grow_with_the_number_of_objects(red_segmenter):
    few, many = peak_mib(red_segmenter, BATCH_SIZE), peak_mib(red_segmenter, 12 * BATCH_SIZE)
    one_result = SHAPE[0] * SHAPE[1] * 5 / 2**20  # float32 probabilities + bool mask
    assert many < few + one_result, (
        f"streaming {12 * BATCH_SIZE} objects peaked at {many:.1f} MiB, {BATCH_SIZE} objects at {few:.1f} MiB: "
        "memory grows with the number of objects"
    )


def test_stream_checks_every_object_when_called(red_segmenter):
    objs = objects(5) + [{"extreme_points": [(5, 5)]}]
    with pytest.raises(InputError, match=r"objects\[5\].*at least 2"):
        red_segmenter.iter_segment_many(scene(), objs)  # no next(): the call itself checks


def test_stream_keeps_its_own_copy_of_the_image(red_segmenter):
    image, objs = scene(), objects(2 * BATCH_SIZE)
    expected = red_segmenter.segment_many(image, objs)
    stream = red_segmenter.iter_segment_many(image, objs)
    first = next(stream)
    image[:] = 0  # the caller reuses its buffer while the stream is running
    rest = list(stream)
    for i, (got, want) in enumerate(zip([first] + rest, expected)):
        assert np.array_equal(got.mask, want.mask), f"object {i}: the stream saw the caller's later change"


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True, "4", None])
def test_bad_batch_size_is_refused(red_segmenter, batch_size):
    with pytest.raises(InputError, match="batch_size"):
        red_segmenter.segment_many(scene(), objects(2), batch_size=batch_size)
    with pytest.raises(InputError, match="batch_size"):
        red_segmenter.iter_segment_many(scene(), objects(2), batch_size=batch_size)


@pytest.mark.parametrize(
    "objs", [{"extreme_points": [(1, 1), (5, 5)]}, "objects", 3, None], ids=["dict", "str", "int", "none"]
)
def test_objects_that_are_not_a_sequence_of_mappings_are_refused(red_segmenter, objs):
    with pytest.raises(InputError, match="objects"):
        red_segmenter.segment_many(scene(), objs)


def test_stream_of_nothing_is_empty(counted):
    seg, sizes = counted
    assert list(seg.iter_segment_many(scene(), [])) == [] and sizes == []
