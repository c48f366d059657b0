"""One Segmenter, the images uploaded to it, and its image encoder's outputs kept for later clicks.

A corrective click that keeps the crop box changes only the guidance planes; on a
two-part model (:attr:`~fairs_sdk.Segmenter.two_part`) the image encoder's output for
that crop (:meth:`~fairs_sdk.Segmenter.embed`) is then reused and only the decoder
runs (:meth:`~fairs_sdk.Segmenter.predict` with ``embedding=``), as an
:class:`~fairs_sdk.InteractiveSession` does; but a stateless HTTP request carries all of
its clicks, so the embeddings are kept here, by (image id, crop box), in a bounded LRU.
On the bundled model the decoder alone gives the same probabilities as ``segment``.
A model without parts runs :meth:`~fairs_sdk.Segmenter.segment` on every request.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fairs_sdk.lru import LRUCache
from fairs_sdk.result import Result
from fairs_sdk.serve.images import ImageStore, StoredImage
from fairs_sdk.serve.limits import Limits
from fairs_sdk.validation import Points, check_threshold

if TYPE_CHECKING:
    from fairs_sdk import Segmenter
    from fairs_sdk.segmenter import ImageEmbedding

__all__ = ["Service"]


class Service:
    """What the app and the CVAT handler share: the model, the uploads, the kept embeddings; thread-safe.

    Args:
        segmenter: the model (thread-safe itself).
        limits: bounds of the image store and of the embedding cache.

    Attributes:
        segmenter, limits, images (:class:`~fairs_sdk.serve.images.ImageStore`).
        encoder_runs: how many times the image encoder ran (for tests and logs).
    """

    def __init__(self, segmenter: "Segmenter", limits: Limits | None = None) -> None:
        self.segmenter = segmenter
        self.limits = limits or Limits()
        self.images = ImageStore(self.limits.cache_images, self.limits.cache_bytes, self.limits.max_image_pixels)
        self.encoder_runs = 0
        self._embeddings: LRUCache[tuple[str, tuple[int, int, int, int]], "ImageEmbedding"] = LRUCache(
            self.limits.cache_embeddings
        )
        self._lock = threading.Lock()

    def segment(
        self,
        image: StoredImage,
        extreme_points: Points,
        positive_clicks: Points = (),
        negative_clicks: Points = (),
        threshold: float | None = None,
    ) -> Result:
        """As :meth:`Segmenter.segment` on ``image.rgb``, reusing a kept embedding of the same crop."""
        seg = self.segmenter
        if threshold is not None:
            threshold = check_threshold(threshold)  # before the encoder runs for nothing
        if not seg.two_part:
            return seg.segment(image.rgb, extreme_points, positive_clicks, negative_clicks, threshold=threshold)
        prepared = seg.prepare(image.rgb, extreme_points, positive_clicks, negative_clicks)
        key = (image.image_id, prepared.box)
        embedding = self._embeddings.get(key)
        if embedding is None:
            embedding = seg.embed(prepared)  # no lock held: the encoder takes a while
            self._embeddings.put(key, embedding)
            with self._lock:
                self.encoder_runs += 1
        (result,) = seg.predict([prepared], threshold, embedding=embedding)
        return result
