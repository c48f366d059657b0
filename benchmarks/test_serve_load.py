"""``fairs serve`` under load and bad input, against direct ``Segmenter`` calls.

Run: ``pytest benchmarks/test_serve_load.py -s`` (``-s`` shows the report). It starts
``fairs serve`` (bundled model, default limits but a 4 MiB upload limit and 8 kept
embeddings) in a subprocess on a free port of 127.0.0.1, uploads examples/coffee.png,
and measures:

- ``one_client_new_object`` / ``one_client_click``: one client, one request at a time,
  for a third of ``$FAIRS_SERVE_LOAD_SECONDS`` each: a new object every request (4
  extreme points never seen before, a positive and a negative click: the whole model)
  and corrective clicks on one object (new negative clicks inside its box: on the
  two-part model, the decoder alone on the kept embedding);
- ``load``: ``$FAIRS_SERVE_LOAD_CLIENTS`` (default 8) clients for
  ``$FAIRS_SERVE_LOAD_SECONDS`` (default 5; the README's figures: 30), each in its own
  thread with its own connection, sending new objects back to back (the worst case:
  the encoder on every request), mask PNG included as the page asks, while one more
  client cycles through bad requests (malformed JSON, non-image bytes, points outside
  the image, an unknown image id, a missing field, a body over the upload limit);
- ``direct_segment`` / ``direct_click``: the same work in this process, one call at a
  time, before the server starts (so that they do not share the CPU):
  ``Segmenter.segment`` on new objects, and ``Segmenter.predict`` with the object's
  embedding for the clicks.

Each as requests/s and p50 / p99 latency. Also errors and the server's resident memory
after warm-up (which fills the caches and lets every client be answered once), at the
end and at its highest. Asserted: no
good request fails, every bad one gets its 4xx, the server still answers ``/healthz``,
and its memory grows by less than ``MAX_RSS_GROWTH_MB``. ``$FAIRS_SERVE_LOAD_JSON``
names a file to write the figures to.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

REPO = Path(__file__).resolve().parents[1]
COFFEE = REPO / "examples" / "coffee.png"
SECONDS = float(os.environ.get("FAIRS_SERVE_LOAD_SECONDS", "5"))
CLIENTS = int(os.environ.get("FAIRS_SERVE_LOAD_CLIENTS", "8"))
WARMUP_SECONDS = 2.0
MAX_RSS_GROWTH_MB = 64
#: The server's upload limit in this run, MiB (small, so that the over-limit request is cheap).
UPLOAD_LIMIT_MB = 4
#: Embeddings the server keeps in this run (filled by the warm-up, so memory is measured full).
CACHE_EMBEDDINGS = 8
EXTREME = np.array([(77, 250), (479, 235), (290, 18), (280, 388)], float)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _new_object(rng: np.random.Generator) -> dict:
    """The cup's extreme points moved by up to 8 px (a crop box not seen before), a positive and a negative click."""
    return {
        "extreme_points": (EXTREME + rng.uniform(-8, 8, EXTREME.shape)).round(2).tolist(),
        "positive_clicks": [[float(rng.uniform(250, 330)), float(rng.uniform(100, 160))]],
        "negative_clicks": [[float(rng.uniform(95, 130)), float(rng.uniform(100, 140))]],
    }


def _click(rng: np.random.Generator) -> dict:
    """One more negative click on the cup's own extreme points (the crop box stays)."""
    return {"extreme_points": EXTREME.tolist(),
            "negative_clicks": [[float(rng.uniform(90, 140)), float(rng.uniform(60, 160))]]}


def _summary(latencies: list[float], seconds: float) -> dict:
    ms = np.asarray(latencies) * 1e3
    return {
        "requests": len(ms),
        "requests_per_s": round(len(ms) / seconds, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def _timed(call, make, seconds: float) -> dict:
    """Run ``call(make(rng))`` back to back for ``seconds`` (after 2 untimed calls); the summary."""
    rng = np.random.default_rng(1)
    for _ in range(2):
        call(make(rng))
    latencies, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds:
        arg = make(rng)
        t = time.perf_counter()
        call(arg)
        latencies.append(time.perf_counter() - t)
    return _summary(latencies, time.perf_counter() - start)


@pytest.fixture(scope="module")
def direct() -> dict:
    """The same work through the Segmenter in this process, one call at a time."""
    import cv2

    from fairs_sdk import Segmenter

    seg = Segmenter()
    rgb = cv2.cvtColor(cv2.imread(str(COFFEE)), cv2.COLOR_BGR2RGB)
    out = {"direct_segment": _timed(lambda obj: seg.segment(rgb, **obj), _new_object, SECONDS)}
    if seg.two_part:
        embedding = seg.embed(seg.prepare(rgb, EXTREME))
        out["direct_click"] = _timed(
            lambda obj: seg.predict([seg.prepare(rgb, **obj)], embedding=embedding), _click, SECONDS / 3)
    del seg
    return out


@pytest.fixture(scope="module")
def server(direct):
    """(base URL, pid) of ``fairs serve`` in a subprocess; started after ``direct`` is measured."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fairs_sdk.cli", "serve", "--port", str(port), "--no-access-log",
         "--log-level", "warning", "--max-upload-mb", str(UPLOAD_LIMIT_MB),
         "--cache-embeddings", str(CACHE_EMBEDDINGS)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"fairs serve did not start: {proc.stdout.read()[-2000:]}")
        time.sleep(0.2)
    yield url, proc.pid
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _bad_requests(image_id: str) -> list[tuple[str, dict, int]]:
    """(name, httpx request arguments, expected status)."""
    return [
        ("malformed JSON", {"url": "/v1/segment", "content": b'{"image_id": '}, 400),
        ("non-image bytes", {"url": "/v1/images", "content": b"GIF89a not really"}, 415),
        ("outside the image", {"url": "/v1/segment",
                               "json": {"image_id": image_id, "extreme_points": [[5, 5], [900, 5]]}}, 400),
        ("unknown image id", {"url": "/v1/segment", "json": {"image_id": "f" * 32, "extreme_points": [[5, 5], [9, 9]]}},
         404),
        ("missing field", {"url": "/v1/cvat", "json": {"pos_points": [[1, 1]] * 4}}, 400),
        ("over the upload limit", {"url": "/v1/images", "content": b"\0" * ((UPLOAD_LIMIT_MB << 20) + 1)}, 413),
    ]


def test_serve_under_load_and_bad_input(server, direct):
    url, pid = server
    with httpx.Client(base_url=url, timeout=60) as c:
        image_id = c.post("/v1/images", content=COFFEE.read_bytes()).json()["image_id"]

        def post(obj: dict) -> None:
            r = c.post("/v1/segment", json={"image_id": image_id, "mask_png": True, **obj})
            assert r.status_code == 200, r.text

        rng = np.random.default_rng(2)
        for _ in range(CACHE_EMBEDDINGS + 2):  # warm-up: fill the embedding cache
            post(_new_object(rng))
        one_new = _timed(post, _new_object, SECONDS / 3)
        one_click = _timed(post, _click, SECONDS / 3)

    stop, measuring = threading.Event(), threading.Event()
    latencies: list[float] = []
    errors: list[str] = []
    bad_results: list[str] = []
    bad_count = [0]
    completed = [0]  # good requests answered, warm-up included

    def good_client(index: int) -> None:
        rng = np.random.default_rng(100 + index)
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                body = {"image_id": image_id, "mask_png": True, **_new_object(rng)}
                t = time.perf_counter()
                try:
                    r = c.post("/v1/segment", json=body)
                    ok = r.status_code == 200 and r.json()["area"] > 0
                    if not ok:
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as err:
                    errors.append(f"{type(err).__name__}: {err}")
                    ok = False
                completed[0] += 1
                if ok and measuring.is_set():
                    latencies.append(time.perf_counter() - t)

    def bad_client() -> None:
        cases = _bad_requests(image_id)
        k = 0
        while not stop.is_set():
            name, request, status = cases[k % len(cases)]
            with httpx.Client(base_url=url, timeout=60) as c:  # a fresh connection: 413 may close it
                try:
                    r = c.post(**request)
                    if r.status_code != status or "error" not in r.json():
                        bad_results.append(f"{name}: {r.status_code} {r.text[:200]}")
                except httpx.HTTPError as err:
                    bad_results.append(f"{name}: {type(err).__name__}: {err}")
            bad_count[0] += 1
            k += 1
            time.sleep(0.05)

    threads = [threading.Thread(target=good_client, args=(i,)) for i in range(CLIENTS)]
    threads.append(threading.Thread(target=bad_client))
    for t in threads:
        t.start()
    # Warm-up: every client answered once, so both worker threads have run at once (ONNX Runtime
    # allocates its buffers for concurrent runs then), and at least WARMUP_SECONDS.
    warmup_start = time.monotonic()
    while completed[0] < CLIENTS or time.monotonic() - warmup_start < WARMUP_SECONDS:
        assert time.monotonic() - warmup_start < 300, "the load warm-up did not finish in 300 s"
        time.sleep(0.1)
    rss_start = rss_max = _rss_mb(pid)
    measuring.set()
    start = time.perf_counter()
    while time.perf_counter() - start < SECONDS:
        time.sleep(0.5)
        rss_max = max(rss_max, _rss_mb(pid))
    measuring.clear()
    elapsed = time.perf_counter() - start
    stop.set()
    for t in threads:
        t.join(120)
    rss_end = _rss_mb(pid)
    health = httpx.get(url + "/healthz", timeout=10)

    report = {
        "seconds": round(elapsed, 1),
        "clients": CLIENTS,
        "load": _summary(latencies, elapsed),
        "one_client_new_object": one_new,
        "one_client_click": one_click,
        **direct,
        "errors": len(errors),
        "bad_requests": bad_count[0],
        "bad_requests_wrong_answer": len(bad_results),
        "server_rss_mb": {"after_warmup": round(rss_start, 1), "end": round(rss_end, 1), "max": round(rss_max, 1)},
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    print("\nfairs serve load test:", json.dumps(report, indent=1))
    if os.environ.get("FAIRS_SERVE_LOAD_JSON"):
        Path(os.environ["FAIRS_SERVE_LOAD_JSON"]).write_text(json.dumps(report, indent=1) + "\n")
    assert not errors, f"{len(errors)} good requests failed, e.g. {errors[:3]}"
    assert not bad_results, f"bad requests answered wrongly: {bad_results[:3]}"
    assert bad_count[0] > 0 and latencies, "no traffic"
    assert health.status_code == 200, "the server stopped answering /healthz"
    assert rss_max - rss_start < MAX_RSS_GROWTH_MB, f"server memory grew {rss_max - rss_start:.0f} MB under load"
