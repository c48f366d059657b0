"""``fairs segment`` on a fresh install: it answers without waiting for Numba's compiler."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "coffee.png"


def test_fairs_segment_with_an_empty_numba_cache_answers_from_numpy(tmp_path):
    # The first SFG call (the Segmenter's warm-up) comes right after the compile
    # starts, so with an empty cache it must be answered by the NumPy path.
    code = textwrap.dedent(f"""
        import json, sys
        from fairs_sdk import sfg
        from fairs_sdk.cli import main

        numpy_calls = []
        numpy_path = sfg._soft_focus_numpy
        sfg._soft_focus_numpy = lambda *args: numpy_calls.append(1) or numpy_path(*args)
        status = main(["segment", {str(SAMPLE)!r}, "--points", "77,250", "479,235", "290,18", "280,388",
                       "--out", {str(tmp_path / "out")!r}])
        print(json.dumps({{"status": status, "numpy_calls": len(numpy_calls), "started": sorted(sfg._started)}}))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"fairs segment failed:\n{out.stderr}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 0 and (tmp_path / "out" / "coffee_mask.png").is_file(), f"no mask written: {result}"
    assert result["numpy_calls"] >= 1 and result["started"], f"fairs segment waited for the compiler: {result}"
