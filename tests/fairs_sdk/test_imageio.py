"""fairs_sdk.imageio: image files -> RGB, truncated or corrupt JPEG / PNG refused (issue 13, item 9)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fairs_sdk.imageio import ImageReadError, decode_image, read_image


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    """A smooth 240 x 320 RGB picture (JPEG-compressible, with texture in every row)."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (9, 9), 0)


def encode(picture: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buffer = cv2.imencode(ext, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), list(params))
    assert ok, f"OpenCV could not encode {ext}"
    return buffer.tobytes()


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_png_reads_back_exactly(tmp_path, picture) -> None:
    image = read_image(write(tmp_path, "p.png", encode(picture, ".png")))
    assert image.dtype == np.uint8 and image.shape == (240, 320, 3), f"{image.dtype} {image.shape}"
    assert np.array_equal(image, picture), "a PNG must read back as the RGB pixels written (channel order)"


@pytest.mark.parametrize("params", [(), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), (cv2.IMWRITE_JPEG_RST_INTERVAL, 2)],
                         ids=["baseline", "progressive", "restart-markers"])
def test_complete_jpeg_reads_as_opencv_does(tmp_path, picture, params) -> None:
    path = write(tmp_path, "p.jpg", encode(picture, ".jpg", *params))
    expected = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    assert np.array_equal(read_image(path), expected), "a complete JPEG must decode exactly as cv2.imread"


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_jpeg_is_refused_naming_the_file(tmp_path, picture, keep) -> None:
    data = encode(picture, ".jpg")
    path = write(tmp_path, "cut.jpg", data[: int(len(data) * keep)])
    assert cv2.imread(str(path)) is not None, "premise: OpenCV decodes this truncated JPEG without an error"
    with pytest.raises(ImageReadError, match="truncated") as caught:
        read_image(path)
    assert str(path) in str(caught.value), f"the error must name the file: {caught.value}"


def test_jpeg_cut_just_before_its_end_marker_is_refused(tmp_path, picture) -> None:
    data = encode(picture, ".jpg")
    assert data.endswith(b"\xff\xd9")
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(write(tmp_path, "cut.jpg", data[:-2]))


def test_truncated_progressive_jpeg_is_refused(tmp_path, picture) -> None:
    data = encode(picture, ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(write(tmp_path, "cut.jpg", data[: len(data) * 3 // 4]))


def test_bytes_after_the_jpeg_end_marker_are_allowed(picture) -> None:
    data = encode(picture, ".jpg")
    plain = decode_image(data)
    assert np.array_equal(decode_image(data + b"\x00\x00appended video\xff\xd8"), plain), (
        "data after EOI (Motion Photos) must not change or refuse the image"
    )


def test_truncated_png_is_refused(tmp_path, picture) -> None:
    data = encode(picture, ".png")
    with pytest.raises(ImageReadError, match="truncated"):
        read_image(write(tmp_path, "cut.png", data[: len(data) - 20]))


def test_png_with_a_flipped_bit_is_refused(tmp_path, picture) -> None:
    data = bytearray(encode(picture, ".png"))
    data[len(data) // 2] ^= 0x01
    with pytest.raises(ImageReadError, match="CRC"):
        read_image(write(tmp_path, "flipped.png", bytes(data)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "absent.jpg", "not found"),
        (lambda tmp: tmp, "not a file"),
        (lambda tmp: write(tmp, "empty.png", b""), "empty"),
        (lambda tmp: write(tmp, "text.png", b"this is not an image"), "cannot decode"),
    ],
    ids=["missing", "folder", "empty", "not-an-image"],
)
def test_unreadable_files_are_refused(tmp_path, make, message) -> None:
    path = make(tmp_path)
    with pytest.raises(ImageReadError, match=message) as caught:
        read_image(path)
    assert str(path) in str(caught.value), f"the error must name the file: {caught.value}"


def test_image_read_error_is_a_value_error() -> None:
    assert issubclass(ImageReadError, ValueError), "callers that catch ValueError (the CLIs) must catch it"
