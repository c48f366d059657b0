"""Tests of fairs_sdk.sfg: the fast paths against the reference, the paper's properties, and
which path serves a call (NumPy until the Numba kernel is ready, serial on one thread, forks)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairs_sdk import sfg
from fairs_sdk.sfg import BETA, KAPPA, SIGMA, compile_kernel, kernel_threads, soft_focus, soft_focus_reference

TOLERANCE = 1e-5
FOUR_POINTS = [(60.0, 250.0), (450.0, 260.0), (255.0, 55.0), (250.0, 460.0)]


@pytest.fixture(scope="module", autouse=True)
def numba_kernels():
    """Both Numba kernels ready: soft_focus then runs on Numba here, not on its NumPy stand-in."""
    assert compile_kernel(parallel=True) and compile_kernel(parallel=False), "a Numba kernel is not ready"


def soft_focus_serial(*args, **kwargs) -> np.ndarray:
    """soft_focus on one Numba thread: the serial kernel (what a Segmenter on a CPU runs)."""
    with kernel_threads(1):
        return soft_focus(*args, **kwargs)


def soft_focus_numpy(shape, extreme_points, positive_clicks=(), negative_clicks=(), beta=BETA, kappa=KAPPA, sigma=SIGMA):
    """The NumPy path soft_focus serves until its Numba kernel is ready."""
    args = sfg._kernel_args(shape, extreme_points, positive_clicks, negative_clicks, beta, kappa, sigma)
    return sfg._soft_focus_numpy(*args)


#: Every fast path; soft_focus itself is the parallel Numba kernel here (two threads or more).
FAST_PATHS = [soft_focus, soft_focus_serial, soft_focus_numpy]


def gaussian(d2: float, sigma: float) -> float:
    """The FWHM Gaussian of SPEC 1 at squared distance d2."""
    return math.exp(-4.0 * math.log(2.0) * d2 / sigma**2)


@st.composite
def sfg_inputs(draw):
    """Canvases 16x16..600x800; 2-8 extreme points and 0-5 clicks of each kind, in and off canvas."""
    h = draw(st.integers(16, 600))
    w = draw(st.integers(16, 800))

    def points(low: int, high: int):
        n = draw(st.integers(low, high))
        xs = st.floats(-0.25 * w, 1.25 * w, allow_nan=False)
        ys = st.floats(-0.25 * h, 1.25 * h, allow_nan=False)
        return [(draw(xs), draw(ys)) for _ in range(n)]

    return (h, w), points(2, 8), points(0, 5), points(0, 5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sfg_inputs())
def test_fast_paths_match_reference(case):
    shape, extreme, positive, negative = case
    ref = soft_focus_reference(shape, extreme, positive, negative)
    for fn in FAST_PATHS:
        fast = fn(shape, extreme, positive, negative)
        assert fast.shape == ref.shape == shape and fast.dtype == np.float32, f"{fn.__name__}: {fast.shape} {fast.dtype}"
        err = float(np.abs(fast - ref).max())
        assert err <= TOLERANCE, f"{fn.__name__} differs from reference by {err:.3g} for {case}"


@settings(max_examples=100, deadline=None)
@given(sfg_inputs())
def test_values_are_in_unit_interval(case):
    shape, extreme, positive, negative = case
    for fn in FAST_PATHS + [soft_focus_reference]:
        psi = fn(shape, extreme, positive, negative)
        assert psi.min() >= 0.0 and psi.max() <= 1.0, (
            f"{fn.__name__} leaves [0, 1]: [{psi.min()}, {psi.max()}]"
        )


@pytest.mark.parametrize(
    "kappa, beta",
    [(1.0, 5.0), (3.0, 5.0), (2.0, 2.5), (2.0, 0.5), (1.5, 1.0)],
    ids=["manhattan", "kappa3", "beta2.5", "beta0.5", "kappa1.5-beta1"],
)
@pytest.mark.parametrize("fn", FAST_PATHS)
def test_fast_matches_reference_for_other_parameters(fn, kappa, beta):
    args = ((300, 400), [(50.5, 80.0), (350.0, 100.2), (200.0, 30.0), (190.0, 280.0)])
    clicks = dict(positive_clicks=[(120.0, 150.0)], negative_clicks=[(300.0, 200.0)])
    fast = fn(*args, **clicks, beta=beta, kappa=kappa, sigma=7.0)
    ref = soft_focus_reference(*args, **clicks, beta=beta, kappa=kappa, sigma=7.0)
    err = float(np.abs(fast - ref).max())
    assert err <= TOLERANCE, f"{fn.__name__} kappa={kappa} beta={beta}: differs by {err:.3g}"


@pytest.mark.parametrize("fn", FAST_PATHS)
def test_fast_matches_reference_when_normalisation_is_ill_conditioned(fn):
    # Points far off a small canvas: the potential barely varies, so N(r) divides by a
    # tiny range. The Numba kernels must fall back to float64 square roots here.
    args = ((16, 16), [(1000.0, 5.0), (1200.0, 9.0), (1100.0, -300.0)])
    err = float(np.abs(fn(*args) - soft_focus_reference(*args)).max())
    assert err <= TOLERANCE, f"ill-conditioned canvas: {fn.__name__} differs by {err:.3g}"


@pytest.mark.parametrize("fn", FAST_PATHS)
def test_fast_matches_reference_with_a_flat_potential(fn):
    # A 1 x 1 canvas: max r == min r, so N(r) = 1 wherever the box covers the pixel.
    for points in ([(0.0, 0.0), (0.0, 0.0)], [(-0.5, -0.5), (0.5, 0.5)], [(0.2, 0.0), (0.8, 0.0)]):
        fast, ref = fn((1, 1), points), soft_focus_reference((1, 1), points)
        assert np.array_equal(fast, ref), f"{fn.__name__} on a 1 x 1 canvas with {points}: {fast} != {ref}"


def test_zero_outside_box_beyond_gaussians():
    sigma = 10.0
    positive = [(100.0, 480.0)]  # a positive click outside the box also reaches out
    psi = soft_focus((512, 512), FOUR_POINTS, positive_clicks=positive, sigma=sigma)
    yy, xx = np.mgrid[0:512, 0:512]
    pts = np.array(FOUR_POINTS)
    outside_box = (
        (xx < pts[:, 0].min()) | (xx > pts[:, 0].max()) | (yy < pts[:, 1].min()) | (yy > pts[:, 1].max())
    )
    centres = np.array(FOUR_POINTS + positive)
    d_min = np.min(np.hypot(xx[..., None] - centres[:, 0], yy[..., None] - centres[:, 1]), axis=-1)
    far = outside_box & (d_min > 3 * sigma)
    assert far.sum() > 10_000, "test setup: too few pixels outside the box"
    assert float(psi[far].max()) < 1e-10, f"outside the box, far from clicks: max {psi[far].max()}"
    near = outside_box & (d_min < sigma / 2)
    assert float(psi[near].min()) > 0.5, "a Gaussian should reach outside the box near its point"


@pytest.mark.parametrize("fn", FAST_PATHS + [soft_focus_reference])
def test_exactly_one_at_each_extreme_point(fn):
    psi = fn((512, 512), FOUR_POINTS, positive_clicks=[(255.0, 255.0)], negative_clicks=[(70.0, 250.0)])
    for x, y in FOUR_POINTS:
        assert psi[int(y), int(x)] == 1.0, f"{fn.__name__}: psi at extreme point ({x}, {y}) is {psi[int(y), int(x)]}"


def test_negative_click_lowers_map_around_it():
    click = (300.0, 330.0)
    base = soft_focus((512, 512), FOUR_POINTS)
    lowered = soft_focus((512, 512), FOUR_POINTS, negative_clicks=[click])
    assert np.all(lowered <= base), "a negative click must never raise the map"
    x, y = int(click[0]), int(click[1])
    assert lowered[y, x] < 1e-6 < base[y, x], (
        f"at the negative click: {base[y, x]} -> {lowered[y, x]}, expected about 0"
    )
    patch = (slice(y - 3, y + 4), slice(x - 3, x + 4))
    assert np.all(lowered[patch] < base[patch]), "the map should drop all around the click"


def test_positive_click_raises_map_around_it():
    click = (400.0, 420.0)  # low-potential corner of the box
    base = soft_focus((512, 512), FOUR_POINTS)
    raised = soft_focus((512, 512), FOUR_POINTS, positive_clicks=[click])
    assert np.all(raised >= base), "a positive click must never lower the map"
    x, y = int(click[0]), int(click[1])
    assert raised[y, x] == 1.0 and base[y, x] < 0.5, f"at the positive click: {base[y, x]} -> {raised[y, x]}"
    patch = (slice(y - 3, y + 4), slice(x - 3, x + 4))
    assert np.all(raised[patch] > base[patch]), "the map should rise all around the click"


@pytest.mark.parametrize("fn", FAST_PATHS + [soft_focus_reference])
def test_two_ellipse_isocontours_are_ellipses_with_the_points_as_foci(fn):
    # With two extreme points psi = h(|x - p1| + |x - p2|) inside the box, for a strictly
    # decreasing h: every level set is the ellipse {d1 + d2 = const} with foci p1, p2.
    p1, p2 = (100.0, 150.0), (400.0, 350.0)
    sigma = 2.0
    psi = fn((512, 512), [p1, p2], sigma=sigma).astype(np.float64)
    yy, xx = np.mgrid[150:351, 100:401].astype(np.float64)
    d1, d2 = np.hypot(xx - p1[0], yy - p1[1]), np.hypot(xx - p2[0], yy - p2[1])
    keep = (np.minimum(d1, d2) > 4 * sigma).ravel()
    focal_sum = (d1 + d2).ravel()[keep]
    values = psi[150:351, 100:401].ravel()[keep]
    order = np.argsort(focal_sum, kind="stable")
    s, v = focal_sum[order], values[order]
    rises = np.diff(v) > 1e-6
    assert not np.any(rises), (
        f"psi rises while d1 + d2 grows at {int(rises.sum())} places: level sets are not the ellipses"
    )
    same_sum = np.abs(np.diff(s)) < 1e-9
    assert np.allclose(v[1:][same_sum], v[:-1][same_sum], atol=1e-6), "equal d1 + d2, different psi"
    assert v[0] - v[-1] > 0.5, "psi should fall substantially across the box"


# Hand-computed 5 x 5 case: extreme points at the corners of the 3 x 3 square around the
# centre, sigma = 2 so that g(d) = 2^(-d^2), and beta = 1.
SQUARE = [(1.0, 1.0), (3.0, 1.0), (1.0, 3.0), (3.0, 3.0)]
PI_CENTRE = 4 * math.sqrt(2)                         # minimum of the potential
PI_CORNER = 4 * math.sqrt(2) + 2 * math.sqrt(10)     # maximum, at every canvas corner
PI_EDGE_MID = 2 + 2 * math.sqrt(5)                   # at (2, 1), between two points


def normalised(pi: float) -> float:
    return (1 / pi - 1 / PI_CORNER) / (1 / PI_CENTRE - 1 / PI_CORNER)


@pytest.mark.parametrize("fn", FAST_PATHS + [soft_focus_reference])
@pytest.mark.parametrize(
    "positive, negative, pixel, expected",
    [
        ((), (), (2, 2), 1.0),                                # focus: N = 1
        ((), (), (1, 1), 1.0),                                # extreme point
        ((), (), (2, 1), normalised(PI_EDGE_MID)),            # N beats g = 2^-1
        ((), (), (0, 0), 0.25),                               # outside box: g at d^2 = 2
        ((), (), (0, 2), 0.25),                               # outside box: g at d^2 = 2
        ((), (), (4, 4), 0.25),
        ((), [(2.0, 2.0)], (2, 2), 0.25),                     # 1 - g = 0, then g_ep at d^2 = 2
        ((), [(2.0, 2.0)], (2, 1), max(min(normalised(PI_EDGE_MID), 0.5), 0.5)),
        ([(0.0, 0.0)], (), (0, 0), 1.0),                      # positive click
        ([(0.0, 0.0)], (), (1, 0), 0.5),                      # max(g_pos d^2=1, g_ep d^2=1)
    ],
)
def test_hand_computed_values_on_5x5(fn, positive, negative, pixel, expected):
    psi = fn((5, 5), SQUARE, positive, negative, beta=1.0, sigma=2.0)
    x, y = pixel
    assert psi[y, x] == pytest.approx(expected, abs=1e-6), (
        f"{fn.__name__} at (x={x}, y={y}) with pos={positive} neg={negative}: {psi[y, x]} != {expected}"
    )


@pytest.mark.parametrize("fn", [soft_focus, soft_focus_reference])
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(extreme_points=[(1.0, 2.0)]), "at least 2"),
        (dict(extreme_points=[]), "at least 2"),
        (dict(extreme_points=[(1.0, float("nan")), (3.0, 4.0)]), "extreme_points has NaN"),
        (dict(extreme_points=[(1.0, 2.0), (float("inf"), 4.0)]), "extreme_points has NaN or infinite"),
        (dict(positive_clicks=[(float("nan"), 1.0)]), "positive_clicks has NaN"),
        (dict(negative_clicks=[(1.0, float("-inf"))]), "negative_clicks has NaN or infinite"),
        (dict(extreme_points=[(1.0, 2.0, 3.0), (1.0, 2.0, 3.0)]), "shape (n, 2)"),
        (dict(shape=(0, 10)), "height must be positive"),
        (dict(shape=(10, -3)), "width must be positive"),
        (dict(shape=(10,)), "(height, width)"),
        (dict(shape=(10.5, 10)), "must be an integer"),
        (dict(beta=0.0), "beta must be finite and > 0"),
        (dict(beta=float("nan")), "beta"),
        (dict(kappa=0.5), "kappa must be finite and >= 1"),
        (dict(sigma=-1.0), "sigma must be finite and > 0"),
        (dict(sigma=float("inf")), "sigma"),
    ],
)
def test_bad_input_raises_value_error_naming_the_problem(fn, kwargs, message):
    args = dict(shape=(32, 32), extreme_points=[(3.0, 4.0), (20.0, 25.0)])
    args.update(kwargs)
    with pytest.raises(ValueError) as info:
        fn(**args)
    assert message in str(info.value), f"error message {str(info.value)!r} lacks {message!r}"


def test_accepts_numpy_integer_shape_and_integer_points():
    psi = soft_focus((np.int64(40), np.int32(50)), np.array([[5, 6], [30, 35]]))
    assert psi.shape == (40, 50) and psi.dtype == np.float32


def _child_soft_focus(queue):
    queue.put(soft_focus((128, 128), [(10.0, 20.0), (100.0, 90.0)]))


def test_works_in_a_process_forked_after_a_parallel_call():
    # GNU OpenMP aborts a forked child that starts threads once the parent has
    # (DataLoader workers, gunicorn, multiprocessing pools): children must run serially.
    import multiprocessing

    # Both kernels are ready (fixture): the parent runs the parallel one, the child the serial one.
    expected = soft_focus((128, 128), [(10.0, 20.0), (100.0, 90.0)])  # parent starts its threads
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_soft_focus, args=(queue,))
    child.start()
    try:
        result = queue.get(timeout=60)  # before join: the child exits once its data is read
    except Exception:
        result = None
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
            child.join()
    assert child.exitcode == 0, f"forked child died or hung (exit code {child.exitcode})"
    assert result is not None and np.array_equal(result, expected), "forked child computed a different map"


def test_concurrent_calls_from_threads_match_serial_calls():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    cases = [rng.uniform(0, 300, size=(4, 2)) for _ in range(16)]
    serial = [soft_focus((300, 300), c) for c in cases]
    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(lambda c: soft_focus((300, 300), c), cases))
    assert all(np.array_equal(a, b) for a, b in zip(serial, threaded)), "threads changed the result"


# ---------------------------------------------------------------------------- which path
def run_python(code: str, numba_cache_dir=None) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last, returned as a dict."""
    env = dict(os.environ)
    if numba_cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(numba_cache_dir)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, f"child interpreter failed (exit {out.returncode}):\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_first_call_waits_for_the_kernel_by_default():
    # Every call runs the kernel: results are the same bit for bit from the first call on.
    result = run_python("""
        import json
        from fairs_sdk import sfg

        numpy_calls = []
        numpy_path = sfg._soft_focus_numpy
        sfg._soft_focus_numpy = lambda *args: numpy_calls.append(1) or numpy_path(*args)
        sfg.soft_focus((64, 64), [(5.0, 6.0), (50.0, 40.0)])
        print(json.dumps({"numpy_calls": len(numpy_calls), "ready": sorted(sfg._ready)}))
    """)
    assert result["numpy_calls"] == 0 and result["ready"], f"the first call did not wait for the kernel: {result}"


def test_inside_background_compile_the_first_call_is_answered_by_numpy():
    result = run_python("""
        import json
        import numpy as np
        from fairs_sdk import sfg

        numpy_calls = []
        numpy_path = sfg._soft_focus_numpy
        sfg._soft_focus_numpy = lambda *args: numpy_calls.append(1) or numpy_path(*args)
        points = [(60.0, 250.0), (450.0, 260.0), (255.0, 55.0), (250.0, 460.0)]
        with sfg.background_compile():
            first = sfg.soft_focus((512, 512), points, [(200.0, 200.0)], [(100.0, 100.0)])
            after_first = {"numpy_calls": len(numpy_calls), "started": sorted(sfg._started)}
            ready = sfg.compile_kernel(wait=True)
            second = sfg.soft_focus((512, 512), points, [(200.0, 200.0)], [(100.0, 100.0)])
        print(json.dumps({**after_first, "ready": ready, "numpy_calls_total": len(numpy_calls),
                          "difference": float(np.abs(first - second).max())}))
    """)
    assert result["numpy_calls"] == 1 and result["started"], f"the first call did not run on NumPy: {result}"
    assert result["ready"] and result["numpy_calls_total"] == 1, f"the kernel did not take over once ready: {result}"
    assert result["difference"] <= TOLERANCE, f"NumPy and Numba answers differ: {result}"


def test_calls_wait_again_once_background_compile_closes():
    result = run_python("""
        import json
        from fairs_sdk import sfg

        numpy_calls = []
        numpy_path = sfg._soft_focus_numpy
        sfg._soft_focus_numpy = lambda *args: numpy_calls.append(1) or numpy_path(*args)
        with sfg.background_compile():
            sfg.soft_focus((64, 64), [(5.0, 6.0), (50.0, 40.0)])
        sfg.soft_focus((64, 64), [(5.0, 6.0), (50.0, 40.0)])
        print(json.dumps({"numpy_calls": len(numpy_calls), "ready": sorted(sfg._ready)}))
    """)
    assert result["numpy_calls"] == 1 and result["ready"], f"the call after the block did not wait: {result}"


def test_calls_on_one_thread_never_compile_the_parallel_kernel():
    # A Segmenter on a CPU runs the SFG on one thread: compiling the parallel kernel
    # there would only cost time.
    result = run_python("""
        import json
        from fairs_sdk import sfg

        with sfg.kernel_threads(1):
            sfg.soft_focus((64, 64), [(5.0, 6.0), (50.0, 40.0)])
            sfg.compile_kernel(wait=True)
            sfg.soft_focus((64, 64), [(5.0, 6.0), (50.0, 40.0)])
        print(json.dumps({"started": sorted(sfg._started), "ready": sorted(sfg._ready)}))
    """)
    assert result == {"started": ["serial"], "ready": ["serial"]}, f"kernels compiled: {result}"


def test_process_forked_while_the_kernel_compiles_answers_from_numpy(tmp_path):
    # The compile thread does not exist in the child and may hold Numba's compiler lock:
    # the child must neither hang nor crash, and answer correctly. An empty Numba cache
    # makes the compile last seconds, so the fork lands in the middle of it.
    result = run_python("""
        import json, multiprocessing
        import numpy as np
        from fairs_sdk import sfg

        points = [(10.0, 20.0), (100.0, 90.0), (60.0, 5.0)]

        def child(queue):
            queue.put((sfg._numba_off, sfg.soft_focus((128, 128), points, [(50.0, 50.0)], [(30.0, 60.0)])))

        sfg.compile_kernel(wait=False, parallel=False)
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        process = context.Process(target=child, args=(queue,))
        process.start()
        numba_off, psi = queue.get(timeout=120)
        process.join(timeout=30)
        ref = sfg.soft_focus_reference((128, 128), points, [(50.0, 50.0)], [(30.0, 60.0)])
        print(json.dumps({"exitcode": process.exitcode, "numba_off": bool(numba_off),
                          "error": float(np.abs(psi - ref).max())}))
    """, numba_cache_dir=tmp_path)
    assert result["exitcode"] == 0, f"forked child failed: {result}"
    assert result["numba_off"], f"test setup: the compile had ended before the fork: {result}"
    assert result["error"] <= TOLERANCE, f"forked child's map differs from the reference: {result}"
