"""The CVAT interactor: a recorded CVAT-style request through the nuclio handler and ``POST /v1/cvat``.

The nuclio side is a test double of what nuclio passes to ``deploy/cvat/main.py``:
``context`` (``user_data``, ``logger``, ``Response``) and ``event`` (``body``).
"""

from __future__ import annotations

import base64
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from serve_helpers import REPO

pytest.importorskip("PIL")
DEPLOY = REPO / "deploy" / "cvat"


class _Logger:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)

    warn = error = debug = info


class _Response:
    """nuclio's ``context.Response``: the keyword arguments CVAT's functions pass to it."""

    def __init__(self, body, headers, content_type, status_code) -> None:
        self.body, self.headers, self.content_type, self.status_code = body, headers, content_type, status_code


def _nuclio_context() -> SimpleNamespace:
    return SimpleNamespace(user_data=SimpleNamespace(), logger=_Logger(), Response=_Response)


@pytest.fixture(scope="module")
def nuclio(serve_segmenter):
    """(handler module, context after init_context) of deploy/cvat/main.py."""
    spec = importlib.util.spec_from_file_location("fairs_cvat_nuclio_main", DEPLOY / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = _nuclio_context()
    module.init_context(context)
    return module, context


def _expected(segmenter, request: dict):
    """What the request means in SDK terms: the decoded frame and Segmenter.segment's result."""
    data = base64.b64decode(request["image"])
    rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    pos = np.asarray(request["pos_points"], np.float64) - 0.5  # CVAT's corner origin -> pixel centres
    neg = np.asarray(request["neg_points"], np.float64) - 0.5
    return rgb, segmenter.segment(rgb, pos[:4], positive_clicks=pos[4:], negative_clicks=neg)


def test_recorded_request_through_nuclio_handler(nuclio, serve_segmenter, cvat_request):
    module, context = nuclio
    response = module.handler(context, SimpleNamespace(body=cvat_request))
    assert response.status_code == 200, response.body
    assert response.content_type == "application/json" and response.headers == {}
    answer = json.loads(response.body)
    assert set(answer) == {"mask", "points"}, f"CVAT reads 'mask' and 'points', got {sorted(answer)}"
    rgb, want = _expected(serve_segmenter, cvat_request)
    mask = np.asarray(answer["mask"])
    assert mask.shape == rgb.shape[:2], f"mask is {mask.shape}, the frame {rgb.shape[:2]}"
    assert set(np.unique(mask)) <= {0, 1}, "mask values must be 0 / 1"
    assert np.array_equal(mask.astype(bool), want.mask), "mask differs from Segmenter.segment on the same input"
    assert 0.1 < want.mask.mean() < 0.9, "the recorded request should give a real object"
    polygon = np.asarray(answer["points"], np.int32)
    outline = np.zeros_like(mask, np.uint8)
    cv2.fillPoly(outline, [polygon], 1)
    iou = np.logical_and(outline, want.mask).sum() / np.logical_or(outline, want.mask).sum()
    assert iou > 0.95, f"the polygon covers the mask with IoU {iou:.3f}"


def test_http_endpoint_answers_as_the_nuclio_handler(nuclio, make_client, cvat_request):
    module, context = nuclio
    nuclio_answer = json.loads(module.handler(context, SimpleNamespace(body=cvat_request)).body)
    response = make_client().post("/v1/cvat", json=cvat_request)
    assert response.status_code == 200, response.text
    assert response.json() == nuclio_answer, "POST /v1/cvat and the nuclio function answer differently"


def test_body_as_bytes_is_parsed(nuclio, cvat_request):
    """nuclio hands over bytes when the request's content type is not JSON."""
    module, context = nuclio
    as_dict = module.handler(context, SimpleNamespace(body=cvat_request))
    as_bytes = module.handler(context, SimpleNamespace(body=json.dumps(cvat_request).encode()))
    assert as_bytes.status_code == 200 and as_bytes.body == as_dict.body


def test_threshold_from_cvat_is_applied(nuclio, serve_segmenter, cvat_request):
    module, context = nuclio
    request = {**cvat_request, "threshold": 0.95}
    answer = json.loads(module.handler(context, SimpleNamespace(body=request)).body)
    rgb, _ = _expected(serve_segmenter, cvat_request)
    pos = np.asarray(request["pos_points"]) - 0.5
    want = serve_segmenter.segment(rgb, pos[:4], pos[4:], np.asarray(request["neg_points"]) - 0.5, threshold=0.95)
    assert np.array_equal(np.asarray(answer["mask"], bool), want.mask), "threshold 0.95 not applied"


@pytest.mark.parametrize(
    "change, status, words",
    [
        ({"pos_points": [[10, 10], [20, 20], [30, 30]]}, 400, "extreme points"),
        ({"image": "aGVsbG8="}, 415, "not an image"),
        ({"pos_points": [[10, 10], [20, 20], [30, 30], [9999, 1]]}, 400, "outside"),
        ({"obj_bbox": [[1, 1], [50, 50]]}, 400, "obj_bbox"),
        ({"threshold": "high"}, 400, "threshold"),
    ],
    ids=["3 points", "not an image", "outside", "box", "threshold"],
)
def test_bad_request_gets_a_4xx_json_error(nuclio, cvat_request, change, status, words):
    module, context = nuclio
    response = module.handler(context, SimpleNamespace(body={**cvat_request, **change}))
    assert response.status_code == status, response.body
    assert words in json.loads(response.body)["error"], response.body


def test_malformed_body_gets_400(nuclio):
    module, context = nuclio
    response = module.handler(context, SimpleNamespace(body=b"{not json"))
    assert response.status_code == 400 and "not valid JSON" in json.loads(response.body)["error"]


def test_function_yaml_declares_the_interactor(serve_segmenter):
    yaml = pytest.importorskip("yaml")
    from fairs_sdk.serve import Limits
    from fairs_sdk.serve.cvat import EXTREME_POINTS

    config = yaml.safe_load((DEPLOY / "function.yaml").read_text())
    notes = config["metadata"]["annotations"]
    assert notes["type"] == "interactor" and int(notes["version"]) == 2, notes
    assert int(notes["min_pos_points"]) == EXTREME_POINTS and int(notes["min_neg_points"]) == 0, notes
    assert "startswith_box" not in notes, "CVAT reads startswith_box with bool(): any value turns it on"
    assert config["spec"]["handler"] == "main:handler"
    body_limit = config["spec"]["triggers"]["myHttpTrigger"]["attributes"]["maxRequestBodySize"]
    assert body_limit == Limits().max_upload_bytes, "the function's body limit is not the service's"
    source = (DEPLOY / "main.py").read_text()
    assert "def handler(context, event)" in source and "def init_context(context)" in source


def test_nuclio_handler_imports_without_a_web_framework():
    """The nuclio image installs the runtime and Pillow only: main.py must not need FastAPI or uvicorn."""
    import subprocess
    import sys

    code = (
        "import sys, importlib.util\n"
        "for name in ('fastapi', 'starlette', 'uvicorn', 'pydantic', 'anyio'):\n"
        "    sys.modules[name] = None\n"
        f"spec = importlib.util.spec_from_file_location('main', {str(DEPLOY / 'main.py')!r})\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"deploy/cvat/main.py needs a web framework:\n{done.stderr[-2000:]}"
