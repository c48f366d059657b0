"""Cold start: the first segmentation on a fresh install against later ones.

Each run is a new interpreter with ``NUMBA_CACHE_DIR`` set to an empty folder
(cold: nothing compiled yet, as on a fresh install) or to a folder both Numba SFG
kernels were compiled into beforehand (warm). Two programs, on the sample image
(``examples/coffee.png``, the README's quick start):

- ``fairs segment``: wall-clock seconds of the whole process, start to exit. The
  command answers from the NumPy SFG while Numba compiles in the background
  (``fairs_sdk.sfg.background_compile``).
- ``Segmenter()`` + the first ``segment`` inside a process, the library's default:
  the first SFG call waits until its kernel is loaded or compiled.

Medians of ``ROUNDS`` runs and the cold / warm ratios are printed and recorded as
properties; nothing is asserted about time. Run:
``pytest benchmarks/test_cold_start.py -s``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "examples" / "coffee.png"
POINTS = [(77, 250), (479, 235), (290, 18), (280, 388)]  # the README's quick start
ROUNDS = 3

#: The ``fairs`` console script's body.
FAIRS = "import sys\nfrom fairs_sdk.cli import main\nsys.exit(main())"
LIBRARY = f"""
import json, time
import cv2
image = cv2.cvtColor(cv2.imread({str(IMAGE)!r}), cv2.COLOR_BGR2RGB)
t0 = time.perf_counter()
from fairs_sdk import Segmenter
seg = Segmenter()
t1 = time.perf_counter()
result = seg.segment(image, {POINTS!r})
t2 = time.perf_counter()
print(json.dumps({{"segmenter_s": t1 - t0, "first_segment_s": t2 - t1, "area": int(result.mask.sum())}}))
"""
COMPILE_BOTH = "from fairs_sdk.sfg import compile_kernel\ncompile_kernel(parallel=False)\ncompile_kernel(parallel=True)"


def _env(cache_dir: str) -> dict[str, str]:
    return dict(os.environ, NUMBA_CACHE_DIR=cache_dir)


def _fairs_segment(cache_dir: str) -> float:
    """Seconds one fresh ``fairs segment`` process takes, start to exit."""
    with tempfile.TemporaryDirectory() as out_dir:
        points = [f"{x},{y}" for x, y in POINTS]
        argv = [sys.executable, "-c", FAIRS, "segment", str(IMAGE), "--points", *points, "--out", out_dir]
        start = time.perf_counter()
        out = subprocess.run(argv, env=_env(cache_dir), capture_output=True, text=True)
        seconds = time.perf_counter() - start
        assert out.returncode == 0, f"fairs segment failed:\n{out.stderr}"
        assert (Path(out_dir) / "coffee_mask.png").is_file(), f"no mask written; stdout:\n{out.stdout}"
    return seconds


def _library(cache_dir: str) -> float:
    """Seconds of ``Segmenter()`` plus the first ``segment`` in a fresh process."""
    out = subprocess.run([sys.executable, "-c", LIBRARY], env=_env(cache_dir), capture_output=True, text=True)
    assert out.returncode == 0, f"Segmenter script failed:\n{out.stderr}"
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["area"] > 0, f"empty mask: {figures}"
    return figures["segmenter_s"] + figures["first_segment_s"]


def _median(run, warm_cache: str | None) -> float:
    """Median of ``ROUNDS`` runs, each on a fresh empty cache (``warm_cache`` None) or on ``warm_cache``."""
    times = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as empty:
            times.append(run(warm_cache or empty))
    return statistics.median(times)


def test_cold_start(record_property, capsys):
    with tempfile.TemporaryDirectory() as warm_cache:
        subprocess.run([sys.executable, "-c", COMPILE_BOTH], env=_env(warm_cache), check=True)
        figures = {
            "fairs_segment_warm_s": _median(_fairs_segment, warm_cache),
            "library_warm_s": _median(_library, warm_cache),
        }
    figures["fairs_segment_cold_s"] = _median(_fairs_segment, None)
    figures["library_cold_s"] = _median(_library, None)
    for key, value in figures.items():
        record_property(key, round(value, 3))
    cli_ratio = figures["fairs_segment_cold_s"] / figures["fairs_segment_warm_s"]
    library_ratio = figures["library_cold_s"] / figures["library_warm_s"]
    record_property("fairs_segment_cold_over_warm", round(cli_ratio, 2))
    record_property("library_cold_over_warm", round(library_ratio, 2))
    with capsys.disabled():
        print(
            f"\ncold start (median of {ROUNDS} fresh processes; cold: empty Numba cache, warm: cache filled)\n"
            f"  fairs segment {IMAGE.name}, start to exit: cold {figures['fairs_segment_cold_s']:.2f} s, "
            f"warm {figures['fairs_segment_warm_s']:.2f} s, cold/warm {cli_ratio:.2f}x\n"
            f"  Segmenter() + first segment (waits for Numba): cold {figures['library_cold_s']:.2f} s, "
            f"warm {figures['library_warm_s']:.2f} s, cold/warm {library_ratio:.2f}x"
        )
