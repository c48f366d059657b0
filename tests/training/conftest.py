"""Shared fixtures of the training tests: one torch thread, small real data."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_ROOT = Path(__file__).parents[2].parent / "shared" / "data"
HORSES = DATA_ROOT / "train" / "weizmann_horse"


@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """One intra-op thread: tiny models on a busy 2-core machine run far faster that way."""
    import cv2
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def horses_root() -> Path:
    if not (HORSES / "images").is_dir():
        pytest.skip(f"shared training data not found at {HORSES}")
    return HORSES


@pytest.fixture(scope="session")
def horses(horses_root):
    """Four Weizmann horses in memory, longer side at most 160 px."""
    from fairs_sdk.training.sources import InMemorySource, build_source

    return InMemorySource(build_source({"kind": "folder", "root": str(horses_root), "max_instances": 4}), max_side=160)
