"""What one ``fairs serve`` process accepts and holds: the single place for its limits."""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Limits"]

MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Limits of the HTTP service (and of the CVAT handler, which shares the image checks).

    Attributes:
        max_upload_bytes: largest request body, in bytes (32 MiB, as CVAT's own
            interactors' ``maxRequestBodySize``); an inline base64 image is 4/3 of its file.
            Larger bodies get 413 before they are read.
        max_image_pixels: largest image, W * H, read from the file's header before it is
            decoded (25 megapixels: a 6000 x 4000 photo); larger images get 413.
        cache_images: uploaded images kept, decoded, for ``image_id`` (least recently used
            dropped first); a dropped id gets 404 and the client uploads again.
        cache_bytes: most bytes of decoded pixels the cache holds, whatever the count.
        cache_embeddings: image-encoder outputs kept for later clicks on the same crop, by
            (image, crop box), least recently used dropped first (two-part models only;
            4.7 MB each for the bundled model).
        max_concurrent: segmentations computed at once (threads running the Segmenter).
        max_pending: requests waiting for a thread beyond which new ones get 503.
    """

    max_upload_bytes: int = 32 * MiB
    max_image_pixels: int = 25_000_000
    cache_images: int = 16
    cache_bytes: int = 512 * MiB
    cache_embeddings: int = 32
    max_concurrent: int = 2
    max_pending: int = 32

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "max_pending" else 1):
                raise ValueError(f"Limits.{name} must be a positive integer, got {value!r}")

    def as_dict(self) -> dict[str, int]:
        """The limits as a JSON-ready dict (for ``GET /v1/model``)."""
        return asdict(self)
