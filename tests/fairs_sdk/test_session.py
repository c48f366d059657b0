"""Tests of fairs_sdk.session.InteractiveSession: clicks added and undone one at a time.

Uses the SFG echo model (probabilities = the SFG map), on which every click
visibly changes the result, and the real architecture for one equivalence check.
"""

from __future__ import annotations

import numpy as np
import pytest

from fairs_sdk import InputError, InteractiveSession

IMAGE = np.zeros((240, 320, 3), np.uint8)
POINTS = [(60, 110), (260, 120), (170, 90), (150, 140)]


def same(a, b) -> bool:
    return a.box == b.box and np.array_equal(a.probabilities, b.probabilities) and np.array_equal(a.mask, b.mask)


def test_session_starts_with_the_extreme_points_result(sfg_segmenter):
    session = sfg_segmenter.session(IMAGE, POINTS)
    assert isinstance(session, InteractiveSession)
    assert same(session.result, sfg_segmenter.segment(IMAGE, POINTS)), "initial result differs from segment()"
    assert session.clicks == ()


def test_each_click_returns_segment_with_all_clicks_so_far(sfg_segmenter):
    session = sfg_segmenter.session(IMAGE, POINTS)
    r1 = session.add_positive(280, 150)
    r2 = session.add_negative(160, 115)
    r3 = session.add_click(100, 100, positive=False)
    assert same(r1, sfg_segmenter.segment(IMAGE, POINTS, positive_clicks=[(280, 150)])), "after click 1"
    assert same(r2, sfg_segmenter.segment(IMAGE, POINTS, [(280, 150)], [(160, 115)])), "after click 2"
    assert same(r3, sfg_segmenter.segment(IMAGE, POINTS, [(280, 150)], [(160, 115), (100, 100)])), "after click 3"
    assert same(session.result, r3), "session.result is not the last click's result"


def test_clicks_change_the_result(sfg_segmenter):
    session = sfg_segmenter.session(IMAGE, POINTS)
    before = session.result.probabilities[115, 160]
    after = session.add_negative(160, 115).probabilities[115, 160]
    assert after < before - 0.5, f"negative click left the SFG at {after:.3f} (was {before:.3f})"


def test_undo_returns_the_previous_result(sfg_segmenter):
    session = sfg_segmenter.session(IMAGE, POINTS)
    r1 = session.add_positive(280, 150)
    session.add_negative(160, 115)
    back = session.undo()
    assert same(back, r1), "undo did not return the result before the last click"
    assert session.clicks == ((280.0, 150.0, True),), f"clicks after undo: {session.clicks}"


def test_undo_to_start_then_nothing_left(sfg_segmenter):
    session = sfg_segmenter.session(IMAGE, POINTS)
    start = session.result
    session.add_positive(280, 150)
    assert same(session.undo(), start), "undoing the only click must give the extreme-points result"
    with pytest.raises(InputError, match="no click to undo"):
        session.undo()


def test_reset_removes_every_click(sfg_segmenter):
    session = sfg_segmenter.session(IMAGE, POINTS)
    start = session.result
    session.add_positive(280, 150)
    session.add_negative(160, 115)
    assert same(session.reset(), start) and session.clicks == (), "reset did not return to the start"


def test_bad_click_is_refused_and_changes_nothing(sfg_segmenter):
    session = sfg_segmenter.session(IMAGE, POINTS)
    r1 = session.add_positive(280, 150)
    with pytest.raises(InputError, match="outside"):
        session.add_negative(500, 10)
    with pytest.raises(InputError, match="NaN"):
        session.add_positive(float("nan"), 10)
    assert len(session.clicks) == 1 and same(session.result, r1), "a refused click changed the session"


def test_bad_session_input_is_refused(sfg_segmenter):
    with pytest.raises(InputError, match="at least 2"):
        sfg_segmenter.session(IMAGE, [(10, 10)])
    with pytest.raises(InputError, match="uint8"):
        sfg_segmenter.session(IMAGE.astype(np.float32), POINTS)


def test_session_on_the_real_architecture(tiny_segmenter, photo):
    ep = [(120, 200), (420, 230), (260, 90), (280, 400)]
    session = tiny_segmenter.session(photo, ep)
    result = session.add_positive(300, 250)
    expected = tiny_segmenter.segment(photo, ep, positive_clicks=[(300, 250)])
    assert same(result, expected), "session result differs from segment() with the same clicks"
