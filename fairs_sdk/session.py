"""Interactive segmentation of one object: corrective clicks added and undone one at a time.

A session holds one image and one object's extreme points; every
:meth:`~InteractiveSession.add_click` re-runs the model with all clicks so far and
returns the new :class:`~fairs_sdk.result.Result`; :meth:`~InteractiveSession.undo`
removes the last click and returns the result from before it. A session is meant
for one user at a time: it is not thread-safe, while the
:class:`~fairs_sdk.Segmenter` behind it is.

Memory does not grow with the number of clicks beyond the click list. The session
works on its own copy of the image (changing the caller's array afterwards changes
nothing), keeps one full-size result (the current one), and for undo the model's
(S, S) canvas output of the start and of the last :data:`UNDO_CACHE` states (400 KB
each at S = 320): undo rebuilds the result from it without running the model, and
runs it again only past that depth. A session holds at most :data:`MAX_POINTS`
positive and as many negative clicks.

With a two-part model (:attr:`~fairs_sdk.Segmenter.two_part`) the session runs the
image encoder once per crop box (:meth:`~fairs_sdk.Segmenter.embed`) and each click
runs only the decoder on the new guidance planes. The crop box changes only when a
positive click falls outside the bounding box of the points so far (SPEC 2: the
box is theirs, enlarged by ``relax``, and for fewer than four extreme points by
``partial_relax`` of its longer side too, on the sides ``partial_relax_sides`` names):
the encoder then runs again on the new crop.
The embeddings of the last :data:`EMBEDDING_CACHE` crop boxes are kept, so undoing a
click that moved the box does not run the encoder.

The session runs the segmenter through its public API only (``encoder``,
``two_part``, :meth:`~fairs_sdk.Segmenter.run`, :meth:`~fairs_sdk.Segmenter.embed`,
:meth:`~fairs_sdk.Segmenter.decode` and :meth:`~fairs_sdk.Segmenter.postprocess`). It
checks the image and the extreme points once, when it starts, and each click once,
when it is added; the threshold is checked by
:meth:`~fairs_sdk.Segmenter.postprocess`, once per result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fairs_sdk.encoder import Encoded
from fairs_sdk.lru import LRUCache
from fairs_sdk.result import Result
from fairs_sdk.validation import MAX_POINTS, InputError, Points, check_click, check_image, check_points

if TYPE_CHECKING:  # segmenter.py imports this module; this one never imports it at run time
    from fairs_sdk.segmenter import ImageEmbedding, Segmenter

__all__ = ["Click", "InteractiveSession", "UNDO_CACHE", "EMBEDDING_CACHE"]

#: States (after the start) whose canvas output a session keeps, so that undo to them
#: runs no model; undo further back runs it again.
UNDO_CACHE = 16
#: Crop boxes whose image-encoder output a session keeps (two-part models).
EMBEDDING_CACHE = 3


class Click(NamedTuple):
    """One corrective click: (x, y) in image pixels; ``positive`` means "this is object"."""

    x: float
    y: float
    positive: bool


class _Output(NamedTuple):
    """What one state's result is rebuilt from: the model's (S, S) canvas and where it goes.

    Has the ``box`` and ``image_shape`` that :meth:`Segmenter.postprocess` reads.
    """

    canvas: np.ndarray
    box: tuple[int, int, int, int]
    image_shape: tuple[int, int]


class InteractiveSession:
    """Clicks on one object of one image, each returning the new segmentation.

    Args:
        segmenter: the :class:`~fairs_sdk.Segmenter` to run.
        image: (H, W, 3) uint8 RGB (gray and RGBA converted); checked and copied once here.
        extreme_points: (n, 2) (x, y), 2 <= n <= ``MAX_POINTS``.
        threshold: as in :meth:`Segmenter.segment` (``None``: the model's own).

    Raises:
        InputError: a malformed image, extreme points or threshold (a ``ValueError``).

    Attributes:
        result: the current :class:`Result` (from the extreme points alone at first).
        clicks: the corrective clicks so far, oldest first.
    """

    def __init__(
        self, segmenter: "Segmenter", image: np.ndarray, extreme_points: Points, threshold: float | None = None
    ) -> None:
        self._segmenter = segmenter
        rgb = check_image(image, segmenter.max_image_pixels)
        if np.may_share_memory(rgb, image):
            rgb = rgb.copy()  # the caller may change its array later: later masks must not follow
        rgb.flags.writeable = False
        self._image = rgb
        self._extreme = check_points(extreme_points, "extreme_points", rgb.shape, min_count=2, distinct=True)
        self._threshold = threshold  # checked by Segmenter.postprocess, first in the line below
        self._clicks: list[Click] = []
        #: Image-encoder outputs by crop box, the last EMBEDDING_CACHE used (two-part models).
        self._embeddings: LRUCache[tuple[int, int, int, int], "ImageEmbedding"] = LRUCache(EMBEDDING_CACHE)
        self._result, output = self._compute([])
        #: One entry per state (0 clicks, 1 click, ...): its canvas output, or None once past UNDO_CACHE.
        self._outputs: list[_Output | None] = [output]

    @property
    def image(self) -> np.ndarray:
        """The session's own (H, W, 3) uint8 RGB image (read-only)."""
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
        return self._result

    @property
    def embedding(self) -> "ImageEmbedding | None":
        """The image encoder's output for the current crop box; None unless the model is two-part.

        Kept for the last :data:`EMBEDDING_CACHE` boxes; computed again when it was dropped.
        """
        if not self._segmenter.two_part:
            return None
        return self._embedding(self._encode(self._clicks))

    def _encode(self, clicks: list[Click]) -> Encoded:
        pos = np.array([(c.x, c.y) for c in clicks if c.positive], dtype=np.float64).reshape(-1, 2)
        neg = np.array([(c.x, c.y) for c in clicks if not c.positive], dtype=np.float64).reshape(-1, 2)
        return self._segmenter.encoder.encode(self._image, self._extreme, pos, neg)

    def _embedding(self, encoded: Encoded) -> "ImageEmbedding":
        """The embedding of ``encoded``'s crop box: kept, or computed and kept (the last EMBEDDING_CACHE)."""
        embedding = self._embeddings.get(encoded.box)
        if embedding is None:
            embedding = self._segmenter.embed(encoded)
            self._embeddings.put(encoded.box, embedding)
        return embedding

    def _compute(self, clicks: list[Click]) -> tuple[Result, _Output]:
        """The result with ``clicks`` and the canvas output it was made from."""
        seg = self._segmenter
        encoded = self._encode(clicks)
        if seg.two_part:
            canvas = seg.decode([encoded], self._embedding(encoded))[0, 0]
        else:
            canvas = seg.run(encoded.input[None])[0, 0]
        output = _Output(np.array(canvas, dtype=np.float32), encoded.box, encoded.image_shape)
        return self._rebuild(output), output

    def _rebuild(self, output: _Output) -> Result:
        return self._segmenter.postprocess(output.canvas, output, self._threshold)

    def add_click(self, x: float, y: float, positive: bool) -> Result:
        """Add a click at (x, y); ``positive=True`` for "object", ``False`` for "background".

        ``x`` and ``y`` are ints or floats inside the image, ``positive`` a bool
        (Python or NumPy); anything else (``"no"``, 1, ``"3.5"``, ``True`` as a
        coordinate) is refused. Returns the new result.

        Raises:
            InputError: a malformed click, or the session already holds ``MAX_POINTS``
                clicks of that kind; the session is then unchanged.
        """
        x, y, positive = check_click(x, y, positive, self._image.shape)
        if sum(c.positive == positive for c in self._clicks) >= MAX_POINTS:
            kind = "positive" if positive else "negative"
            raise InputError(f"the session already holds {MAX_POINTS} {kind} clicks, the most accepted (MAX_POINTS)")
        clicks = self._clicks + [Click(x, y, positive)]
        result, output = self._compute(clicks)
        self._clicks = clicks
        self._outputs.append(output)
        past = len(self._outputs) - 2 - UNDO_CACHE  # the state UNDO_CACHE + 1 clicks back
        if past > 0:  # the start's output stays, for reset()
            self._outputs[past] = None
        self._result = result
        return result

    def add_positive(self, x: float, y: float) -> Result:
        """Add a "this is object" click; returns the new result."""
        return self.add_click(x, y, positive=True)

    def add_negative(self, x: float, y: float) -> Result:
        """Add a "this is background" click; returns the new result."""
        return self.add_click(x, y, positive=False)

    def undo(self) -> Result:
        """Remove the last click; returns the result from before it.

        Rebuilt from the kept canvas output (no model run) for the last
        :data:`UNDO_CACHE` states, recomputed further back.

        Raises:
            InputError: there is no click to undo.
        """
        if not self._clicks:
            raise InputError("no click to undo: the session has only its extreme points")
        clicks = self._clicks[:-1]
        output = self._outputs[-2]
        if output is None:
            result, output = self._compute(clicks)
        else:
            result = self._rebuild(output)
        self._clicks = clicks
        self._outputs.pop()
        self._outputs[-1] = output
        self._result = result
        return result

    def reset(self) -> Result:
        """Remove every click; returns the result of the extreme points alone."""
        result = self._rebuild(self._outputs[0])
        self._clicks = []
        del self._outputs[1:]
        self._result = result
        return result
