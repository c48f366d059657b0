"""export.trt_build: the optimisation profile and calibrator follow the model's declared channels.

The shape logic is pure Python and always runs; building engines needs TensorRT and a
GPU (tests/fairs_sdk/test_trt.py builds and runs 6-channel engines where they exist).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from tiny_models import SIX_SPEC, SIZE

from fairs_sdk.config import InputSpec
from fairs_sdk.export.trt_build import _check_network_input, make_calibrator, profile_shapes


def test_profile_uses_the_declared_channel_count() -> None:
    low, opt, high = profile_shapes(SIX_SPEC, min_batch=1, opt_batch=2, max_batch=8)
    assert (low, opt, high) == ((1, 6, SIZE, SIZE), (2, 6, SIZE, SIZE), (8, 6, SIZE, SIZE)), f"profile {low}, {opt}, {high}"
    assert profile_shapes(InputSpec(input_size=SIZE))[2] == (1, 4, SIZE, SIZE), "rgb, sfg must give C = 4"


@pytest.mark.parametrize("batches", [(0, 1, 1), (2, 1, 4), (1, 4, 2)])
def test_profile_rejects_bad_batches(batches: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError, match="min_batch <= opt_batch <= max_batch"):
        profile_shapes(SIX_SPEC, *batches)


def test_graph_input_must_match_the_metadata() -> None:
    shapes = profile_shapes(SIX_SPEC, 1, 1, 4)
    _check_network_input((-1, 6, SIZE, SIZE), shapes, "six.onnx")  # dynamic N, declared C and S
    with pytest.raises(ValueError, match=r"\(-1, 4, 64, 64\).*\(N, 6, 64, 64\)"):
        _check_network_input((-1, 4, SIZE, SIZE), shapes, "six.onnx")
    with pytest.raises(ValueError, match="fixed-batch"):
        _check_network_input((1, 6, SIZE, SIZE), shapes, "six.onnx")


def test_calibrator_refuses_inputs_of_another_channel_count() -> None:
    """Checked before TensorRT is imported, so this runs everywhere."""
    with pytest.raises(ValueError, match=r"\(N, 6, 64, 64\)"):
        make_calibrator(np.zeros((8, 4, SIZE, SIZE), np.float32), SIX_SPEC)
    with pytest.raises(ValueError, match="full calibration batch"):
        make_calibrator(np.zeros((3, 6, SIZE, SIZE), np.float32), SIX_SPEC, batch_size=8)


def test_builder_import_needs_neither_torch_nor_tensorrt() -> None:
    code = "import sys, fairs_sdk.export.trt_build; assert 'torch' not in sys.modules and 'tensorrt' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, f"importing the engine builder pulled in torch or tensorrt: {result.stderr[-500:]}"
