"""Fixtures for the runtime tests: small models built once per test session (see model_files)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_files import CLICK_SPEC, DATA, export_tiny_bundle, export_tiny_model, make_echo_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Path of the 64 x 64 real-architecture model."""
    return export_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_segmenter(tiny_model):
    from fairs_sdk import Segmenter

    return Segmenter(tiny_model, backend="onnxruntime")


@pytest.fixture(scope="session")
def red_model(tmp_path_factory) -> Path:
    """Probabilities = red channel / 255: the mask is where the image is red."""
    return make_echo_model(tmp_path_factory.mktemp("models") / "red.onnx", channel="rgb", scale=1 / 255)


@pytest.fixture(scope="session")
def red_segmenter(red_model):
    from fairs_sdk import Segmenter

    return Segmenter(red_model)


@pytest.fixture(scope="session")
def sfg_segmenter(tmp_path_factory):
    """Probabilities = the SFG map the runtime computed."""
    from fairs_sdk import Segmenter

    return Segmenter(make_echo_model(tmp_path_factory.mktemp("models") / "sfg.onnx", channel="sfg", scale=1.0))


@pytest.fixture(scope="session")
def click_segmenters(tmp_path_factory) -> dict:
    """Models taking rgb, sfg, positive_clicks, negative_clicks (SPEC 1b), one per plane they echo.

    ``click_segmenters[name]``: probabilities = that input plane as the model saw it
    ("rgb": the red channel / 255).
    """
    from fairs_sdk import Segmenter

    folder = tmp_path_factory.mktemp("click_models")
    return {
        name: Segmenter(make_echo_model(folder / f"{name}.onnx", channel=name, scale=1 / 255 if name == "rgb" else 1.0,
                                        spec=CLICK_SPEC))
        for name in CLICK_SPEC.input_channels
    }


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, fake_u2netp):
    """A 64 x 64 two-part model (``Bundle``: combined file, image encoder, decoder) on fake U2-Netp weights."""
    return export_tiny_bundle(tmp_path_factory.mktemp("bundle"), fake_u2netp[0])


@pytest.fixture(scope="session")
def two_part_segmenter(tiny_bundle):
    """``Segmenter`` on the tiny bundle's combined file, with its parts loaded."""
    from fairs_sdk import Segmenter

    return Segmenter(tiny_bundle.combined, backend="onnxruntime")


@pytest.fixture
def photo() -> np.ndarray:
    """A real (H, W, 3) uint8 RGB photo from the DAVIS development set."""
    cv2 = pytest.importorskip("cv2")
    path = DATA / "dev" / "davis345" / "images" / "000.jpg"
    if not path.is_file():
        pytest.skip(f"real images not found at {path} (../shared/data beside the repository)")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
