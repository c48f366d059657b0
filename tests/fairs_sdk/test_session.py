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


# ------------------------------------------------------------------ click maps
def test_negative_click_reaches_a_click_map_model_through_the_session(click_segmenters):
    seg = click_segmenters["negative_clicks"]
    session = seg.session(IMAGE, POINTS)
    far = (20, 50)  # in the crop box, outside the extreme points' box: the SFG is 0 there
    assert session.result.probabilities.max() == 0.0, "negative_clicks plane not empty before any click"
    after = session.add_negative(*far)
    assert after.probabilities[far[1], far[0]] > 0.9, "the session's negative click is not in the negative_clicks plane"
    assert same(after, seg.segment(IMAGE, POINTS, negative_clicks=[far])), "session differs from segment()"
    assert same(session.undo(), seg.segment(IMAGE, POINTS)), "undo did not bring the empty plane back"


# -------------------------------------------------------------------- layering
class PublicOnly:
    """A Segmenter seen through its public API: private attributes and the backend are hidden."""

    def __init__(self, segmenter):
        self._wrapped = segmenter

    def __getattr__(self, name):
        if name.startswith("_") or name == "backend":
            raise AttributeError(f"the session reached into Segmenter.{name}")
        return getattr(self._wrapped, name)


def test_session_uses_only_the_public_segmenter_api(click_segmenters):
    seg = click_segmenters["positive_clicks"]
    session = InteractiveSession(PublicOnly(seg), IMAGE, POINTS, threshold=0.3)
    result = session.add_positive(200, 130)
    assert same(result, seg.segment(IMAGE, POINTS, positive_clicks=[(200, 130)], threshold=0.3))


def test_session_module_imports_the_segmenter_for_type_checking_only():
    import ast
    import inspect

    from fairs_sdk import session as session_module

    tree = ast.parse(inspect.getsource(session_module))
    guarded = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and getattr(block.test, "id", None) == "TYPE_CHECKING" for node in ast.walk(block)}
    runtime = [
        node.lineno for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in guarded
        and any("segmenter" in name for name in
                [getattr(node, "module", None) or ""] + [alias.name for alias in node.names])
    ]
    assert not runtime, f"session.py imports the segmenter at run time (lines {runtime}): an import cycle"


def test_each_click_checks_only_the_new_click_and_the_threshold(sfg_segmenter, monkeypatch):
    from fairs_sdk import segmenter as segmenter_module
    from fairs_sdk import session as session_module

    session = sfg_segmenter.session(IMAGE, POINTS, threshold=0.4)
    session.add_positive(280, 150)
    calls = []
    for module in (segmenter_module, session_module):
        for name in ("check_image", "check_points", "check_click", "check_threshold"):
            if hasattr(module, name):
                real = getattr(module, name)
                monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    session.add_negative(160, 115)
    assert sorted(calls) == ["check_click", "check_threshold"], f"one click made these checks: {calls}"


def test_bad_session_threshold_is_refused(sfg_segmenter):
    with pytest.raises(InputError, match="threshold"):
        sfg_segmenter.session(IMAGE, POINTS, threshold=1.5)


# ------------------------------------------------------------------ two-part models
PHOTO = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def close(a, b, atol: float = 1e-5) -> bool:
    """Same box and mask, probabilities within ``atol`` (the decoder path against the combined file)."""
    return a.box == b.box and np.abs(a.probabilities - b.probabilities).max() <= atol and np.array_equal(a.mask, b.mask)


@pytest.fixture
def counted(tiny_bundle, monkeypatch):
    """A two-part Segmenter whose three backends count their runs: (segmenter, counts)."""
    from fairs_sdk import Segmenter

    seg = Segmenter(tiny_bundle.combined, warmup=False)
    assert seg.two_part, "test setup: the bundle's parts did not load"
    counts = {"backend": 0, "image_encoder": 0, "decoder": 0}
    for name in counts:
        target = getattr(seg, name)

        def run(*args, _run=target.run, _name=name):
            counts[_name] += 1
            return _run(*args)

        monkeypatch.setattr(target, "run", run)
    return seg, counts


def test_two_part_session_encodes_the_crop_once_and_decodes_each_click(counted):
    seg, counts = counted
    session = seg.session(PHOTO, POINTS)
    assert counts == {"backend": 0, "image_encoder": 1, "decoder": 1}, f"session start ran {counts}"
    r1 = session.add_negative(160, 115)
    r2 = session.add_positive(200, 130)  # inside the extreme points' box: the crop box stays
    assert counts == {"backend": 0, "image_encoder": 1, "decoder": 3}, f"two clicks in the box ran {counts}"
    assert session.embedding.box == r2.box == session.result.box
    assert close(r1, seg.segment(PHOTO, POINTS, negative_clicks=[(160, 115)])), "click 1 differs from segment()"
    assert close(r2, seg.segment(PHOTO, POINTS, [(200, 130)], [(160, 115)])), "click 2 differs from segment()"


def test_positive_click_outside_the_box_runs_the_encoder_again(counted):
    seg, counts = counted
    session = seg.session(PHOTO, POINTS)
    start_box = session.result.box
    result = session.add_positive(300, 200)  # beyond the extreme points' box: a new crop box (SPEC 2)
    assert result.box != start_box, "test setup: the click should move the crop box"
    assert counts == {"backend": 0, "image_encoder": 2, "decoder": 2}, f"a click that moved the box ran {counts}"
    assert close(result, seg.segment(PHOTO, POINTS, positive_clicks=[(300, 200)])), "result differs from segment()"
    assert session.embedding.box == result.box


def test_undo_returns_to_the_previous_box_without_running_anything(counted):
    seg, counts = counted
    session = seg.session(PHOTO, POINTS)
    first = session.embedding
    session.add_positive(300, 200)
    before = dict(counts)
    session.undo()
    assert counts == before, f"undo ran {counts} (was {before})"
    assert session.embedding is first, "undo did not go back to the first box's embedding"
    result = session.add_negative(160, 115)
    assert counts["image_encoder"] == before["image_encoder"], "a click after undo re-encoded a crop it had"
    assert close(result, seg.segment(PHOTO, POINTS, negative_clicks=[(160, 115)]))


def test_reset_keeps_the_first_embedding(counted):
    seg, counts = counted
    session = seg.session(PHOTO, POINTS)
    first = session.embedding
    session.add_positive(300, 200)
    session.add_negative(160, 115)
    session.reset()
    assert session.embedding is first and session.clicks == ()
    session.add_negative(100, 100)
    assert counts["image_encoder"] == 2, f"reset then a click in the first box re-encoded it: {counts}"


def test_session_without_parts_has_no_embedding(sfg_segmenter):
    session = sfg_segmenter.session(IMAGE, POINTS)
    session.add_negative(160, 115)
    assert session.embedding is None


def test_two_part_session_uses_only_the_public_segmenter_api(two_part_segmenter):
    session = InteractiveSession(PublicOnly(two_part_segmenter), PHOTO, POINTS, threshold=0.3)
    result = session.add_negative(160, 115)
    assert session.embedding is not None, "the session did not use the parts"
    assert close(result, two_part_segmenter.segment(PHOTO, POINTS, negative_clicks=[(160, 115)], threshold=0.3))
