"""Errors of the service that a client caused (or a full queue): each carries its HTTP status.

The app turns a :class:`ServeError` into ``{"error": message}`` with ``status``; the
nuclio handler does the same through ``context.Response``. The runtime's own
:class:`~fairs_sdk.InputError` (bad points, threshold, image array) maps to 400.
"""

from __future__ import annotations

__all__ = ["ServeError", "BadRequest", "NotFound", "PayloadTooLarge", "UnsupportedImage", "Unprocessable", "Busy"]


class ServeError(Exception):
    """A request the service refuses; ``status`` is the HTTP status, ``str(error)`` the message."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ServeError):
    """Malformed JSON, a missing or mistyped field, bytes that are not an image (400)."""

    status = 400


class NotFound(ServeError):
    """An ``image_id`` the cache does not hold (never uploaded, or dropped) (404)."""

    status = 404


class PayloadTooLarge(ServeError):
    """A body over ``Limits.max_upload_bytes`` or an image over ``Limits.max_image_pixels`` (413)."""

    status = 413


class UnsupportedImage(ServeError):
    """Bytes in an image format the service does not decode (415)."""

    status = 415


class Unprocessable(ServeError):
    """Well-formed JSON whose fields are missing, unknown or of the wrong type or range (422)."""

    status = 422


class Busy(ServeError):
    """More requests waiting than ``Limits.max_pending`` (503); retry later."""

    status = 503
