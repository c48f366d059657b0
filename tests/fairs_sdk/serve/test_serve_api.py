"""``fairs serve``'s JSON API in process (Starlette's TestClient): answers equal ``Segmenter.segment``."""

from __future__ import annotations

import base64
import dataclasses

import numpy as np
import pytest
from serve_helpers import COFFEE_POINTS, TABLE, decode_png

from fairs_sdk.result import mask_to_polygons, mask_to_rle

pytest.importorskip("fastapi")


def test_healthz(make_client):
    response = make_client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}, response.text


def test_model_reports_backend_providers_spec_and_version(make_client, serve_segmenter):
    import fairs_sdk

    info = make_client(cache_images=3).get("/v1/model").json()
    assert info["version"] == fairs_sdk.__version__
    assert info["backend"] == serve_segmenter.backend.name
    assert info["providers"] == list(serve_segmenter.providers)
    spec = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(serve_segmenter.spec).items()}
    assert info["input_spec"] == spec, "input_spec is not the model's"
    assert info["limits"]["cache_images"] == 3, "limits are not the app's"


def test_upload_then_segment_equals_segment(make_client, serve_segmenter, coffee, coffee_bytes):
    client = make_client()
    up = client.post("/v1/images", content=coffee_bytes)
    assert up.status_code == 200, up.text
    assert (up.json()["width"], up.json()["height"]) == (600, 400)
    body = {"image_id": up.json()["image_id"], "extreme_points": COFFEE_POINTS, "negative_clicks": [TABLE],
            "positive_clicks": [(300, 120)], "mask_png": True}
    got = client.post("/v1/segment", json=body)
    assert got.status_code == 200, got.text
    got = got.json()
    want = serve_segmenter.segment(coffee, COFFEE_POINTS, [(300, 120)], [TABLE])
    assert got["rle"] == mask_to_rle(want.mask), "RLE differs from Segmenter.segment's mask"
    assert np.array_equal(decode_png(got["mask_png"]), want.mask), "mask PNG differs from Segmenter.segment's mask"
    assert got["crop_box"] == list(want.box) and got["bbox"] == list(want.bbox()) and got["area"] == want.area
    assert got["polygons"] == [p.tolist() for p in mask_to_polygons(want.mask)], "polygons differ"


def test_inline_image_is_kept_under_the_id_it_returns(make_client, coffee_bytes):
    client = make_client()
    body = {"image": base64.b64encode(coffee_bytes).decode(), "extreme_points": COFFEE_POINTS}
    first = client.post("/v1/segment", json=body).json()
    again = client.post("/v1/segment", json={"image_id": first["image_id"], "extreme_points": COFFEE_POINTS}).json()
    assert again["rle"] == first["rle"], "the id of an inline image does not give the same image back"
    up = client.post("/v1/images", content=coffee_bytes).json()
    assert up["image_id"] == first["image_id"], "the same file got two ids"


def test_data_url_is_accepted(make_client, coffee_bytes):
    url = "data:image/png;base64," + base64.b64encode(coffee_bytes).decode()
    response = make_client().post("/v1/segment", json={"image": url, "extreme_points": COFFEE_POINTS})
    assert response.status_code == 200, response.text


def test_least_recently_used_image_is_dropped(make_client, coffee):
    import cv2

    client = make_client(cache_images=2)
    files = [cv2.imencode(".png", np.roll(coffee, k, axis=1))[1].tobytes() for k in range(3)]
    ids = [client.post("/v1/images", content=f).json()["image_id"] for f in files]
    assert len(set(ids)) == 3
    gone = client.post("/v1/segment", json={"image_id": ids[0], "extreme_points": COFFEE_POINTS})
    assert gone.status_code == 404 and "upload the image again" in gone.json()["error"], gone.text
    kept = client.post("/v1/segment", json={"image_id": ids[2], "extreme_points": COFFEE_POINTS})
    assert kept.status_code == 200, kept.text


def test_threshold_is_applied(make_client, serve_segmenter, coffee, coffee_bytes):
    client = make_client()
    image_id = client.post("/v1/images", content=coffee_bytes).json()["image_id"]
    got = client.post("/v1/segment", json={"image_id": image_id, "extreme_points": COFFEE_POINTS, "threshold": 0.9})
    want = serve_segmenter.segment(coffee, COFFEE_POINTS, threshold=0.9)
    assert got.json()["rle"] == mask_to_rle(want.mask), "threshold 0.9 not applied"


def test_page_and_only_its_files_are_served(make_client):
    client = make_client()
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/static/app.js">' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    for path in ("/static/index.html", "/static/../app.py", "/static/%2e%2e/app.py", "/static/limits.py"):
        assert client.get(path).status_code == 404, f"{path} should not be served"


def test_gate_refuses_beyond_running_plus_pending():
    """With 1 worker and 1 waiting place, a third request at once gets Busy (503), the others finish."""
    import threading

    import anyio

    from fairs_sdk.serve.app import _Gate
    from fairs_sdk.serve.errors import Busy

    gate, release, outcomes = _Gate(1, 1), threading.Event(), []

    async def call(k: int) -> None:
        try:
            outcomes.append(await gate.run(lambda: release.wait(10) and k))
        except Busy:
            outcomes.append("busy")

    async def scenario() -> None:
        async with anyio.create_task_group() as tg:
            for k in (1, 2, 3):
                tg.start_soon(call, k)
                await anyio.sleep(0.05)
            release.set()

    anyio.run(scenario)
    assert sorted(outcomes, key=str) == [1, 2, "busy"], outcomes
