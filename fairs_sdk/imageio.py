"""Image files -> (H, W, 3) uint8 RGB for the runtime, or an :class:`ImageReadError` naming the file.

OpenCV decodes the pixels (EXIF orientation applied; 16-bit and gray images become
8-bit RGB, alpha is dropped). Before that, JPEG and PNG files are checked for
completeness, because libjpeg decodes a truncated JPEG without an error: it prints
"Premature end of JPEG file" on the process's stderr and fills the missing rows with
gray, which would be segmented as if it were the photo.

- JPEG: the marker segments are walked from SOI to EOI (each segment's length, then
  each scan's entropy-coded data up to its next marker); a file that ends before its
  EOI marker is truncated. Bytes after EOI (a Motion Photo's video, ...) are allowed.
- PNG: the chunks are walked from the signature to IEND, each chunk's CRC checked.

Other formats (WebP, BMP, TIFF, ...) are left to OpenCV, whose decoders fail on a
truncated file.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path

import cv2
import numpy as np

__all__ = ["ImageReadError", "read_image", "decode_image", "check_complete"]

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: In entropy-coded JPEG data a 0xFF byte is followed by 0x00 (stuffing) or a restart marker
#: (0xD0-0xD7); anything else after 0xFF is the next marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7]")
#: JPEG markers without a length field: TEM, RST0-7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8, 0xD9})


class ImageReadError(ValueError):
    """An image file that is missing, unreadable, truncated, corrupt or not an image."""


def _jpeg_problem(data: bytes) -> str | None:
    """None if the JPEG ``data`` runs from SOI to EOI; else what is wrong with it."""
    n, pos = len(data), 2
    while True:
        pos = data.find(b"\xff", pos)  # libjpeg skips stray bytes before a marker too
        while 0 <= pos < n and data[pos] == 0xFF:  # fill bytes before the marker code
            pos += 1
        if pos < 0 or pos >= n:
            return "truncated: the file ends before the JPEG end-of-image marker"
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return None
        if marker in _STANDALONE:
            continue
        if pos + 2 > n:
            return "truncated: the file ends inside a JPEG segment header"
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            return f"corrupt: JPEG segment 0xFF{marker:02X} at byte {pos - 2} has length {length}"
        pos += length
        if pos > n:
            return f"truncated: the file ends inside a JPEG segment (0xFF{marker:02X})"
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                return "truncated: the file ends inside the JPEG image data"
            pos = found.start()


def _png_problem(data: bytes) -> str | None:
    """None if the PNG ``data`` runs from its signature to IEND with every chunk's CRC right."""
    n, pos = len(data), len(_PNG_SIGNATURE)
    while True:
        if pos + 8 > n:
            return "truncated: the file ends before the PNG IEND chunk"
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 8 + length + 4
        if end > n:
            return f"truncated: the file ends inside the PNG {kind.decode('latin-1')!r} chunk"
        crc = int.from_bytes(data[end - 4 : end], "big")
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            return f"corrupt: the CRC of the PNG {kind.decode('latin-1')!r} chunk at byte {pos} is wrong"
        if kind == b"IEND":
            return None
        pos = end


def check_complete(data: bytes, source: str = "image") -> None:
    """Raise :class:`ImageReadError` if ``data`` is a JPEG or PNG file that is truncated or corrupt.

    Other formats pass unchecked (their OpenCV decoders fail on truncated data).
    """
    if data.startswith(_JPEG_SOI):
        problem = _jpeg_problem(data)
    elif data.startswith(_PNG_SIGNATURE):
        problem = _png_problem(data)
    else:
        return
    if problem is not None:
        raise ImageReadError(f"{source} is {problem} ({len(data)} bytes)")


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """An image file's bytes as (H, W, 3) uint8 RGB.

    ``source`` names the data in errors (a path, "the upload").

    Raises:
        ImageReadError: empty, truncated, corrupt, or not an image OpenCV decodes.
    """
    if not data:
        raise ImageReadError(f"{source} is empty (0 bytes)")
    check_complete(data, source)
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.ndim != 3 or bgr.size == 0:
        raise ImageReadError(f"cannot decode {source} as an image (not an image file, or truncated or corrupt)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of the image file ``path`` (PNG, JPEG, WebP, BMP, TIFF, ...).

    Raises:
        ImageReadError: no such file, a folder, unreadable, empty, truncated, corrupt, or
            not an image; the message names ``path``.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"image not found: {path}")
    if not path.is_file():
        raise ImageReadError(f"image path is not a file: {path}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageReadError(f"cannot read image {path}: {error.strerror or error}") from None
    return decode_image(data, str(path))
