"""The ASGI app of ``fairs serve`` (FastAPI): one Segmenter shared by every request.

Routes (all JSON unless said otherwise; every refusal is ``{"error": message}`` with
a 4xx status, or 503 when the queue is full; never a 500 for bad input):

- ``GET /``: the web page (``static/index.html``, its script and style sheet).
- ``GET /healthz``: ``{"status": "ok"}``.
- ``GET /v1/model``: version, model file, backend, providers, input spec, limits.
- ``POST /v1/images``: the body is an image file's bytes; returns ``{"image_id",
  "width", "height"}``. The decoded image is kept (bounded LRU, see :class:`Limits`).
- ``POST /v1/segment``: :class:`SegmentRequest`; returns
  :func:`~fairs_sdk.serve.payload.result_payload` plus ``image_id``.
- ``POST /v1/cvat``: CVAT's interactor request and response (:mod:`fairs_sdk.serve.cvat`).

The Segmenter is thread-safe; segmentations run in worker threads, at most
``Limits.max_concurrent`` at once, with at most ``Limits.max_pending`` more waiting.
A click that keeps the crop box reuses the image encoder's output of an earlier
request on a two-part model (:class:`~fairs_sdk.serve.service.Service`).
No route reads a file that a client names: the page's three files are read once,
from the package, when the app is built.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from importlib import resources
from typing import Any, Callable, TypeVar

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

import fairs_sdk
from fairs_sdk.serve import cvat
from fairs_sdk.serve.errors import BadRequest, Busy, PayloadTooLarge, ServeError, Unprocessable
from fairs_sdk.serve.images import decode_base64
from fairs_sdk.serve.limits import Limits
from fairs_sdk.serve.payload import result_payload
from fairs_sdk.serve.service import Service
from fairs_sdk.validation import InputError

__all__ = ["SegmentRequest", "create_app", "model_info"]

log = logging.getLogger("fairs_sdk.serve")
T = TypeVar("T")

#: Most points in each list of a request (extreme points, positive, negative clicks).
MAX_POINTS = 256

Point = tuple[float, float]


class SegmentRequest(BaseModel):
    """Body of ``POST /v1/segment``. Points are (x, y) image pixels, pixel centres on integers (SPEC 1).

    Give the image either by ``image_id`` (from ``POST /v1/images`` or an earlier
    response) or inline as ``image`` (base64 of the file, a ``data:`` URL allowed; it is
    then kept too, and the response's ``image_id`` names it).
    """

    model_config = ConfigDict(extra="forbid")

    image_id: str | None = Field(None, max_length=64)
    image: str | None = None
    extreme_points: list[Point] = Field(..., max_length=MAX_POINTS)
    positive_clicks: list[Point] = Field(default_factory=list, max_length=MAX_POINTS)
    negative_clicks: list[Point] = Field(default_factory=list, max_length=MAX_POINTS)
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    mask_png: bool = False


class _Gate:
    """At most ``concurrent`` calls in worker threads, at most ``pending`` more waiting, then :class:`Busy`."""

    def __init__(self, concurrent: int, pending: int) -> None:
        self.concurrent, self.capacity = concurrent, concurrent + pending
        self.active = 0  # touched only on the event loop's thread
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.active >= self.capacity:
            raise Busy(f"{self.active} requests in progress or waiting (the limit); retry shortly")
        if self._limiter is None:  # made on the event loop
            self._limiter = anyio.CapacityLimiter(self.concurrent)
        self.active += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        finally:
            self.active -= 1


async def _read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest(f"Content-Length is not a number: {declared[:40]!r}")
        if int(declared) > limit:
            raise PayloadTooLarge(f"the body is {int(declared):,} bytes; this server takes at most {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds {limit:,} bytes, the most this server takes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("the body is empty; send JSON")
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as err:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise BadRequest(f"the body is not valid JSON: {str(err)[:200]}") from None


def _validation_message(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        where = ".".join(str(p) for p in e["loc"]) or "body"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def model_info(segmenter: "fairs_sdk.Segmenter", limits: Limits) -> dict[str, Any]:
    """What ``GET /v1/model`` returns: the SDK version, model, backend, providers, input spec, limits."""
    meta = segmenter.metadata
    return {
        "version": fairs_sdk.__version__,
        "model": segmenter.model_path.name,
        "backend": segmenter.backend.name,
        "providers": list(segmenter.providers),
        "two_part": segmenter.two_part,
        "input_spec": json.loads(json.dumps(dataclasses.asdict(segmenter.spec))),
        "backbone": meta.backbone,
        "head": meta.head,
        "precision": meta.precision,
        "format_version": meta.format_version,
        "limits": {**limits.as_dict(), "max_points": MAX_POINTS},
        "cvat": {"extreme_points": cvat.EXTREME_POINTS},
    }


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package: URL path -> (bytes, media type)."""
    folder = resources.files("fairs_sdk.serve") / "static"
    return {
        "/": ((folder / "index.html").read_bytes(), "text/html; charset=utf-8"),
        "/static/app.js": ((folder / "app.js").read_bytes(), "text/javascript; charset=utf-8"),
        "/static/style.css": ((folder / "style.css").read_bytes(), "text/css; charset=utf-8"),
    }


def create_app(segmenter: "fairs_sdk.Segmenter", limits: Limits | None = None) -> FastAPI:
    """The app serving ``segmenter`` under ``limits`` (default :class:`Limits`)."""
    service = Service(segmenter, limits)
    limits, images = service.limits, service.images
    gate = _Gate(limits.max_concurrent, limits.max_pending)
    info = model_info(segmenter, limits)
    app = FastAPI(title="fairs serve", version=fairs_sdk.__version__, redoc_url=None,
                  description="FAIRS object segmentation from extreme points and corrective clicks.")
    app.state.service = service

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, err: ServeError) -> JSONResponse:
        return JSONResponse({"error": err.message}, status_code=err.status)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, err: InputError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _request_error(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": str(err.errors()[:5])}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, status_code=err.status_code, headers=err.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(err).__name__}"}, status_code=500)

    for path, (content, media_type) in _static_files().items():
        def page(content: bytes = content, media_type: str = media_type) -> Response:
            return Response(content, media_type=media_type, headers={"Cache-Control": "no-cache"})

        app.add_api_route(path, page, methods=["GET"], include_in_schema=False)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model")
    def model() -> dict[str, Any]:
        return info

    @app.post("/v1/images", openapi_extra={"requestBody": {
        "required": True, "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def upload(request: Request) -> dict[str, Any]:
        """Upload an image file (the raw bytes as the body); returns its ``image_id`` and size."""
        body = await _read_body(request, limits.max_upload_bytes)
        stored = await gate.run(images.add, body)
        h, w = stored.rgb.shape[:2]
        return {"image_id": stored.image_id, "width": w, "height": h}

    def run_segment(body: bytes) -> dict[str, Any]:
        try:
            req = SegmentRequest.model_validate(_parse_json(body))
        except ValidationError as err:
            raise Unprocessable(_validation_message(err)) from None
        if (req.image is None) == (req.image_id is None):
            raise BadRequest("give exactly one of 'image_id' (from POST /v1/images) and 'image' (base64)")
        stored = images.get(req.image_id) if req.image is None else images.add(decode_base64(req.image))
        result = service.segment(stored, req.extreme_points, req.positive_clicks, req.negative_clicks, req.threshold)
        return {"image_id": stored.image_id, **result_payload(result, with_png=req.mask_png)}

    def run_cvat(body: bytes) -> dict[str, Any]:
        return cvat.handle(_parse_json(body), service)

    # Parsing (up to max_upload_bytes of JSON and base64) runs in the worker threads too, off the event loop.
    @app.post("/v1/segment", openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": SegmentRequest.model_json_schema()}}}})
    async def segment(request: Request) -> dict[str, Any]:
        """Segment one object from its extreme points and clicks."""
        return await gate.run(run_segment, await _read_body(request, limits.max_upload_bytes))

    @app.post("/v1/cvat")
    async def cvat_interactor(request: Request) -> dict[str, Any]:
        """CVAT's interactor call: ``image``, ``pos_points`` (4 extreme points first), ``neg_points``."""
        return await gate.run(run_cvat, await _read_body(request, limits.max_upload_bytes))

    return app
