"""Uploaded image bytes -> (H, W, 3) uint8 RGB, and the bounded store of uploaded images.

The image's size is read from its header (Pillow, which reads no pixels) and
refused above the limit *before* anything is decoded, so a small file that would
decode to gigabytes (a "decompression bomb") costs nothing. The pixels are then
decoded by :func:`fairs_sdk.imageio.decode_image`, as ``fairs segment`` reads files:
truncated JPEG and PNG files are refused, EXIF orientation is applied (as a browser
shows the image), 16-bit and gray images become 8-bit RGB, alpha is dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from fairs_sdk.imageio import ImageReadError
from fairs_sdk.imageio import decode_image as read_bytes
from fairs_sdk.serve.errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedImage
from fairs_sdk.validation import MAX_IMAGE_SIDE

__all__ = ["image_size", "decode_image", "decode_base64", "StoredImage", "ImageStore"]


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) from an image file's header, without decoding its pixels.

    Raises:
        BadRequest: empty bytes.
        UnsupportedImage: bytes that are not an image Pillow recognises.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadRequest("the image is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Image.DecompressionBombError as err:  # Pillow's own limit, far above ours
        raise PayloadTooLarge(f"the image is too large: {err}") from None
    except UnidentifiedImageError:
        raise UnsupportedImage(
            f"the {len(data)} bytes are not an image file of a known format (PNG, JPEG, WebP, BMP, TIFF, ...)"
        ) from None
    except (OSError, ValueError, SyntaxError) as err:  # a known format with a broken header
        raise BadRequest(f"cannot read the image's header: {err}") from None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """An image file's bytes as (H, W, 3) uint8 RGB.

    Args:
        data: the file's bytes (any format Pillow recognises and OpenCV decodes).
        max_pixels: largest W * H accepted.

    Raises:
        BadRequest: empty, truncated or undecodable bytes.
        UnsupportedImage: not an image file.
        PayloadTooLarge: more than ``max_pixels`` pixels, or a side over ``MAX_IMAGE_SIDE``.
    """
    w, h = image_size(data)
    if w * h > max_pixels or max(w, h) > MAX_IMAGE_SIDE:
        raise PayloadTooLarge(
            f"the image is {w} x {h} = {w * h:,} pixels; this server takes at most {max_pixels:,} "
            f"and {MAX_IMAGE_SIDE} per side: downscale it first"
        )
    try:
        rgb = read_bytes(data, f"the {w} x {h} image")
    except ImageReadError as err:
        raise BadRequest(str(err)) from None
    if rgb.shape[0] * rgb.shape[1] != w * h:
        raise BadRequest(f"the image decoded to {rgb.shape[1]} x {rgb.shape[0]} pixels, its header says {w} x {h}")
    return rgb


def decode_base64(text: object, name: str = "image") -> bytes:
    """The bytes of a base64 string (standard alphabet; a ``data:...;base64,`` prefix is allowed).

    Raises:
        BadRequest: ``text`` is not a string of valid base64.
    """
    if not isinstance(text, str):
        raise BadRequest(f"{name} must be a base64 string, got {type(text).__name__}")
    if text.startswith("data:"):
        head, sep, text = text.partition(",")
        if not sep or not head.endswith(";base64"):
            raise BadRequest(f"{name} is a data URL without ';base64,'")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadRequest(f"{name} is not valid base64: {err}") from None


class StoredImage(NamedTuple):
    """An uploaded image: its id (sha256 of the file, 32 hex digits) and (H, W, 3) uint8 RGB pixels."""

    image_id: str
    rgb: np.ndarray


class ImageStore:
    """Decoded uploads by id, least recently used dropped first; thread-safe.

    Bounded by a count and by the bytes of the decoded pixels. The id is a digest of the
    file's bytes, so the same file uploaded twice is decoded once and gets the same id.

    Args:
        max_images: most images kept.
        max_bytes: most bytes of pixels kept (an image larger than this is decoded and
            returned but not kept).
        max_pixels: largest image decoded (see :func:`decode_image`).
    """

    def __init__(self, max_images: int, max_bytes: int, max_pixels: int) -> None:
        self.max_images, self.max_bytes, self.max_pixels = max_images, max_bytes, max_pixels
        self._images: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._images)

    @property
    def nbytes(self) -> int:
        """Bytes of pixels held now."""
        with self._lock:
            return self._bytes

    def add(self, data: bytes) -> StoredImage:
        """Decode ``data`` (or find it already decoded) and keep it; raises as :func:`decode_image`."""
        image_id = hashlib.sha256(data).hexdigest()[:32]
        with self._lock:
            rgb = self._images.get(image_id)
            if rgb is not None:
                self._images.move_to_end(image_id)
                return StoredImage(image_id, rgb)
        rgb = decode_image(data, self.max_pixels)  # outside the lock: decoding takes a while
        rgb.setflags(write=False)  # shared by every request that names it
        with self._lock:
            if image_id not in self._images and rgb.nbytes <= self.max_bytes:
                self._images[image_id] = rgb
                self._bytes += rgb.nbytes
                while len(self._images) > self.max_images or self._bytes > self.max_bytes:
                    _, dropped = self._images.popitem(last=False)
                    self._bytes -= dropped.nbytes
        return StoredImage(image_id, rgb)

    def get(self, image_id: object) -> StoredImage:
        """The image uploaded with this id.

        Raises:
            NotFound: no such id here (never uploaded, or dropped to make room).
        """
        with self._lock:
            rgb = self._images.get(image_id) if isinstance(image_id, str) else None
            if rgb is None:
                raise NotFound(
                    f"unknown image_id {image_id!r}: upload the image again (this server keeps the "
                    f"{self.max_images} most recently used)"
                )
            self._images.move_to_end(image_id)
            return StoredImage(image_id, rgb)
