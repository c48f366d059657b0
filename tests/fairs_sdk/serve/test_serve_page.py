"""The web page in a real browser (headless Chromium through Selenium), against a live server.

The server runs in a thread on a free local port. The test opens examples/coffee.png
with the page's file picker, clicks the 4 extreme points and one right-click
correction on the canvas (shown smaller than the image, so the page must map CSS
pixels to image pixels), and checks that the page sent those points, that its mask
is ``Segmenter.segment``'s on the same input, and that the canvas shows it. Then undo,
reset, the two downloads, and clicks after the server dropped the image from its
cache (the page uploads it again).

Skips, saying why, without Selenium or Debian's ``chromium`` and ``chromedriver``.
With ``FAIRS_UPDATE_SCREENSHOT=1`` the screenshot is also written to docs/serve/page.png.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
import time

import cv2
import numpy as np
import pytest
from serve_helpers import COFFEE, COFFEE_POINTS, REPO, TABLE, decode_png

from fairs_sdk.result import mask_to_rle

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
)
SCREENSHOT = REPO / "docs" / "serve" / "page.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(serve_segmenter):
    """Base URL of ``fairs serve``'s app under uvicorn, in a thread, on a free port."""
    import uvicorn

    from fairs_sdk.serve.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(serve_segmenter), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=560,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # no Selenium Manager download
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def _wait(driver, condition: str, what: str, timeout: float = 60.0):
    """Poll the JS expression ``condition`` (on ``s = window.fairs.snapshot()``) until truthy; return s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = driver.execute_script(f"const s = window.fairs.snapshot(); return ({condition}) ? s : null;")
        if snap is not None:
            return snap
        time.sleep(0.1)
    last = driver.execute_script("return window.fairs.snapshot();")
    raise AssertionError(f"timed out waiting for {what}; page state: {json.dumps(last)[:500]}")


def _click(driver, canvas, x: float, y: float, right: bool = False) -> tuple[float, float]:
    """Click the viewport pixel nearest to where image pixel (x, y) is shown on the canvas.

    Returns the image point that pixel is, by the page's documented mapping
    (x = u * W / w - 0.5 for a click u CSS pixels right of the canvas's left edge, shown w
    CSS pixels wide, of an image W pixels wide), worked out here from the canvas's box.
    """
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    left, top, width, height = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];", canvas)
    w, h = driver.execute_script("return [arguments[0].width, arguments[0].height];", canvas)
    u = round(left + (x + 0.5) * width / w)  # viewport pixels: integers
    v = round(top + (y + 0.5) * height / h)
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(u, v)
    (actions.pointer_action.context_click() if right else actions.pointer_action.click())
    actions.perform()
    return (u - left) * w / width - 0.5, (v - top) * h / height - 0.5


def _canvas_pixels(driver, canvas) -> np.ndarray:
    url = driver.execute_script("return arguments[0].toDataURL('image/png');", canvas)
    data = base64.b64decode(url.split(",", 1)[1])
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_page_clicks_give_segmenters_mask(server, browser, serve_segmenter, coffee, tmp_path):
    from selenium.webdriver.common.by import By

    driver = browser
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.get(server + "/")
    driver.find_element(By.ID, "file").send_keys(str(COFFEE))
    _wait(driver, "s.imageId !== null", "the upload")
    canvas = driver.find_element(By.ID, "view")
    shown = driver.execute_script("return arguments[0].getBoundingClientRect().width;", canvas)
    assert shown < 600, f"the canvas should be shown smaller than the image at this window size, is {shown} px"
    tolerance = 0.5 * 600 / shown  # half a CSS pixel (rounding to the viewport's pixels), in image pixels

    clicked = [_click(driver, canvas, x, y) for x, y in COFFEE_POINTS]
    first = _wait(driver, "s.pending === 0 && s.result && s.extreme.length === 4", "the first mask")
    clicked.append(_click(driver, canvas, *TABLE, right=True))
    snap = _wait(driver, "s.pending === 0 && s.result && s.result.request.negative_clicks.length === 1",
                 "the mask after the correction")
    assert snap["error"] is None, snap["error"]

    extreme, negative = np.array(snap["extreme"]), np.array(snap["negative"])
    sent = np.vstack([extreme, negative])
    assert np.allclose(sent, clicked, atol=1e-6), f"the page mapped the clicks to {sent.tolist()}, expected {clicked}"
    err = np.abs(sent - np.array([*COFFEE_POINTS, TABLE])).max()
    assert err <= tolerance, f"clicks landed {err:.2f} image px from where they were aimed (allowed {tolerance:.2f})"
    assert snap["positive"] == []
    want = serve_segmenter.segment(coffee, extreme, negative_clicks=negative)
    result = snap["result"]
    assert result["rle"] == mask_to_rle(want.mask), "the page's mask (RLE) differs from Segmenter.segment's"
    assert np.array_equal(decode_png(result["mask_png"]), want.mask), "the page's mask PNG differs"
    assert first["result"]["rle"] != result["rle"], "the correction did not change the mask"

    # The canvas shows it: tinted inside the mask, the photo itself away from the mask and the points.
    pixels = _canvas_pixels(driver, canvas).astype(int)
    away = ~cv2.dilate(want.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    for x, y in [*COFFEE_POINTS, TABLE]:
        away[max(0, y - 15) : y + 16, max(0, x - 15) : x + 16] = False
    assert np.abs(pixels - coffee)[away].max() == 0, "the canvas changed pixels outside the mask"
    inside = want.mask.copy()
    for x, y in [*COFFEE_POINTS, TABLE]:
        inside[max(0, y - 15) : y + 16, max(0, x - 15) : x + 16] = False
    assert np.abs(pixels - coffee)[inside].sum(axis=1).min() > 0, "some mask pixels are not tinted on the canvas"

    driver.set_window_size(1000, 760)  # the screenshot at full size
    time.sleep(0.5)
    driver.save_screenshot(str(tmp_path / "page.png"))
    if os.environ.get("FAIRS_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "page.png", SCREENSHOT)

    driver.find_element(By.ID, "download-mask").click()
    driver.find_element(By.ID, "download-coco").click()
    deadline = time.monotonic() + 20
    while not ((downloads / "coffee_mask.png").is_file() and (downloads / "coffee.json").is_file()):
        assert time.monotonic() < deadline, f"downloads missing: {sorted(p.name for p in downloads.iterdir())}"
        time.sleep(0.1)
    time.sleep(0.3)  # let Chromium finish writing
    png = cv2.imread(str(downloads / "coffee_mask.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(png > 127, want.mask), "the downloaded mask PNG differs"
    coco = json.loads((downloads / "coffee.json").read_text())
    (ann,) = coco["annotations"]
    assert ann["segmentation"] == mask_to_rle(want.mask) and ann["area"] == want.area
    x0, y0, x1, y1 = want.bbox()
    assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0], ann["bbox"]
    assert coco["images"][0]["width"] == 600 and coco["images"][0]["height"] == 400

    driver.find_element(By.ID, "undo").click()
    undone = _wait(driver, "s.negative.length === 0", "undo")
    assert undone["result"]["rle"] == first["result"]["rle"], "undo did not bring back the 4-point mask"
    driver.find_element(By.ID, "reset").click()
    reset = _wait(driver, "s.extreme.length === 0", "reset")
    assert reset["result"] is None
    assert np.abs(_canvas_pixels(driver, canvas).astype(int) - coffee).max() == 0, "reset left marks on the canvas"

    # The server drops the photo from its cache (16 newer uploads): the page uploads it again by itself.
    import httpx

    rng = np.random.default_rng(0)
    for _ in range(16):
        other = cv2.imencode(".png", rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))[1].tobytes()
        assert httpx.post(server + "/v1/images", content=other).status_code == 200
    gone = httpx.post(server + "/v1/segment", json={"image_id": reset["imageId"], "extreme_points": COFFEE_POINTS})
    assert gone.status_code == 404, "the photo should have been dropped from the server's cache"
    for x, y in COFFEE_POINTS:
        _click(driver, canvas, x, y)
    again = _wait(driver, "s.pending === 0 && (s.result || s.error)", "the mask after the re-upload")
    assert again["result"] is not None, f"no mask after the server dropped the image: {again['error']}"
    want = serve_segmenter.segment(coffee, again["extreme"])  # the window is wider now: other sub-pixel points
    assert again["result"]["rle"] == mask_to_rle(want.mask), "the re-uploaded photo gave another mask"
