"""``fairs_sdk.annotate`` is runtime code: it imports neither torch nor (until --engine ray) Ray."""

import subprocess
import sys


def test_importing_the_annotate_package_pulls_in_neither_torch_nor_ray():
    code = ("import sys, fairs_sdk.annotate, fairs_sdk.annotate.cli; from fairs_sdk.cli import build_parser; "
            "build_parser(); print(sorted(m for m in ('torch', 'ray', 'pycocotools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"importing fairs_sdk.annotate imported {out.stdout.strip()}"
