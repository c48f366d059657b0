"""Interactive segmentation of one object: corrective clicks added and undone one at a time.

A session holds one image and one object's extreme points; every
:meth:`~InteractiveSession.add_click` re-runs the model with all clicks so far and
returns the new :class:`~fairs_sdk.result.Result`; :meth:`~InteractiveSession.undo`
removes the last click and returns the result from before it (kept, not
recomputed). A session is meant for one user at a time: it is not thread-safe,
while the :class:`~fairs_sdk.Segmenter` behind it is.

With a two-part model (:attr:`~fairs_sdk.Segmenter.two_part`) the session runs the
image encoder once per crop box (:meth:`~fairs_sdk.Segmenter.embed`) and each click
runs only the decoder on the new guidance planes. The crop box changes only when a
positive click falls outside the bounding box of the points so far (SPEC 2: the
box is theirs, enlarged by ``relax``): the encoder then runs again on the new crop.
Undo returns to the previous box's embedding, kept with its result.

The session runs the segmenter through its public API only (``encoder``,
``two_part``, :meth:`~fairs_sdk.Segmenter.embed` and
:meth:`~fairs_sdk.Segmenter.predict`). It checks the image and the extreme points
once, when it starts, and each click once, when it is added; the threshold is
checked by :meth:`~fairs_sdk.Segmenter.predict`, once per result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fairs_sdk.result import Result
from fairs_sdk.validation import InputError, Points, check_image, check_points

if TYPE_CHECKING:  # segmenter.py imports this module; this one never imports it at run time
    from fairs_sdk.segmenter import ImageEmbedding, Segmenter

__all__ = ["Click", "InteractiveSession"]


class Click(NamedTuple):
    """One corrective click: (x, y) in image pixels; ``positive`` means "this is object"."""

    x: float
    y: float
    positive: bool


class InteractiveSession:
    """Clicks on one object of one image, each returning the new segmentation.

    Args:
        segmenter: the :class:`~fairs_sdk.Segmenter` to run.
        image: (H, W, 3) uint8 RGB (gray and RGBA converted); checked once here.
        extreme_points: (n, 2) (x, y), n >= 2.
        threshold: as in :meth:`Segmenter.segment` (``None``: the model's own).

    Attributes:
        result: the current :class:`Result` (from the extreme points alone at first).
        clicks: the corrective clicks so far, oldest first.
    """

    def __init__(
        self, segmenter: "Segmenter", image: np.ndarray, extreme_points: Points, threshold: float | None = None
    ) -> None:
        self._segmenter = segmenter
        self._image = check_image(image, segmenter.max_image_pixels)
        self._extreme = check_points(extreme_points, "extreme_points", self._image.shape, min_count=2, distinct=True)
        self._threshold = threshold  # checked by Segmenter.predict, first in the line below
        self._clicks: list[Click] = []
        result, embedding = self._compute([], None)
        self._results: list[Result] = [result]
        #: The embedding each result was decoded from (None without parts); shared while the box stays.
        self._embeddings: list["ImageEmbedding | None"] = [embedding]

    @property
    def image(self) -> np.ndarray:
        """The session's (H, W, 3) uint8 RGB image."""
        return self._image

    @property
    def extreme_points(self) -> np.ndarray:
        """(n, 2) float64 (x, y)."""
        return self._extreme.copy()

    @property
    def clicks(self) -> tuple[Click, ...]:
        return tuple(self._clicks)

    @property
    def result(self) -> Result:
        return self._results[-1]

    @property
    def embedding(self) -> "ImageEmbedding | None":
        """The image encoder's output for the current crop box; None unless the model is two-part."""
        return self._embeddings[-1]

    def _compute(
        self, clicks: list[Click], embedding: "ImageEmbedding | None"
    ) -> tuple[Result, "ImageEmbedding | None"]:
        """The result with ``clicks``, and its embedding: ``embedding`` if the crop box kept, else a new one."""
        pos = np.array([(c.x, c.y) for c in clicks if c.positive], dtype=np.float64).reshape(-1, 2)
        neg = np.array([(c.x, c.y) for c in clicks if not c.positive], dtype=np.float64).reshape(-1, 2)
        seg = self._segmenter
        encoded = seg.encoder.encode(self._image, self._extreme, pos, neg)
        if not seg.two_part:
            (result,) = seg.predict([encoded], self._threshold)
            return result, None
        if embedding is None or embedding.box != encoded.box:
            embedding = seg.embed(encoded)
        (result,) = seg.predict([encoded], self._threshold, embedding=embedding)
        return result, embedding

    def add_click(self, x: float, y: float, positive: bool) -> Result:
        """Add a click at (x, y); ``positive=True`` for "object", ``False`` for "background".

        Returns the new result. A bad click raises :class:`InputError` and changes nothing.
        """
        point = check_points([(x, y)], "positive_click" if positive else "negative_click", self._image.shape)
        click = Click(float(point[0, 0]), float(point[0, 1]), bool(positive))
        result, embedding = self._compute(self._clicks + [click], self._embeddings[-1])
        self._clicks.append(click)
        self._results.append(result)
        self._embeddings.append(embedding)
        return result

    def add_positive(self, x: float, y: float) -> Result:
        """Add a "this is object" click; returns the new result."""
        return self.add_click(x, y, positive=True)

    def add_negative(self, x: float, y: float) -> Result:
        """Add a "this is background" click; returns the new result."""
        return self.add_click(x, y, positive=False)

    def undo(self) -> Result:
        """Remove the last click; returns the result from before it.

        Raises :class:`InputError` when there is no click to undo.
        """
        if not self._clicks:
            raise InputError("no click to undo: the session has only its extreme points")
        self._clicks.pop()
        self._results.pop()
        self._embeddings.pop()
        return self._results[-1]

    def reset(self) -> Result:
        """Remove every click; returns the result of the extreme points alone."""
        del self._clicks[:]
        del self._results[1:]
        del self._embeddings[1:]
        return self._results[0]
