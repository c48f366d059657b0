"""Tests of what an InteractiveSession keeps: its own image, a bounded history, strict clicks.

Uses the echo models of conftest: ``red_segmenter`` (mask = where the image is
red) shows which pixels the session reads; ``sfg_segmenter`` (probabilities = the
SFG map) makes every click change the result.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest

from fairs_sdk import InputError
from fairs_sdk import session as session_module
from fairs_sdk.session import UNDO_CACHE

SHAPE = (480, 854)
POINTS = [(200, 200), (600, 220), (400, 100), (410, 300)]


def red_scene() -> np.ndarray:
    image = np.zeros(SHAPE + (3,), dtype=np.uint8)
    image[100:300, 200:600] = (255, 0, 0)
    return image


def clicks(count: int) -> list[tuple[float, float, bool]]:
    """``count`` clicks inside the extreme points' box (they keep the crop box), alternating sign."""
    rng = np.random.default_rng(count)
    return [(float(rng.uniform(250, 550)), float(rng.uniform(120, 280)), bool(i % 2)) for i in range(count)]


def same(a, b) -> bool:
    return a.box == b.box and np.array_equal(a.probabilities, b.probabilities) and np.array_equal(a.mask, b.mask)


# ----------------------------------------------------------------------- image
def test_overwriting_the_callers_image_does_not_change_later_masks(red_segmenter):
    image = red_scene()
    session = red_segmenter.session(image, POINTS)
    expected = red_segmenter.segment(red_scene(), POINTS, negative_clicks=[(300, 150)])
    image[:] = 0  # the caller reuses its buffer for the next frame
    got = session.add_negative(300, 150)
    assert got.area > 0 and same(got, expected), "the session followed a change to the caller's array"


def test_session_image_is_read_only(red_segmenter):
    session = red_segmenter.session(red_scene(), POINTS)
    with pytest.raises(ValueError, match="read-only"):
        session.image[0, 0] = 7


def test_gray_and_rgba_images_are_owned_too(red_segmenter):
    for image in (np.full(SHAPE, 200, np.uint8), np.full(SHAPE + (4,), 200, np.uint8)):
        session = red_segmenter.session(image, POINTS)
        before = session.result
        image[:] = 0
        assert same(session.add_positive(300, 150), red_segmenter.segment(np.full(SHAPE, 200, np.uint8), POINTS,
                                                                        positive_clicks=[(300, 150)]))
        assert before.area > 0


# --------------------------------------------------------------------- history
def kept_mib(segmenter, count: int) -> float:
    """Traced memory (MiB) a session holds after ``count`` clicks."""
    gc.collect()
    tracemalloc.start()
    try:
        session = segmenter.session(red_scene(), POINTS)
        for x, y, positive in clicks(count):
            session.add_click(x, y, positive)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] / 2**20
    finally:
        tracemalloc.stop()


def test_history_memory_does_not_grow_with_the_number_of_clicks(sfg_segmenter):
    few, many = kept_mib(sfg_segmenter, UNDO_CACHE + 4), kept_mib(sfg_segmenter, UNDO_CACHE + 64)
    one_result = SHAPE[0] * SHAPE[1] * 5 / 2**20  # float32 probabilities + bool mask
    assert many - few < one_result / 4, (
        f"a session kept {few:.1f} MiB after {UNDO_CACHE + 4} clicks and {many:.1f} MiB after {UNDO_CACHE + 64}: "
        f"its history grows (one full-size result is {one_result:.1f} MiB)"
    )


def test_undo_past_the_cache_recomputes_the_same_results(sfg_segmenter):
    session = sfg_segmenter.session(red_scene(), POINTS)
    made = clicks(UNDO_CACHE + 3)
    for x, y, positive in made:
        session.add_click(x, y, positive)
    for n in range(len(made) - 1, -1, -1):
        got = session.undo()
        pos = [(x, y) for x, y, p in made[:n] if p]
        neg = [(x, y) for x, y, p in made[:n] if not p]
        assert same(got, sfg_segmenter.segment(red_scene(), POINTS, pos, neg)), f"undo to {n} clicks differs"
        assert len(session.clicks) == n and same(session.result, got)


def test_undo_within_the_cache_runs_no_model(sfg_segmenter, monkeypatch):
    session = sfg_segmenter.session(red_scene(), POINTS)
    for x, y, positive in clicks(UNDO_CACHE + 2):
        session.add_click(x, y, positive)
    runs = []
    run = sfg_segmenter.run
    monkeypatch.setattr(sfg_segmenter, "run", lambda inputs: runs.append(len(inputs)) or run(inputs))
    for _ in range(UNDO_CACHE):
        session.undo()
    assert runs == [], f"undoing {UNDO_CACHE} clicks ran the model {len(runs)} times"
    session.undo()  # one further back than the cache
    assert len(runs) == 1, f"undo past the cache ran the model {len(runs)} times, expected once"


def test_reset_after_many_clicks_runs_no_model(sfg_segmenter, monkeypatch):
    session = sfg_segmenter.session(red_scene(), POINTS)
    start = session.result
    for x, y, positive in clicks(UNDO_CACHE + 5):
        session.add_click(x, y, positive)
    monkeypatch.setattr(sfg_segmenter, "run", lambda inputs: pytest.fail("reset ran the model"))
    assert same(session.reset(), start) and session.clicks == ()


# ---------------------------------------------------------------------- clicks
@pytest.mark.parametrize("positive", ["no", 1, 0, None], ids=repr)
def test_add_click_refuses_a_sign_that_is_not_a_bool(sfg_segmenter, positive):
    session = sfg_segmenter.session(red_scene(), POINTS)
    with pytest.raises(InputError, match="positive must be True or False"):
        session.add_click(300, 150, positive=positive)
    assert session.clicks == (), "a refused click was stored"


@pytest.mark.parametrize("x, y", [("300", 150), (300, "150.5"), (True, 150)], ids=repr)
def test_add_click_refuses_coordinates_that_are_not_numbers(sfg_segmenter, x, y):
    session = sfg_segmenter.session(red_scene(), POINTS)
    with pytest.raises(InputError, match="must be a number"):
        session.add_positive(x, y)


def test_add_click_takes_numpy_values(sfg_segmenter):
    session = sfg_segmenter.session(red_scene(), POINTS)
    session.add_click(np.float32(300.5), np.int64(150), np.bool_(False))
    assert session.clicks == ((300.5, 150.0, False),)
    assert all(type(v) in (float, bool) for v in session.clicks[0]), f"stored {session.clicks[0]!r}"


def test_session_holds_at_most_max_points_clicks_of_a_kind(sfg_segmenter, monkeypatch):
    monkeypatch.setattr(session_module, "MAX_POINTS", 2)
    session = sfg_segmenter.session(red_scene(), POINTS)
    session.add_positive(300, 150)
    session.add_positive(310, 150)
    session.add_negative(320, 150)
    with pytest.raises(InputError, match="already holds 2 positive clicks"):
        session.add_positive(330, 150)
    assert len(session.clicks) == 3, "a refused click was stored"
    session.add_negative(340, 150)  # the other kind still has room
