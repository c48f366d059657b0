"""Fixtures of the ``fairs annotate`` tests (scenes from annotate_scene.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from annotate_scene import write_scene  # noqa: E402


@pytest.fixture
def scene(tmp_path) -> tuple[Path, Path, dict]:
    """(COCO path, images folder, COCO dict) of SCENES (see :func:`write_scene`)."""
    return write_scene(tmp_path / "scene")
