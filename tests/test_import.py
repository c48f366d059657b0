"""The runtime package must stay free of torch."""

import subprocess
import sys


def test_import_fairs_sdk_does_not_import_torch():
    code = "import sys, fairs_sdk, fairs_sdk.sfg, fairs_sdk.crop, fairs_sdk.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "import fairs_sdk pulled in torch"
