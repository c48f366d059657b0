"""Soft Focus Generator (SFG): the FAIRS encoding of extreme points and clicks.

Implements SPEC section 1 (paper section 3.1). Coordinates are (x, y) floats in
canvas pixels: the pixel at row ``i`` and column ``j`` sits at ``(x, y) = (j, i)``.
The output is an ``(H, W)`` float32 map in ``[0, 1]``.

Two implementations share one signature and one input check:

- :func:`soft_focus_reference` follows the paper's equations step by step in
  plain NumPy, over the whole canvas.
- :func:`soft_focus` is the fast one: a Numba kernel (parallel over rows, or its
  serial twin on one thread; cached to disk). It finds the potential's minimum
  with a few evaluations per row (the potential is convex), then makes one pass
  over the output: potential, normalisation and decay inside the box, and only
  the parts of the click Gaussians above ``_GAUSSIAN_CUTOFF`` (Gaussians are
  separable, exp(a+b) = exp(a) exp(b)). It equals the reference within 2e-6
  (``_SINGLE_BOUND``, see the kernel) plus ``_GAUSSIAN_CUTOFF``; the tests hold it
  to 1e-5. Its first call in a process waits for the kernel to load or compile;
  inside :func:`background_compile` calls are answered until then by a
  vectorised NumPy version of the same steps (``_soft_focus_numpy``, also within
  1e-5), so that a one-shot program does not wait seconds for the compiler.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Union

import numba
import numpy as np

__all__ = [
    "BETA",
    "KAPPA",
    "SIGMA",
    "soft_focus",
    "soft_focus_reference",
    "compile_kernel",
    "background_compile",
    "kernel_threads",
    "gaussian_fwhm",
    "n_ellipse_potential",
    "as_points",
    "MAX_POINTS",
]

# Paper / SPEC defaults. The runtime reads the values a model was trained with
# from that model's metadata; these are only the defaults of the signature.
BETA: float = 5.0
KAPPA: float = 2.0
SIGMA: float = 10.0

#: Floor of the potential before inversion (SPEC 1.2: r = 1 / max(pi, 1e-6)).
_PI_FLOOR = 1e-6
#: -4 ln 2: with sigma the full width at half maximum, g = exp(_FWHM_K * d^2 / sigma^2).
_FWHM_K = -4.0 * math.log(2.0)
#: The fast path skips Gaussian tails below this value (beyond about 2.7 sigma), so
#: it differs from the reference by at most this much there.
_GAUSSIAN_CUTOFF = 1e-9
#: Largest error the fast path may add by taking float32 square roots (see the kernel).
_SINGLE_BOUND = 2e-6

#: Most points accepted in one argument (extreme points, positive clicks or negative
#: clicks). The SFG's cost grows with the count (1,000 points: about 35 ms on a 320 x 320
#: canvas on one core; 1,000,000 took 130 s and 5.3 GB); annotations use a handful.
MAX_POINTS = 1000

Points = Union[Sequence[Sequence[float]], np.ndarray]


# --------------------------------------------------------------------------- #
# Input checks (shared)
# --------------------------------------------------------------------------- #
def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"shape must be a (height, width) pair, got {shape!r}") from None
    if len(dims) != 2:
        raise ValueError(f"shape must be a (height, width) pair, got {shape!r}")
    out = []
    for name, d in zip(("height", "width"), dims):
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise ValueError(f"shape {name} must be an integer, got {d!r}")
        if d <= 0:
            raise ValueError(f"shape {name} must be positive, got {d}")
        out.append(int(d))
    return out[0], out[1]


def as_points(
    points: Points | None,
    name: str,
    min_count: int = 0,
    error: type[ValueError] = ValueError,
    max_count: int = MAX_POINTS,
) -> np.ndarray:
    """``points`` as a C-contiguous (n, 2) float64 array of finite (x, y); ``None`` means none.

    Coordinates must be real numbers (Python or NumPy ints and floats): strings,
    bools, complex numbers and other objects are refused, never converted. Raises
    ``error`` (a ValueError subclass) naming ``name`` for a malformed array, fewer
    than ``min_count`` or more than ``max_count`` points, or NaN / infinite coordinates.
    """
    if points is None:
        points = ()
    if isinstance(points, (str, bytes)):
        raise error(f"{name} must be a sequence of (x, y) pairs, got {points!r}")
    try:
        count = len(points)
    except TypeError:  # a scalar or 0-d array: refused below
        count = 0
    if count > max_count:  # before converting what may be a huge nested list
        raise error(f"{name} has {count} points; at most {max_count} are accepted (MAX_POINTS)")
    try:
        arr = np.asarray(points)  # no dtype: "1.5" stays a string, to be refused below
    except (TypeError, ValueError):
        raise error(f"{name} must be a sequence of (x, y) pairs, got {points!r}") from None
    if arr.size == 0:
        arr = np.empty((0, 2), dtype=np.float64)
    if arr.dtype.kind not in "iuf":
        raise error(f"{name} must hold real numbers (x, y), got {arr.dtype} values: {points!r:.200}")
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise error(f"{name} must have shape (n, 2) as (x, y) pairs, got an array of shape {arr.shape}")
    if arr.shape[0] > max_count:
        raise error(f"{name} has {arr.shape[0]} points; at most {max_count} are accepted (MAX_POINTS)")
    if isinstance(points, (list, tuple)):  # NumPy turns True into 1 among numbers: look for bools
        for i, pair in enumerate(points):
            if any(isinstance(v, (bool, np.bool_)) for v in pair):
                raise error(f"{name}[{i}] = {tuple(pair)!r} has a bool coordinate; coordinates must be numbers")
    if arr.shape[0] < min_count:
        raise error(f"{name} needs at least {min_count} points, got {arr.shape[0]}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise error(
            f"{name} has NaN or infinite coordinates at index {int(np.argmax(bad))}: {arr[bad].tolist()}"
        )
    return arr


def _real(value, name: str) -> float:
    """``value`` as a float if it is a real number (int or float, not bool or str); else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def _check_parameters(beta: float, kappa: float, sigma: float) -> tuple[float, float, float]:
    values = []
    for name, value, low, inclusive in (
        ("beta", beta, 0.0, False),
        ("kappa", kappa, 1.0, True),
        ("sigma", sigma, 0.0, False),
    ):
        v = _real(value, name)
        ok = math.isfinite(v) and (v >= low if inclusive else v > low)
        if not ok:
            bound = f">= {low:g}" if inclusive else f"> {low:g}"
            raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
        values.append(v)
    return values[0], values[1], values[2]


def _check_inputs(shape, extreme_points, positive_clicks, negative_clicks, beta, kappa, sigma):
    height, width = _check_shape(shape)
    extreme = as_points(extreme_points, "extreme_points", 2)
    positive = as_points(positive_clicks, "positive_clicks")
    negative = as_points(negative_clicks, "negative_clicks")
    beta, kappa, sigma = _check_parameters(beta, kappa, sigma)
    return height, width, extreme, positive, negative, beta, kappa, sigma


# --------------------------------------------------------------------------- #
# Reference implementation: the paper's equations, readable
# --------------------------------------------------------------------------- #
def n_ellipse_potential(xx: np.ndarray, yy: np.ndarray, points: np.ndarray, kappa: float) -> np.ndarray:
    """pi(x) = sum over points p of ||x - p||_kappa on coordinate grids ``xx``/``yy`` (float64)."""
    potential = np.zeros(np.broadcast(xx, yy).shape, dtype=np.float64)
    for px, py in points:
        potential += (np.abs(xx - px) ** kappa + np.abs(yy - py) ** kappa) ** (1.0 / kappa)
    return potential


def gaussian_fwhm(xx: np.ndarray, yy: np.ndarray, points: np.ndarray, sigma: float) -> np.ndarray:
    """G(x) = max over points c of exp(-4 ln2 ||x - c||^2 / sigma^2); 0 for no points.

    ``xx``/``yy`` are coordinate grids of one shape; ``points`` is (n, 2) as (x, y).
    """
    g = np.zeros(np.broadcast(xx, yy).shape, dtype=np.float64)
    for cx, cy in points:
        g = np.maximum(g, np.exp(_FWHM_K * ((xx - cx) ** 2 + (yy - cy) ** 2) / sigma**2))
    return g


def soft_focus_reference(
    shape: tuple[int, int],
    extreme_points: Points,
    positive_clicks: Points = (),
    negative_clicks: Points = (),
    beta: float = BETA,
    kappa: float = KAPPA,
    sigma: float = SIGMA,
) -> np.ndarray:
    """The soft focus map psi, computed literally as SPEC section 1 writes it.

    Args:
        shape: canvas (H, W).
        extreme_points: (n, 2) extreme points as (x, y), n >= 2, in canvas pixels.
        positive_clicks: (m, 2) "this is object" clicks (the paper's FPC role, eq. 3).
        negative_clicks: (k, 2) "this is background" clicks (eq. 2).
        beta: decay exponent of the normalised inverse potential (> 0).
        kappa: order of the Minkowski norm of the n-ellipse (>= 1).
        sigma: full width at half maximum of the click Gaussians, pixels (> 0).

    Returns:
        (H, W) float32 in [0, 1].
    """
    h, w, ep, pos, neg, beta, kappa, sigma = _check_inputs(
        shape, extreme_points, positive_clicks, negative_clicks, beta, kappa, sigma
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    # 1. n-ellipse potential: pi(x) = sum_i ||x - p_i||_kappa
    potential = n_ellipse_potential(xx, yy, ep, kappa)

    # 2. inverse potential
    r = 1.0 / np.maximum(potential, _PI_FLOOR)

    # 3. min-max normalisation over the whole canvas
    r_min, r_max = r.min(), r.max()
    normalised = np.ones_like(r) if r_max == r_min else (r - r_min) / (r_max - r_min)

    # 4. decay and bounding-box mask, borders included
    (x_min, y_min), (x_max, y_max) = ep.min(axis=0), ep.max(axis=0)
    box = (xx >= x_min) & (xx <= x_max) & (yy >= y_min) & (yy <= y_max)
    pi_hat = normalised**beta * box

    # 5. negative clicks (eq. 2), 6. positive clicks (eq. 3), 7. extreme points
    pi_t = np.minimum(pi_hat, 1.0 - gaussian_fwhm(xx, yy, neg, sigma))
    pi_t = np.maximum(pi_t, gaussian_fwhm(xx, yy, pos, sigma))
    psi = np.maximum(pi_t, gaussian_fwhm(xx, yy, ep, sigma))
    return psi.astype(np.float32)


# --------------------------------------------------------------------------- #
# Fast implementation
# --------------------------------------------------------------------------- #
def _potential_window(
    h: int, w: int, x_min: float, y_min: float, x_max: float, y_max: float
) -> tuple[int, int, int, int]:
    """Rows [r0, r1] and columns [c0, c1] (inclusive) that hold the potential's grid minimum.

    For every norm order kappa >= 1 each term ||x - p||_kappa strictly increases
    with |x - p_x| at fixed |y - p_y| (and vice versa). A pixel left of
    floor(min p_x) therefore has a strictly smaller potential one column to its
    right, and likewise on every side: the minimum over the canvas grid, and the
    minimum of every row, lie in the extreme points' box rounded outwards and
    clipped to the canvas.
    """
    c0 = min(max(math.floor(x_min), 0), w - 1)
    c1 = min(max(math.ceil(x_max), 0), w - 1)
    r0 = min(max(math.floor(y_min), 0), h - 1)
    r1 = min(max(math.ceil(y_max), 0), h - 1)
    return r0, r1, c0, c1


def _kernel_args(
    shape: tuple[int, int],
    extreme_points: Points,
    positive_clicks: Points,
    negative_clicks: Points,
    beta: float,
    kappa: float,
    sigma: float,
) -> tuple:
    """Checked input as the fast paths take it: (h, w, ep, pos, neg, beta, kappa, sigma, window, box).

    ``box`` is (x_lo, x_hi, y_lo, y_hi), the integer pixels with min <= t <= max of the
    extreme points (the mask B), clipped to the canvas (empty when lo > hi); ``window``
    is :func:`_potential_window`. The point arrays are writable C-contiguous float64
    and the integers Python ints: exactly the types the kernels are compiled for.
    """
    h, w, ep, pos, neg, beta, kappa, sigma = _check_inputs(
        shape, extreme_points, positive_clicks, negative_clicks, beta, kappa, sigma
    )
    ep, pos, neg = (a if a.flags.writeable else a.copy() for a in (ep, pos, neg))
    (x_min, y_min), (x_max, y_max) = ep.min(axis=0), ep.max(axis=0)
    box = (
        max(math.ceil(x_min), 0),
        min(math.floor(x_max), w - 1),
        max(math.ceil(y_min), 0),
        min(math.floor(y_max), h - 1),
    )
    window = _potential_window(h, w, x_min, y_min, x_max, y_max)
    return h, w, ep, pos, neg, beta, kappa, sigma, window, box


# --------------------------------------------------------------------------- #
# Vectorised NumPy path: what soft_focus serves until the Numba kernel is ready
# --------------------------------------------------------------------------- #
def _gaussian_span(centre: float, size: int, scale: float, radius: float) -> tuple[int, np.ndarray]:
    """exp(scale (t - centre)^2) for the integers t in [0, size) within ``radius`` of ``centre``.

    Returns the first such t and the (n,) float64 values; n = 0 when none is on the canvas.
    """
    lo = max(math.ceil(centre - radius), 0)
    hi = min(math.floor(centre + radius), size - 1)
    if hi < lo:
        return 0, np.empty(0, dtype=np.float64)
    t = np.arange(lo, hi + 1, dtype=np.float64)
    return lo, np.exp(scale * (t - centre) ** 2)


def _soft_focus_numpy(h, w, ep, pos, neg, beta, kappa, sigma, window, box) -> np.ndarray:
    """psi as the Numba kernels compute it (same arguments, see :func:`_kernel_args`), in NumPy.

    Vectorised over the potential's window only (the extreme points' box rounded
    outwards): it holds the potential's minimum, a canvas corner holds its maximum
    (it is convex), and outside the box pi_hat is 0. Click Gaussians are separable
    outer products, evaluated where they exceed ``_GAUSSIAN_CUTOFF``. Returns (h, w)
    float32, equal to the reference within ``_GAUSSIAN_CUTOFF`` plus rounding.
    """
    r0, r1, c0, c1 = window
    x_lo, x_hi, y_lo, y_hi = box
    out = np.zeros((h, w), dtype=np.float32)
    # Steps 1-3: normalisation bounds over the whole canvas, from the window and the corners.
    xs = np.arange(c0, c1 + 1, dtype=np.float64)[None, :]
    ys = np.arange(r0, r1 + 1, dtype=np.float64)[:, None]
    potential = n_ellipse_potential(xs, ys, ep, kappa)  # (rows, cols) of the window
    corners = n_ellipse_potential(np.array([[0.0, w - 1.0]]), np.array([[0.0], [h - 1.0]]), ep, kappa)
    r_max = 1.0 / max(float(potential.min()), _PI_FLOOR)
    r_min = 1.0 / max(float(corners.max()), _PI_FLOOR)
    scale = _FWHM_K / (sigma * sigma)
    radius = math.sqrt(math.log(_GAUSSIAN_CUTOFF) / scale)
    if x_lo <= x_hi and y_lo <= y_hi:
        # Step 4 inside the box (the box lies inside the window), then eq. 2 there:
        # outside the box pi_hat = 0 and min(0, 1 - g) stays 0.
        if r_max == r_min:
            pi_hat = np.ones((y_hi - y_lo + 1, x_hi - x_lo + 1))
        else:
            inner = potential[y_lo - r0 : y_hi - r0 + 1, x_lo - c0 : x_hi - c0 + 1]
            pi_hat = np.clip((1.0 / np.maximum(inner, _PI_FLOOR) - r_min) / (r_max - r_min), 0.0, 1.0)
        pi_hat **= beta
        for cx, cy in neg:
            i0, gy = _gaussian_span(cy, h, scale, radius)
            j0, gx = _gaussian_span(cx, w, scale, radius)
            i_lo, i_hi = max(i0, y_lo), min(i0 + gy.size - 1, y_hi)
            j_lo, j_hi = max(j0, x_lo), min(j0 + gx.size - 1, x_hi)
            if i_lo <= i_hi and j_lo <= j_hi:
                region = pi_hat[i_lo - y_lo : i_hi - y_lo + 1, j_lo - x_lo : j_hi - x_lo + 1]
                g = np.outer(gy[i_lo - i0 : i_hi - i0 + 1], gx[j_lo - j0 : j_hi - j0 + 1])
                np.minimum(region, 1.0 - g, out=region)
        out[y_lo : y_hi + 1, x_lo : x_hi + 1] = pi_hat
    # Eq. 3 and step 7: max with the positive-click and extreme-point Gaussians.
    # float64 -> float32 rounding is monotone, so it commutes with the maxima.
    for cx, cy in np.concatenate([pos, ep]):
        i0, gy = _gaussian_span(cy, h, scale, radius)
        j0, gx = _gaussian_span(cx, w, scale, radius)
        if gy.size and gx.size:
            region = out[i0 : i0 + gy.size, j0 : j0 + gx.size]
            np.maximum(region, np.outer(gy, gx), out=region, casting="same_kind")
    return out


_FAST = {"nnan", "ninf", "nsz"}  # inputs are checked finite; keeps IEEE rounding
_JIT = dict(cache=True, fastmath=_FAST, error_model="numpy")


@numba.njit(**_JIT)
def _potential(x, y, ep, kappa):
    """pi(x, y) = sum_i ||(x, y) - p_i||_kappa at one point."""
    total = 0.0
    for k in range(ep.shape[0]):
        dx, dy = abs(x - ep[k, 0]), abs(y - ep[k, 1])
        if kappa == 2.0:
            total += math.sqrt(dx * dx + dy * dy)
        elif kappa == 1.0:
            total += dx + dy
        else:
            total += (dx**kappa + dy**kappa) ** (1.0 / kappa)
    return total


@numba.njit(**_JIT)
def _potential_row(acc, y, xs, ep, kappa, single):
    """acc[b] = pi(xs[b], y), summed in the same order as :func:`_potential`.

    With ``single`` (kappa = 2 only) each distance is taken as a float32 square
    root, relative error <= 1e-7 and about twice the throughput of float64's.

    One vectorisable loop per extreme point; ``xs`` holds the columns as float64
    (int64 -> float64 conversion has no AVX2 vector instruction).
    """
    acc[:] = 0.0
    n = acc.shape[0]
    for k in range(ep.shape[0]):
        px = ep[k, 0]
        dy = abs(y - ep[k, 1])
        if kappa == 2.0 and single:
            dy2 = dy * dy
            for b in range(n):
                dx = xs[b] - px
                acc[b] += np.float64(math.sqrt(np.float32(dx * dx + dy2)))
        elif kappa == 2.0:
            dy2 = dy * dy
            for b in range(n):
                dx = xs[b] - px
                acc[b] += math.sqrt(dx * dx + dy2)
        elif kappa == 1.0:
            for b in range(n):
                acc[b] += abs(xs[b] - px) + dy
        else:
            dyk = dy**kappa
            inv = 1.0 / kappa
            for b in range(n):
                acc[b] += (abs(xs[b] - px) ** kappa + dyk) ** inv


@numba.njit(**_JIT)
def _potential_minimum(ep, kappa, r0, r1, c0, c1):
    """Minimum of the potential over the grid rows r0..r1, columns c0..c1.

    Restricted to one row the potential is a convex sequence, so walking downhill
    from any column ends at the row's minimum. Each row starts from the previous
    row's minimiser, which is at most a few columns away: a few evaluations per
    row instead of one per pixel.
    """
    best = np.inf
    j = (c0 + c1) // 2
    for i in range(r0, r1 + 1):
        y = float(i)
        fj = _potential(float(j), y, ep, kappa)
        while j < c1:
            right = _potential(j + 1.0, y, ep, kappa)
            if right >= fj:
                break
            j, fj = j + 1, right
        while j > c0:
            left = _potential(j - 1.0, y, ep, kappa)
            if left >= fj:
                break
            j, fj = j - 1, left
        best = min(best, fj)
    return best


@numba.njit(cache=True)
def _gaussian_factors(points, h, w, sigma):
    """Separable Gaussians, g_c(j, i) = gx[c, j] * gy[c, i], and where each exceeds the cutoff.

    Returns gx (n, w), gy (n, h) and spans (n, 4) int64 rows [i0, i1] and
    columns [j0, j1] (inclusive, clipped; i0 > i1 or j0 > j1 when off canvas)
    outside which g_c < _GAUSSIAN_CUTOFF. gx and gy are only filled in the spans.
    """
    n = points.shape[0]
    scale = _FWHM_K / (sigma * sigma)
    radius = math.sqrt(math.log(_GAUSSIAN_CUTOFF) / scale)
    gx = np.zeros((n, w), dtype=np.float64)
    gy = np.zeros((n, h), dtype=np.float64)
    spans = np.empty((n, 4), dtype=np.int64)
    for k in range(n):
        cx, cy = points[k, 0], points[k, 1]
        spans[k, 0] = max(math.ceil(cy - radius), 0)
        spans[k, 1] = min(math.floor(cy + radius), h - 1)
        spans[k, 2] = max(math.ceil(cx - radius), 0)
        spans[k, 3] = min(math.floor(cx + radius), w - 1)
        for t in range(spans[k, 0], spans[k, 1] + 1):
            gy[k, t] = math.exp(scale * (t - cy) ** 2)
        for t in range(spans[k, 2], spans[k, 3] + 1):
            gx[k, t] = math.exp(scale * (t - cx) ** 2)
    return gx, gy, spans


_MAX_INT_BETA = 127  # integer beta up to this uses square-and-multiply over 7 bits


@numba.njit(**_JIT)
def _power(base, beta):
    """base ** beta in place; by squaring for an integer beta (pow() is far slower).

    The bit loop has a constant trip count, so it unrolls and the loop over
    elements vectorises (the bit tests are the same for every element).
    """
    if beta == math.floor(beta) and beta <= _MAX_INT_BETA:
        e = int(beta)
        for j in range(base.shape[0]):
            b, p = base[j], 1.0
            for bit in range(7):
                if (e >> bit) & 1:
                    p *= b
                b *= b
            base[j] = p
    else:
        for j in range(base.shape[0]):
            base[j] = base[j] ** beta


@numba.njit(**_JIT)
def _soft_focus_setup(h, w, ep, pos, neg, beta, kappa, sigma, window):
    """Everything the rows share: normalisation bounds, precision choice, Gaussian factors."""
    r0, r1, c0, c1 = window

    # Normalisation bounds over the whole canvas. r = 1/max(pi, floor) decreases
    # with pi, so max r comes from the potential's minimum (inside the window) and
    # min r from its maximum, which a convex function takes at a canvas corner.
    pi_min = _potential_minimum(ep, kappa, r0, r1, c0, c1)
    pi_max = max(
        max(_potential(0.0, 0.0, ep, kappa), _potential(w - 1.0, 0.0, ep, kappa)),
        max(_potential(0.0, h - 1.0, ep, kappa), _potential(w - 1.0, h - 1.0, ep, kappa)),
    )
    r_max = 1.0 / max(pi_min, _PI_FLOOR)
    r_min = 1.0 / max(pi_max, _PI_FLOOR)
    flat = r_max == r_min
    inv_range = 0.0 if flat else 1.0 / (r_max - r_min)
    # float32 square roots move pi by a relative 1e-7 at most, which moves
    # N(r) by 1e-7 * r_max / (r_max - r_min) and N^beta by beta times that
    # (beta >= 1). Take them only where that bound stays under _SINGLE_BOUND.
    single = (
        kappa == 2.0
        and beta >= 1.0
        and not flat
        and beta * 1e-7 * r_max * inv_range <= _SINGLE_BOUND
    )

    gx_ep, gy_ep, span_ep = _gaussian_factors(ep, h, w, sigma)
    gx_pos, gy_pos, span_pos = _gaussian_factors(pos, h, w, sigma)
    gx_neg, gy_neg, span_neg = _gaussian_factors(neg, h, w, sigma)
    return (r_min, inv_range, flat, single,
            gx_ep, gy_ep, span_ep, gx_pos, gy_pos, span_pos, gx_neg, gy_neg, span_neg)


@numba.njit(inline="always", **_JIT)
def _soft_focus_row(row, i, xs, ep, pos, neg, beta, kappa, box, shared):
    """Row ``i`` of psi, written into ``row`` ((W,) float32, zeros on entry)."""
    x_lo, x_hi, y_lo, y_hi = box
    (r_min, inv_range, flat, single,
     gx_ep, gy_ep, span_ep, gx_pos, gy_pos, span_pos, gx_neg, gy_neg, span_neg) = shared
    # Steps 1-4 in one pass: pi_hat = N(1/pi)^beta inside the box (columns
    # x_lo..x_hi of rows y_lo..y_hi), 0 elsewhere.
    if y_lo <= i <= y_hi and x_lo <= x_hi:
        n = x_hi - x_lo + 1
        base = np.empty(n, dtype=np.float64)
        if flat:
            base[:] = 1.0
        else:
            _potential_row(base, float(i), xs, ep, kappa, single)
            for j in range(n):
                base[j] = min(max((1.0 / max(base[j], _PI_FLOOR) - r_min) * inv_range, 0.0), 1.0)
        _power(base, beta)
        for j in range(n):
            row[x_lo + j] = base[j]
        # Eq. 2: min(pi_hat, 1 - max_c g_c) = min over c of min(pi_hat, 1 - g_c).
        # Outside the box pi_hat = 0 and stays 0.
        for k in range(neg.shape[0]):
            if span_neg[k, 0] <= i <= span_neg[k, 1]:
                g_row = gy_neg[k, i]
                for j in range(max(span_neg[k, 2], x_lo), min(span_neg[k, 3], x_hi) + 1):
                    row[j] = min(row[j], 1.0 - gx_neg[k, j] * g_row)
    # Eq. 3 and step 4: max with the positive-click and extreme-point Gaussians.
    for k in range(pos.shape[0]):
        if span_pos[k, 0] <= i <= span_pos[k, 1]:
            g_row = gy_pos[k, i]
            for j in range(span_pos[k, 2], span_pos[k, 3] + 1):
                row[j] = max(row[j], gx_pos[k, j] * g_row)
    for k in range(ep.shape[0]):
        if span_ep[k, 0] <= i <= span_ep[k, 1]:
            g_row = gy_ep[k, i]
            for j in range(span_ep[k, 2], span_ep[k, 3] + 1):
                row[j] = max(row[j], gx_ep[k, j] * g_row)


@numba.njit(**_JIT)
def _box_columns(box):
    """Columns of the box as float64: the x of every pixel the potential is needed at."""
    return np.arange(max(box[0], 0), max(box[1] + 1, 0)).astype(np.float64)


# Two compiled twins, identical but for prange: rows in parallel, for calls on more
# than one Numba thread, and serial, for calls on one thread (a Segmenter on a CPU)
# and for processes forked from one that already ran OpenMP threads (GNU OpenMP
# aborts there). Values go straight to float32: rounding is monotone, so it
# commutes with the min/max compositions and the result equals round(psi).
@numba.njit(parallel=True, **_JIT)
def _kernel_parallel(h, w, ep, pos, neg, beta, kappa, sigma, window, box):
    shared = _soft_focus_setup(h, w, ep, pos, neg, beta, kappa, sigma, window)
    xs = _box_columns(box)
    out = np.zeros((h, w), dtype=np.float32)
    for i in numba.prange(h):
        _soft_focus_row(out[i], i, xs, ep, pos, neg, beta, kappa, box, shared)
    return out


@numba.njit(**_JIT)
def _kernel_serial(h, w, ep, pos, neg, beta, kappa, sigma, window, box):
    shared = _soft_focus_setup(h, w, ep, pos, neg, beta, kappa, sigma, window)
    xs = _box_columns(box)
    out = np.zeros((h, w), dtype=np.float32)
    for i in range(h):
        _soft_focus_row(out[i], i, xs, ep, pos, neg, beta, kappa, box, shared)
    return out


# --------------------------------------------------------------------------- #
# Which path serves a call: the Numba kernel, or NumPy while it compiles
# --------------------------------------------------------------------------- #
# Compiling a kernel takes seconds (about 2 s serial, 4 s parallel on a quiet 2-core
# machine); loading it from Numba's disk cache about 0.1 s. The first call that wants
# a kernel starts a daemon thread that loads or compiles it, and waits for it: every
# call runs the kernel, so results are the same bit for bit from the first call on
# (training resumes exactly). Inside background_compile(), calls do not wait but
# are answered by _soft_focus_numpy until the kernel is ready (within 1e-5 of it).
_KERNELS = {"serial": _kernel_serial, "parallel": _kernel_parallel}
_state_lock = threading.Lock()
_ready: set[str] = set()  # kernels compiled or loaded in this process
_started: dict[str, threading.Event] = {}  # kernel -> set when its compile thread ends
_failed: dict[str, Exception] = {}
_forked = False
_numba_off = False  # forked while a compile ran: Numba's compiler lock may stay held
_background = 0  # open background_compile() blocks: answer from NumPy instead of waiting
_workqueue_lock = threading.Lock()


def _before_fork() -> None:
    _state_lock.acquire()


def _after_fork_in_parent() -> None:
    _state_lock.release()


def _after_fork_in_child() -> None:
    """Forked children run serially, and not at all on Numba if a compile was running.

    The compile thread does not exist in the child; it may have held Numba's compiler
    lock, which would then never be released, so such a child stays on NumPy.
    """
    global _forked, _numba_off, _state_lock
    _forked = True
    if any(not done.is_set() for done in _started.values()):
        _numba_off = True
    _state_lock = threading.Lock()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


def _signature() -> tuple:
    """The Numba types of the kernels' arguments as :func:`_kernel_args` makes them."""
    args = _kernel_args((2, 2), [(0.0, 0.0), (1.0, 1.0)], (), (), BETA, KAPPA, SIGMA)
    return tuple(numba.typeof(a) for a in args)


def _compile(name: str, done: threading.Event) -> None:
    """Body of a compile thread: load kernel ``name`` from the disk cache or compile it."""
    try:
        _KERNELS[name].compile(_signature())
    except Exception as err:  # soft_focus stays on NumPy; compile_kernel(wait=True) raises it
        with _state_lock:
            _failed[name] = err
        warnings.warn(
            f"fairs_sdk.sfg: compiling the Numba {name} kernel failed ({err!r}); "
            "soft_focus stays on its NumPy path",
            RuntimeWarning,
            stacklevel=1,
        )
    else:
        with _state_lock:
            _ready.add(name)
    finally:
        done.set()


def _start(name: str) -> threading.Event:
    """Start loading or compiling kernel ``name`` in a daemon thread, once per process."""
    with _state_lock:
        done = _started.get(name)
        if done is None:
            done = _started[name] = threading.Event()
            thread = threading.Thread(
                target=_compile, args=(name, done), name=f"fairs-sfg-compile-{name}", daemon=True
            )
            thread.start()
    return done


def _kernel_name() -> str:
    """The kernel for a call from this thread: serial in a forked child or on one Numba thread."""
    if _forked or numba.get_num_threads() == 1:
        return "serial"
    return "parallel"


def _run_kernel(name: str, args: tuple) -> np.ndarray:
    """Run a ready kernel. Numba's fallback "workqueue" threading layer (used when
    neither TBB nor OpenMP is present) is not thread-safe: parallel calls on it are
    serialised with a lock."""
    if name == "serial":
        return _kernel_serial(*args)
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        layer = "workqueue"
    if layer == "workqueue":
        with _workqueue_lock:
            return _kernel_parallel(*args)
    return _kernel_parallel(*args)


@contextlib.contextmanager
def background_compile() -> Iterator[None]:
    """While open, :func:`soft_focus` answers from NumPy while its Numba kernel compiles, instead of waiting.

    By default the first call in a process waits until the kernel it needs is loaded
    from Numba's disk cache (about 0.1 s) or, on a fresh install, compiled (seconds).
    Inside this block calls never wait: while the kernel compiles in a background
    thread they run a vectorised NumPy version (a few times slower than the kernel,
    far faster than the compilation). For programs that must answer at once, such as
    ``fairs segment``. It applies to every thread of the process while any such
    block is open. The NumPy answers equal the kernel's within 1e-5, not bit for
    bit, so results inside depend on when the kernel became ready.
    """
    global _background
    with _state_lock:
        _background += 1
    try:
        yield
    finally:
        with _state_lock:
            _background -= 1


def compile_kernel(wait: bool = True, parallel: bool | None = None) -> bool:
    """Make a Numba kernel of :func:`soft_focus` ready: load it from Numba's disk cache or compile it.

    :func:`soft_focus` does this by itself on its first call (see
    :func:`background_compile`). Call this to start earlier (``wait=False``), or,
    with background compilation on, to make sure later calls run on Numba
    (benchmarks, a server warming up).

    Args:
        wait: block until the kernel is ready (or its compilation failed).
        parallel: the row-parallel kernel (True), the serial one (False), or the one a
            call from this thread would use now (None): serial on one Numba thread (see
            :func:`kernel_threads`) and in forked processes, else parallel.

    Returns:
        Whether the kernel is ready. False in a process forked while a compile was
        running: it stays on NumPy.

    Raises:
        RuntimeError: ``wait`` and the compilation failed.
    """
    if _numba_off:
        return False
    name = _kernel_name() if parallel is None else ("parallel" if parallel else "serial")
    done = _start(name)
    if wait:
        done.wait()
        if name in _failed:
            raise RuntimeError(f"compiling the Numba {name} SFG kernel failed") from _failed[name]
    return name in _ready


@contextlib.contextmanager
def kernel_threads(count: int | None) -> Iterator[None]:
    """Run :func:`soft_focus` calls of this thread on at most ``count`` threads (None: unchanged).

    Numba's thread count is per calling thread; it is restored on exit. One thread is
    what a caller wants when another engine (ONNX Runtime, torch) already keeps the
    cores busy: waiting on a descheduled worker then costs far more than the kernel.
    """
    if count is None:
        yield
        return
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def soft_focus(
    shape: tuple[int, int],
    extreme_points: Points,
    positive_clicks: Points = (),
    negative_clicks: Points = (),
    beta: float = BETA,
    kappa: float = KAPPA,
    sigma: float = SIGMA,
) -> np.ndarray:
    """The soft focus map psi (SPEC section 1), fast path; same contract as the reference.

    Runs the serial Numba kernel on one Numba thread (:func:`kernel_threads`) or in a
    forked process, else the parallel one. The first call waits until the kernel is
    loaded or compiled, except inside :func:`background_compile`: there calls are
    answered from NumPy until it is ready.

    Args:
        shape: canvas (H, W).
        extreme_points: (n, 2) extreme points as (x, y), n >= 2, in canvas pixels.
        positive_clicks: (m, 2) "this is object" clicks.
        negative_clicks: (k, 2) "this is background" clicks.
        beta: decay exponent (> 0). kappa: norm order (>= 1). sigma: Gaussian FWHM (> 0).

    Returns:
        (H, W) float32 in [0, 1]; equal to :func:`soft_focus_reference` within 1e-5.

    Raises:
        ValueError: naming the argument that is malformed or out of range.
    """
    args = _kernel_args(shape, extreme_points, positive_clicks, negative_clicks, beta, kappa, sigma)
    if not _numba_off:
        name = _kernel_name()
        if name not in _ready:
            done = _start(name)
            if not _background:
                done.wait()
        if name in _ready:
            return _run_kernel(name, args)
    return _soft_focus_numpy(*args)  # compiling in the background, failed, or a fork (see above)
