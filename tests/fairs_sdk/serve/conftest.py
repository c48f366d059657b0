"""Fixtures of the ``fairs serve`` tests: the bundled model, the sample photo, an in-process client."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_helpers import COFFEE, CVAT_REQUEST  # noqa: E402


@pytest.fixture(scope="session")
def serve_segmenter():
    """The bundled default model (what ``fairs serve`` runs without ``--model``)."""
    from fairs_sdk import Segmenter
    from fairs_sdk.segmenter import DEFAULT_MODEL

    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"the bundled model is missing: {DEFAULT_MODEL}")
    return Segmenter()


@pytest.fixture(scope="session")
def coffee_bytes() -> bytes:
    return COFFEE.read_bytes()


@pytest.fixture(scope="session")
def coffee(coffee_bytes) -> np.ndarray:
    """examples/coffee.png as (400, 600, 3) uint8 RGB."""
    import cv2

    return cv2.cvtColor(cv2.imdecode(np.frombuffer(coffee_bytes, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="session")
def cvat_request() -> dict:
    """The recorded CVAT-style interactor request (see data/README.md)."""
    return json.loads(CVAT_REQUEST.read_text())


@pytest.fixture
def make_client(serve_segmenter):
    """``make_client(**limits)``: a TestClient of a fresh app (fresh image cache) with those Limits."""
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from fairs_sdk.serve import Limits
    from fairs_sdk.serve.app import create_app

    clients = []

    def make(**limits) -> "TestClient":
        client = TestClient(create_app(serve_segmenter, Limits(**limits)), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
