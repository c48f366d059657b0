"""Soak: many ``segment`` calls keep memory flat, and threads give serial results.

- ``test_rss_stays_flat``: ``FAIRS_SOAK_CALLS`` (default 10,000) ``segment`` calls on a
  640 x 480 image, objects cycling through a fixed set. The resident set size is read
  from ``/proc/self/statm`` every ``calls / 50`` calls after a warm-up; the slope of a
  least-squares line through those samples (KiB per 1,000 calls) is printed and
  recorded. A leak of even one 640 x 480 mask per call (300 KiB) would show as
  300,000 KiB per 1,000 calls; the test fails above ``MAX_SLOPE_KIB_PER_1000``.
- ``test_threads_match_serial``: 16 threads share one ``Segmenter`` for
  ``FAIRS_SOAK_SECONDS`` (default 60) and every mask they get must equal the serial
  mask of the same object, bit for bit.

Run: ``pytest benchmarks/test_soak.py -s`` (about 25 minutes on the 2-core machine
with the defaults; ``FAIRS_SOAK_CALLS=2000 FAIRS_SOAK_SECONDS=20`` for a short run).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fairs_sdk import Segmenter

CALLS = int(os.environ.get("FAIRS_SOAK_CALLS", "10000"))
SECONDS = float(os.environ.get("FAIRS_SOAK_SECONDS", "60"))
THREADS = 16
WARMUP = 50
SAMPLES = 50
#: Allowed RSS growth; allocator noise on a flat run is far below this.
MAX_SLOPE_KIB_PER_1000 = 1024.0

STATM = Path("/proc/self/statm")
pytestmark = pytest.mark.skipif(not STATM.exists(), reason="reads RSS from /proc/self/statm (Linux only)")


def rss_kib() -> float:
    """Resident set size of this process in KiB."""
    pages = int(STATM.read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024.0


def soak_image(seed: int = 0) -> np.ndarray:
    """A 480 x 640 RGB uint8 image: smooth blobs on noise, so masks are non-trivial."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:480, 0:640]
    image = rng.integers(0, 60, size=(480, 640, 3)).astype(np.float32)
    for cx, cy, r, colour in ((200, 240, 90, (230, 60, 40)), (450, 180, 70, (40, 200, 90))):
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        image[inside] = colour
    return image.clip(0, 255).astype(np.uint8)


#: Extreme points (x, y) of objects on ``soak_image``: the two discs and two boxes around parts of them.
OBJECTS = [
    [(110, 240), (290, 240), (200, 150), (200, 330)],
    [(380, 180), (520, 180), (450, 110), (450, 250)],
    [(150, 200), (260, 210), (200, 170), (210, 300)],
    [(400, 160), (500, 170), (440, 130), (460, 230)],
]


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter()


def test_rss_stays_flat(segmenter: Segmenter, record_property) -> None:
    image = soak_image()
    every = max(1, CALLS // SAMPLES)
    for k in range(WARMUP):
        segmenter.segment(image, OBJECTS[k % len(OBJECTS)])
    calls, rss = [], []
    start = time.perf_counter()
    for k in range(CALLS):
        segmenter.segment(image, OBJECTS[k % len(OBJECTS)])
        if k % every == 0 or k == CALLS - 1:
            calls.append(k + 1)
            rss.append(rss_kib())
    elapsed = time.perf_counter() - start
    slope = float(np.polyfit(np.asarray(calls, float), np.asarray(rss, float), 1)[0]) * 1000.0
    line = (
        f"soak: {CALLS} segment calls at 640x480 in {elapsed:.0f} s ({CALLS / elapsed:.1f}/s); "
        f"RSS {rss[0] / 1024:.1f} -> {rss[-1] / 1024:.1f} MiB (max {max(rss) / 1024:.1f}); "
        f"slope {slope:+.1f} KiB per 1000 calls"
    )
    print("\n" + line)
    record_property("rss_slope_kib_per_1000_calls", round(slope, 2))
    record_property("rss_first_last_mib", (round(rss[0] / 1024, 1), round(rss[-1] / 1024, 1)))
    assert slope < MAX_SLOPE_KIB_PER_1000, f"RSS grows {slope:.0f} KiB per 1000 calls: a leak ({line})"


def test_threads_match_serial(segmenter: Segmenter, record_property) -> None:
    image = soak_image()
    serial = [segmenter.segment(image, points).mask.copy() for points in OBJECTS]
    deadline = time.perf_counter() + SECONDS
    counts = [0] * THREADS
    mismatches: list[str] = []
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        k = index
        try:
            while time.perf_counter() < deadline:
                obj = k % len(OBJECTS)
                mask = segmenter.segment(image, OBJECTS[obj]).mask
                if not np.array_equal(mask, serial[obj]):
                    mismatches.append(f"thread {index}, call {counts[index]}, object {obj}")
                counts[index] += 1
                k += 1
        except BaseException as err:  # noqa: BLE001 - reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sum(counts)
    print(f"\nsoak: {THREADS} threads, {SECONDS:.0f} s, {total} calls ({total / SECONDS:.1f}/s), "
          f"{len(mismatches)} mismatches, {len(errors)} errors")
    record_property("threaded_calls", total)
    assert not errors, f"{len(errors)} thread(s) raised, first: {errors[0]!r}"
    assert min(counts) > 0, f"some threads made no call in {SECONDS} s: {counts}"
    assert not mismatches, f"{len(mismatches)} masks differ from the serial ones, first: {mismatches[0]}"
