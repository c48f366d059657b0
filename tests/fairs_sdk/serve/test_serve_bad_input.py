"""Bad requests to ``fairs serve`` get a 4xx ``{"error": ...}``, never a 500, and the server keeps serving."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from serve_helpers import COFFEE_POINTS

pytest.importorskip("fastapi")

B64 = "aGVsbG8gd29ybGQ="  # b"hello world": valid base64, not an image


def _png(shape=(40, 60, 3)) -> bytes:
    import cv2

    return cv2.imencode(".png", np.zeros(shape, np.uint8))[1].tobytes()


def _jpeg() -> bytes:
    import cv2

    noise = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", noise)[1].tobytes()


def _segment_body(**fields) -> bytes:
    return json.dumps({"extreme_points": COFFEE_POINTS, **fields}).encode()


def _truncated_png(data: bytes) -> bytes:
    return data[: len(data) // 2]


# (name, path, body, expected status, words the error must contain); "{id}" is the uploaded coffee's id.
CASES = [
    ("malformed JSON", "/v1/segment", b'{"image_id": ', 400, "not valid JSON"),
    ("empty body", "/v1/segment", b"", 400, "empty"),
    ("not UTF-8", "/v1/segment", b"\xc3\x28", 400, "not valid JSON"),
    ("deeply nested JSON", "/v1/segment", b"[" * 100_000, 400, "not valid JSON"),
    ("JSON array", "/v1/segment", b"[1, 2]", 422, "dictionary"),
    ("missing extreme_points", "/v1/segment", b'{"image_id": "{id}"}', 422, "extreme_points"),
    ("unknown field", "/v1/segment", _segment_body(image_id="{id}", colour="red"), 422, "colour"),
    ("point not a pair", "/v1/segment", json.dumps({"image_id": "{id}", "extreme_points": [[1, 2, 3], [4, 5]]}).encode(),
     422, "extreme_points"),
    ("string coordinates", "/v1/segment", json.dumps({"image_id": "{id}", "extreme_points": [["a", 2], [4, 5]]}).encode(),
     422, "extreme_points"),
    ("too many clicks", "/v1/segment", _segment_body(image_id="{id}", negative_clicks=[[5, 5]] * 257), 422,
     "negative_clicks"),
    ("threshold above 1", "/v1/segment", _segment_body(image_id="{id}", threshold=2), 422, "threshold"),
    ("no image", "/v1/segment", _segment_body(), 400, "exactly one"),
    ("image and image_id", "/v1/segment", _segment_body(image_id="{id}", image=B64), 400, "exactly one"),
    ("unknown image_id", "/v1/segment", _segment_body(image_id="0" * 32), 404, "unknown image_id"),
    ("invalid base64", "/v1/segment", _segment_body(image="not base64!"), 400, "base64"),
    ("non-image bytes", "/v1/segment", _segment_body(image=B64), 415, "not an image"),
    ("truncated PNG", "/v1/segment", _segment_body(image=base64.b64encode(_truncated_png(_png())).decode()), 400,
     "truncated"),
    ("point outside the image", "/v1/segment", _segment_body(image_id="{id}", extreme_points=[[10, 10], [600, 10]]),
     400, "outside the 600 x 400 image"),
    ("NaN coordinate", "/v1/segment", b'{"image_id": "{id}", "extreme_points": [[NaN, 1], [5, 5]]}', 400, "NaN"),
    ("one extreme point", "/v1/segment", _segment_body(image_id="{id}", extreme_points=[[5, 5]]), 400, "at least 2"),
    ("identical extreme points", "/v1/segment", _segment_body(image_id="{id}", extreme_points=[[5, 5], [5, 5]]), 400,
     "same point"),
    ("upload of non-image bytes", "/v1/images", b"hello world", 415, "not an image"),
    ("truncated JPEG upload", "/v1/images", _jpeg()[:-100], 400, "truncated"),
    ("empty upload", "/v1/images", b"", 400, "empty"),
    ("truncated upload", "/v1/images", _truncated_png(_png()), 400, "truncated"),
    ("CVAT: not JSON", "/v1/cvat", b"image=abc", 400, "not valid JSON"),
    ("CVAT: no image", "/v1/cvat", json.dumps({"pos_points": COFFEE_POINTS, "neg_points": []}).encode(), 400,
     "'image'"),
    ("CVAT: 3 positive points", "/v1/cvat",
     json.dumps({"image": B64, "pos_points": COFFEE_POINTS[:3], "neg_points": []}).encode(), 400, "extreme points"),
    ("CVAT: points not pairs", "/v1/cvat", json.dumps({"image": B64, "pos_points": [1, 2, 3, 4], "neg_points": []}).encode(),
     400, "pos_points"),
    ("CVAT: a box", "/v1/cvat",
     json.dumps({"image": B64, "pos_points": COFFEE_POINTS, "neg_points": [], "obj_bbox": [[1, 2], [3, 4]]}).encode(),
     400, "obj_bbox"),
    ("CVAT: non-image bytes", "/v1/cvat", json.dumps({"image": B64, "pos_points": COFFEE_POINTS, "neg_points": []}).encode(),
     415, "not an image"),
    ("CVAT: body is a list", "/v1/cvat", b"[]", 400, "JSON object"),
]


@pytest.fixture(scope="module")
def served(serve_segmenter, coffee_bytes):
    """One client for every case, and the id of the coffee photo uploaded to it."""
    from fastapi.testclient import TestClient

    from fairs_sdk.serve.app import create_app

    with TestClient(create_app(serve_segmenter), raise_server_exceptions=False) as client:
        image_id = client.post("/v1/images", content=coffee_bytes).json()["image_id"]
        yield client, image_id


@pytest.mark.parametrize("name, path, body, status, words", CASES, ids=[c[0] for c in CASES])
def test_bad_request_gets_its_4xx_and_server_keeps_serving(served, name, path, body, status, words):
    client, image_id = served
    response = client.post(path, content=body.replace(b"{id}", image_id.encode()),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == status, f"{name}: expected {status}, got {response.status_code}: {response.text}"
    error = response.json().get("error", "")
    assert words in error, f"{name}: the error {error!r} does not say {words!r}"
    ok = client.post("/v1/segment", json={"image_id": image_id, "extreme_points": COFFEE_POINTS[:2]})
    assert ok.status_code == 200, f"after {name}, a good request failed: {ok.text}"


def test_body_over_the_upload_limit_is_refused_before_reading(make_client, coffee_bytes):
    client = make_client(max_upload_bytes=10_000)
    for path in ("/v1/images", "/v1/segment", "/v1/cvat"):
        response = client.post(path, content=coffee_bytes)
        assert response.status_code == 413, f"{path}: {response.status_code} {response.text}"
        assert "at most 10,000" in response.json()["error"], response.text


def test_chunked_body_over_the_limit_is_refused(make_client, coffee_bytes):
    client = make_client(max_upload_bytes=10_000)

    def chunks():  # no Content-Length: the limit is counted while reading
        for i in range(0, len(coffee_bytes), 4096):
            yield coffee_bytes[i : i + 4096]

    response = client.post("/v1/images", content=chunks())
    assert response.status_code == 413, response.text


def test_image_over_the_pixel_limit_is_refused(make_client):
    client = make_client(max_image_pixels=1_000_000)
    bomb = _png((2000, 2000))  # 4 megapixels of zeros: a 16 kB file
    assert len(bomb) < 100_000
    response = client.post("/v1/images", content=bomb)
    assert response.status_code == 413, response.text
    assert "2000 x 2000" in response.json()["error"] and "1,000,000" in response.json()["error"], response.text
    small = client.post("/v1/images", content=_png((999, 1000)))
    assert small.status_code == 200, small.text


def test_get_on_a_post_route_is_405_json(make_client):
    response = make_client().get("/v1/segment")
    assert response.status_code == 405 and "error" in response.json(), response.text


def test_random_json_never_gets_a_500(make_client, coffee_bytes):
    """Bodies made of the right keys with values of any JSON type: always 2xx or 4xx."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    client = make_client()
    image_id = client.post("/v1/images", content=coffee_bytes).json()["image_id"]
    scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                       st.text(max_size=8), st.just(image_id), st.just(B64))
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=5), max_leaves=12)
    keys = ["image_id", "image", "extreme_points", "positive_clicks", "negative_clicks", "threshold", "mask_png",
            "pos_points", "neg_points", "obj_bbox"]
    bodies = st.dictionaries(st.sampled_from(keys), value, max_size=6)

    @hypothesis.settings(max_examples=150, deadline=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(body=bodies, path=st.sampled_from(["/v1/segment", "/v1/cvat"]))
    def check(body, path):
        response = client.post(path, json=body)
        assert response.status_code < 500, f"{path} {body!r}: {response.status_code} {response.text}"

    check()
