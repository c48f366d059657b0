"""Property-based fuzz tests (hypothesis) of Segmenter.segment, InteractiveSession and soft_focus.

Random image shapes and dtypes, point sets (too few, NaN, infinite, outside the
image, duplicates, too many, strings and bools), clicks, undo / reset sequences,
thresholds and SFG parameters. The contract checked, against an independent
statement of the documented rules (``*_ok`` below):

- valid input gives a valid result: mask (H, W) bool, probabilities (H, W) float32
  in [0, 1] and 0 outside the crop box, the box holding the extreme points and
  positive clicks, mask == probabilities >= threshold;
- invalid input raises the documented error (:class:`InputError` from the
  runtime, ``ValueError`` from ``soft_focus``), and no other exception;
- the instance stays usable: after all the examples, errors included, the
  bundled model segments a fixed input exactly as before; a refused click leaves
  a session unchanged, undo and reset give back earlier results exactly.

Each test also checks that both valid and invalid examples ran, so that it
cannot pass by exercising only one side. The examples are derandomized (the same
on every run, no example database): CI stays reproducible and runs in well under
a minute on two cores.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fairs_sdk import InputError, Result, Segmenter, soft_focus  # noqa: E402
from fairs_sdk.validation import MAX_POINTS  # noqa: E402

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                database=None, derandomize=True)

REFERENCE_IMAGE = np.random.default_rng(7).integers(0, 256, (40, 56, 3), dtype=np.uint8)
REFERENCE_POINTS = [(5, 20), (50, 22), (28, 3), (30, 36)]

OTHER_DTYPES = [np.uint16, np.float32, np.float64, np.int64, np.bool_]
ODD_VALUES = ["1", "2.5", True, False, None, np.bool_(True), b"3", 1 + 0j]


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    """The bundled default model, loaded once for the module."""
    return Segmenter(warmup=False)


@pytest.fixture(scope="module")
def reference(segmenter) -> Result:
    return segmenter.segment(REFERENCE_IMAGE, REFERENCE_POINTS)


def assert_still_usable(segmenter: Segmenter, reference: Result) -> None:
    again = segmenter.segment(REFERENCE_IMAGE, REFERENCE_POINTS)
    assert again.box == reference.box and np.array_equal(again.probabilities, reference.probabilities), (
        "after the fuzz examples the segmenter no longer segments the reference input identically"
    )


# -------------------------------------------------------------------- oracles
def is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def image_ok(image) -> bool:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3):
        return False
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        return False
    return image.shape[0] > 0 and image.shape[1] > 0


def points_ok(points, hw, min_count=0, distinct=False) -> bool:
    """The documented rules for a point list on an (h, w) image (no image: no inside rule)."""
    if isinstance(points, np.ndarray):
        if points.dtype.kind not in "iuf" or points.ndim != 2 or points.shape[1] != 2:
            return points.size == 0 and min_count == 0
        pairs = [tuple(p) for p in points]
    else:
        pairs = list(points)
        if any(len(p) != 2 or not all(is_real(v) for v in p) for p in pairs):
            return False
    if not min_count <= len(pairs) <= MAX_POINTS:
        return False
    values = [(float(x), float(y)) for x, y in pairs]
    if not all(math.isfinite(v) for p in values for v in p):
        return False
    if hw is not None:
        h, w = hw
        if not all(-0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5 for x, y in values):
            return False
    return not distinct or len(set(values)) > 1


def threshold_ok(t) -> bool:
    return t is None or (is_real(t) and 0.0 <= float(t) <= 1.0)


def assert_valid_result(res, hw, extreme, positive, threshold) -> None:
    h, w = hw
    assert isinstance(res, Result), f"returned {type(res).__name__}"
    assert res.mask.shape == (h, w) and res.mask.dtype == bool, f"mask {res.mask.shape} {res.mask.dtype}"
    p = res.probabilities
    assert p.shape == (h, w) and p.dtype == np.float32, f"probabilities {p.shape} {p.dtype}"
    assert np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0, f"probabilities in [{p.min()}, {p.max()}]"
    t = 0.5 if threshold is None else float(threshold)
    assert np.array_equal(res.mask, p >= t), "mask is not probabilities >= threshold"
    x0, y0, x1, y1 = res.box
    pts = np.array([(float(x), float(y)) for x, y in list(extreme) + list(positive)]).reshape(-1, 2)
    assert (x0 <= pts[:, 0].min() and pts[:, 0].max() < x1 and y0 <= pts[:, 1].min() and pts[:, 1].max() < y1), (
        f"box {res.box} does not hold the points {pts.tolist()}"
    )
    outside = np.ones((h, w), dtype=bool)
    outside[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = False
    assert not p[outside].any(), f"probabilities outside the box {res.box}"


# ----------------------------------------------------------------- strategies
# Each example is valid, or has one or two arguments spoilt in one of the ways the
# documented rules refuse; the oracles above, not these labels, say what is expected.
SPOIL = st.sampled_from([None] * 5 + ["image", "extreme", "positive", "negative", "threshold", "two"])
ARGUMENTS = ("image", "extreme", "positive", "negative", "threshold")


@st.composite
def spoilt(draw) -> set:
    """The arguments of one example to spoil: none (about 45% of examples), one or two."""
    choice = draw(SPOIL)
    if choice is None:
        return set()
    if choice == "two":
        return set(draw(st.lists(st.sampled_from(ARGUMENTS), min_size=2, max_size=2, unique=True)))
    return {choice}


@st.composite
def images(draw, valid: bool = True):
    """A small uint8 gray, RGB or RGBA image; spoilt: empty, 1-D, 4-D, 2 or 5 channels, or another dtype."""
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    kinds = {"rgb": (h, w, 3), "gray": (h, w), "gray1": (h, w, 1), "rgba": (h, w, 4)}
    dtype = np.uint8
    if valid:
        shape = kinds[draw(st.sampled_from(["rgb", "rgb", "gray", "gray1", "rgba"]))]
    else:
        fault = draw(st.sampled_from(["dtype", "empty", "1d", "4d", "2ch", "5ch"]))
        shape = {"empty": (0, w, 3) if draw(st.booleans()) else (h, 0), "1d": (w,), "4d": (1, h, w, 3),
                 "2ch": (h, w, 2), "5ch": (h, w, 5)}.get(fault, kinds["rgb"])
        if fault == "dtype":
            dtype = draw(st.sampled_from(OTHER_DTYPES))
    image = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 256, shape).astype(dtype)
    if image.ndim >= 2 and draw(st.booleans()):
        image = image[::-1]  # a non-contiguous view
    return image


def inside(extent: int | None):
    """A valid coordinate: on an image side of ``extent`` pixels (borders included), or any finite float."""
    if extent is None:
        return st.one_of(st.floats(-100, 100), st.floats(allow_nan=False, allow_infinity=False), st.integers(-50, 50))
    top = extent - 0.5
    return st.one_of(st.floats(-0.5, top), st.integers(0, extent - 1), st.floats(-0.5, top).map(np.float32),
                     st.sampled_from([-0.5, top]))


@st.composite
def point_sets(draw, hw, valid: bool = True, min_size: int = 0, max_size: int = 6):
    """(x, y) pairs on an (h, w) image (``hw`` None: anywhere) as a list or array; spoilt in one way."""
    h, w = hw if hw is not None else (None, None)
    pairs = draw(st.lists(st.tuples(inside(w), inside(h)), min_size=max(min_size, 1 if not valid else 0),
                          max_size=max_size, unique=min_size >= 2))  # extreme points: not all the same
    if valid:
        return np.array(pairs, dtype=np.float64).reshape(-1, 2) if draw(st.booleans()) else pairs
    faults = ["odd", "nonfinite", "huge", "flat", "columns"] + (["outside"] if hw is not None else [])
    faults += ["few", "duplicate"] if min_size >= 2 else []
    fault = draw(st.sampled_from(faults))
    i, j = draw(st.integers(0, len(pairs) - 1)), draw(st.integers(0, 1))
    spoil = list(pairs[i])
    if fault == "odd":
        spoil[j] = draw(st.sampled_from(ODD_VALUES))
    elif fault == "nonfinite":
        spoil[j] = draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    elif fault == "outside":
        extent = (w, h)[j]
        spoil[j] = draw(st.one_of(st.floats(-1e9, -0.5001), st.floats(extent - 0.4999, 1e9)))
    elif fault == "huge":
        return np.zeros((MAX_POINTS + 1, 2))
    elif fault == "flat":
        return [v for pair in pairs for v in pair]
    elif fault == "columns":
        return [tuple(p) + (1.0,) for p in pairs]
    elif fault == "few":
        return pairs[:1]
    elif fault == "duplicate":
        return [pairs[0]] * draw(st.integers(2, 4))
    pairs[i] = tuple(spoil)
    return pairs


def thresholds(valid: bool = True):
    if valid:
        return st.one_of(st.none(), st.none(), st.floats(0, 1),
                         st.sampled_from([0, 1, np.float32(0.3), np.float64(1.0)]))
    return st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda t: not 0 <= t <= 1),
                     st.sampled_from([-0.1, 1.0000001, True, False, "0.5", np.bool_(False), [0.5], 1j]))


def any_points_ok(points, hw, min_count=0, distinct=False) -> bool:
    if isinstance(points, list) and points and not isinstance(points[0], tuple):
        return False  # the "flat" form: numbers, not pairs
    return points_ok(points, hw, min_count, distinct)


# ---------------------------------------------------------------------- tests
def test_segment_returns_a_valid_result_or_raises_input_error(segmenter, reference):
    seen = {"ok": 0, "error": 0}

    @settings(FUZZ, max_examples=60)
    @given(data=st.data())
    def run(data):
        bad = data.draw(spoilt(), "spoilt")
        image = data.draw(images("image" not in bad), "image")
        hw = image.shape[:2] if image.ndim >= 2 else (0, 0)
        on = hw if min(hw) > 0 else (16, 16)  # an image with no pixels: points as for a 16 x 16 one
        extreme = data.draw(point_sets(on, "extreme" not in bad, min_size=2), "extreme_points")
        positive = data.draw(point_sets(on, "positive" not in bad, max_size=3), "positive_clicks")
        negative = data.draw(point_sets(on, "negative" not in bad, max_size=3), "negative_clicks")
        threshold = data.draw(thresholds("threshold" not in bad), "threshold")
        ok = (image_ok(image) and any_points_ok(extreme, hw, 2, distinct=True) and any_points_ok(positive, hw)
              and any_points_ok(negative, hw) and threshold_ok(threshold))
        assert ok or bad, "test setup: an unspoilt example breaks the documented rules"
        try:
            res = segmenter.segment(image, extreme, positive, negative, threshold=threshold)
        except InputError as err:
            assert not ok, f"valid input refused: {err}"
            seen["error"] += 1
            return
        assert ok, "invalid input accepted"
        assert_valid_result(res, hw, extreme, positive, threshold)
        seen["ok"] += 1

    run()
    print(f"segment: {seen}")
    assert seen["ok"] >= 5 and seen["error"] >= 20, f"examples run: {seen}"
    assert_still_usable(segmenter, reference)


@st.composite
def operations(draw, hw):
    """An undo with nothing to undo, a click, an undo, a click and a reset, then 0 to 4 of the
    three at random; each click valid, or with a spoilt coordinate or sign.

    The fixed start makes every example exercise each operation: with random ones only, which
    paths 20 derandomized examples reached depended on the tests run before (some runs drew
    no reset at all)."""
    h, w = hw

    @st.composite
    def click(draw):
        x, y, positive = draw(inside(w)), draw(inside(h)), draw(st.sampled_from([True, False, np.bool_(True)]))
        fault = draw(st.sampled_from([None] * 8 + ["sign", "odd", "nonfinite", "outside"]))
        if fault == "sign":
            positive = draw(st.sampled_from(["no", "yes", 1, 0, None]))
        elif fault == "odd":
            x = draw(st.sampled_from(ODD_VALUES))
        elif fault == "nonfinite":
            y = draw(st.sampled_from([float("nan"), float("inf")]))
        elif fault == "outside":
            x = draw(st.sampled_from([-0.51, w - 0.49, 1e12, -3]))
        return ("click", x, y, positive)

    kind = st.sampled_from(["click"] * 4 + ["undo"] * 2 + ["reset"])
    start = ["undo", "click", "undo", "click", "reset"]
    return [draw(click()) if k == "click" else (k,) for k in start + draw(st.lists(kind, max_size=4))]


def same(a: Result, b: Result) -> bool:
    return a.box == b.box and np.array_equal(a.probabilities, b.probabilities) and np.array_equal(a.mask, b.mask)


def test_session_clicks_undo_and_reset_keep_the_contract(segmenter, reference):
    seen = dict.fromkeys(
        ["sessions", "refused sessions", "clicks", "refused clicks", "undo", "refused undo", "reset"], 0
    )

    @settings(FUZZ, max_examples=20)
    @given(data=st.data())
    def run(data):
        bad = data.draw(spoilt(), "spoilt") & {"image", "extreme", "threshold"}
        image = data.draw(images("image" not in bad), "image")
        hw = image.shape[:2] if image.ndim >= 2 else (0, 0)
        on = hw if min(hw) > 0 else (16, 16)
        extreme = data.draw(point_sets(on, "extreme" not in bad, min_size=2), "extreme_points")
        threshold = data.draw(thresholds("threshold" not in bad), "threshold")
        ok = image_ok(image) and any_points_ok(extreme, hw, 2, distinct=True) and threshold_ok(threshold)
        assert ok or bad, "test setup: an unspoilt example breaks the documented rules"
        try:
            session = segmenter.session(image, extreme, threshold=threshold)
        except InputError as err:
            assert not ok, f"valid session input refused: {err}"
            seen["refused sessions"] += 1
            return
        assert ok, "invalid session input accepted"
        assert_valid_result(session.result, hw, extreme, [], threshold)
        seen["sessions"] += 1
        results, clicks = [session.result], []
        for op in data.draw(operations(hw), "operations"):  # hw: the session exists, so its image is valid
            if op[0] == "click":
                _, x, y, positive = op
                click_ok = isinstance(positive, (bool, np.bool_)) and points_ok([(x, y)], hw)
                before = session.result
                try:
                    res = session.add_click(x, y, positive)
                except InputError as err:
                    assert not click_ok, f"valid click {op} refused: {err}"
                    assert session.result is before and list(session.clicks) == clicks, (
                        "a refused click changed the session"
                    )
                    seen["refused clicks"] += 1
                    continue
                assert click_ok, f"invalid click {op} accepted"
                clicks.append((float(x), float(y), bool(positive)))
                pos = [(cx, cy) for cx, cy, p in clicks if p]
                assert_valid_result(res, hw, extreme, pos, threshold)
                results.append(res)
            elif op[0] == "undo":
                if not clicks:
                    with pytest.raises(InputError, match="no click to undo"):
                        session.undo()
                    seen["refused undo"] += 1
                    continue
                clicks.pop()
                results.pop()
                assert same(session.undo(), results[-1]), "undo did not give back the earlier result"
            else:
                del clicks[:], results[1:]
                assert same(session.reset(), results[0]), "reset did not give back the first result"
            assert list(session.clicks) == clicks and same(session.result, results[-1])
            seen["clicks" if op[0] == "click" else op[0]] += 1

    run()
    print(f"session: {seen}")
    assert min(seen.values()) >= 2 and seen["clicks"] >= 10, f"examples run: {seen}"
    assert_still_usable(segmenter, reference)


def shape_ok(shape) -> bool:
    return (isinstance(shape, tuple) and len(shape) == 2
            and all(isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d > 0 for d in shape))


def parameter_ok(value, low, inclusive) -> bool:
    return is_real(value) and math.isfinite(value) and (value >= low if inclusive else value > low)


def test_soft_focus_returns_a_map_in_the_unit_interval_or_raises_value_error():
    seen = {"ok": 0, "error": 0}
    side = st.integers(1, 40)
    shapes = {True: st.tuples(side, side),
              False: st.sampled_from([(0, 5), (5, -1), (3,), (2, 2, 2), (2.0, 3), (True, 3), "ab", None])}
    parameters = {  # name: (valid, spoilt)
        "beta": (st.one_of(st.just(5.0), st.floats(0.01, 50), st.integers(1, 9)),
                 st.sampled_from([0, -1.0, float("nan"), float("inf"), True, "5"])),
        "kappa": (st.one_of(st.just(2.0), st.floats(1, 8)), st.sampled_from([0.5, float("inf"), None, np.bool_(True)])),
        "sigma": (st.one_of(st.just(10.0), st.floats(0.1, 100)), st.sampled_from([0.0, -1.0, "10", float("nan")])),
    }

    @settings(FUZZ, max_examples=300)
    @given(data=st.data())
    def run(data):
        bad = data.draw(st.sampled_from([None] * 4 + ["shape", "extreme", "positive", "negative", *parameters]))
        shape = data.draw(shapes[bad != "shape"], "shape")
        extreme = data.draw(point_sets(None, bad != "extreme", min_size=2), "extreme_points")
        positive = data.draw(point_sets(None, bad != "positive", max_size=3), "positive_clicks")
        negative = data.draw(point_sets(None, bad != "negative", max_size=3), "negative_clicks")
        kwargs = {name: data.draw(strategies[int(name == bad)], name) for name, strategies in parameters.items()}
        ok = (shape_ok(shape) and any_points_ok(extreme, None, 2) and any_points_ok(positive, None)
              and any_points_ok(negative, None) and parameter_ok(kwargs["beta"], 0, False)
              and parameter_ok(kwargs["kappa"], 1, True) and parameter_ok(kwargs["sigma"], 0, False))
        assert ok or bad, "test setup: an unspoilt example breaks the documented rules"
        try:
            out = soft_focus(shape, extreme, positive, negative, **kwargs)
        except ValueError as err:
            assert not ok, f"valid input refused: {err}"
            seen["error"] += 1
            return
        assert ok, "invalid input accepted"
        assert out.shape == tuple(int(d) for d in shape) and out.dtype == np.float32, f"{out.shape} {out.dtype}"
        assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 1.0, f"values in [{out.min()}, {out.max()}]"
        seen["ok"] += 1

    run()
    print(f"soft_focus: {seen}")
    assert seen["ok"] >= 50 and seen["error"] >= 50, f"examples run: {seen}"
