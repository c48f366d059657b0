"""The FAIRS runtime: ``Segmenter``, an image and clicks in, a mask out (SPEC section 3).

NumPy in, NumPy out. Points are (x, y) floats in image pixels, pixel (row i,
column j) at (x, y) = (j, i). One call is three steps, each also public for
callers that batch or time them:

1. :meth:`Segmenter.prepare`: crop box around the extreme points and positive
   clicks (enlarged by ``relax``), the crop resized to the model's S x S canvas,
   the SFG map of the clicks on that canvas; -> (4, S, S) float32.
2. ``Segmenter.backend.run``: (N, 4, S, S) -> (N, 1, S, S) probabilities.
3. :meth:`Segmenter.postprocess`: probabilities resized into the crop box of a
   full-size map (0 outside), thresholded into the mask.

Every constant (S, relax, SFG parameters, threshold) comes from the model's metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from fairs_sdk import crop
from fairs_sdk.backends import Backend, load_backend
from fairs_sdk.config import InputSpec
from fairs_sdk.model_format import ModelMetadata
from fairs_sdk.result import Result
from fairs_sdk.sfg import kernel_threads, soft_focus
from fairs_sdk.validation import (
    MAX_IMAGE_PIXELS,
    InputError,
    Points,
    check_image,
    check_points,
    check_threshold,
)

if TYPE_CHECKING:
    from fairs_sdk.session import InteractiveSession

__all__ = ["Segmenter", "Prepared", "DEFAULT_MODEL", "Result", "InputError"]

PathLike = Union[str, os.PathLike]

#: The model shipped inside the package, used by ``Segmenter()``.
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.onnx"


@dataclass(frozen=True)
class Prepared:
    """One object's network input and where it came from.

    Attributes:
        input: (4, S, S) float32; raw RGB 0..255 of the crop, then the SFG map.
        box: (x0, y0, x1, y1) crop box in image pixels, half-open.
        image_shape: (H, W) of the image.
    """

    input: np.ndarray
    box: tuple[int, int, int, int]
    image_shape: tuple[int, int]


def _default_model() -> Path:
    if not DEFAULT_MODEL.is_file():
        raise FileNotFoundError(
            "no default model is bundled with this fairs_sdk yet "
            f"({DEFAULT_MODEL} is missing); pass the path of an exported FAIRS model, "
            "e.g. Segmenter('model.onnx')"
        )
    return DEFAULT_MODEL


class Segmenter:
    """Segments objects from extreme points and corrective clicks with an exported FAIRS model.

    Args:
        model: an ``.onnx`` file or a TensorRT engine (``.engine`` with its ``.json``
            metadata sidecar); ``None`` for the model bundled with the package.
        backend: "auto" (TensorRT for an engine file, else ONNX Runtime),
            "onnxruntime" or "tensorrt" (an ``.onnx`` file is then built into an
            engine once per GPU and TensorRT version, see ``engine_cache``).
        providers: ONNX Runtime execution providers to use, in order; ``None`` for
            every installed one of TensorRT, CUDA, CPU. A provider named here that
            does not load is an error.
        session_options: an ``onnxruntime.SessionOptions``.
        max_image_pixels: largest image accepted (H * W).
        max_batch: most objects per backend call in :meth:`segment_many`
            (``None``: the backend's own limit, or all at once).
        warmup: run one segmentation at construction, so the first call is not slow.
        sfg_threads: threads of the Numba SFG kernel per call. ``None``: 1 when the
            model runs on the CPU only (its threads then need every core, and idle
            OpenMP workers spinning after a parallel SFG slowed the engine by up to
            2x in our measurements), else Numba's default (all cores).
        engine_cache: folder of TensorRT engines built from ONNX files for
            ``backend="tensorrt"`` (default ``$FAIRS_ENGINE_CACHE`` or
            ``~/.cache/fairs_sdk/engines``).

    Raises:
        FileNotFoundError: the model file (or the bundled default) is missing.
        fairs_sdk.backends.ModelLoadError: the file is truncated or not a model.
        fairs_sdk.model_format.NotAFairsModelError: a model without FAIRS metadata.
        fairs_sdk.backends.ProviderError: a requested provider is missing or failed.

    All methods may be called from several threads at once; an instance stays
    usable after any error.
    """

    def __init__(
        self,
        model: PathLike | None = None,
        backend: str = "auto",
        providers: Sequence[str] | None = None,
        session_options=None,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        max_batch: int | None = None,
        warmup: bool = True,
        sfg_threads: int | None = None,
        engine_cache: PathLike | None = None,
    ) -> None:
        self.model_path = Path(model) if model is not None else _default_model()
        self.backend: Backend = load_backend(
            self.model_path, backend=backend, providers=providers, session_options=session_options,
            engine_cache=engine_cache,
        )
        self.metadata: ModelMetadata = self.backend.metadata
        self.spec: InputSpec = self.metadata.input_spec
        self.max_image_pixels = int(max_image_pixels)
        limit = self.backend.max_batch
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch if limit is None else min(max_batch or limit, limit)
        cpu_only = all(p == "CPUExecutionProvider" for p in self.providers)
        if sfg_threads is not None and sfg_threads < 1:
            raise ValueError(f"sfg_threads must be >= 1, got {sfg_threads}")
        self.sfg_threads = sfg_threads if sfg_threads is not None else (1 if cpu_only else None)
        if warmup:
            self._warmup()

    # ------------------------------------------------------------------ info
    @property
    def providers(self) -> tuple[str, ...]:
        """Execution providers actually in use, fastest first."""
        return self.backend.providers

    def __repr__(self) -> str:
        return (
            f"Segmenter(model={str(self.model_path)!r}, backend={self.backend.name!r}, "
            f"providers={list(self.providers)}, input_size={self.spec.input_size})"
        )

    def _warmup(self) -> None:
        s = self.spec.input_size
        image = np.zeros((s, s, 3), dtype=np.uint8)
        self.segment(image, [(s * 0.25, s * 0.5), (s * 0.75, s * 0.5)])

    # ------------------------------------------------------------ pipeline
    def prepare(
        self,
        image: np.ndarray,
        extreme_points: Points,
        positive_clicks: Points = (),
        negative_clicks: Points = (),
    ) -> Prepared:
        """Step 1: the network input of one object. Validates everything it is given.

        Args:
            image: (H, W, 3) uint8 RGB; (H, W) gray and (H, W, 4) RGBA are converted.
            extreme_points: (n, 2) (x, y), n >= 2, not all the same, inside the image.
            positive_clicks, negative_clicks: (m, 2) (x, y) inside the image.
        """
        rgb = check_image(image, self.max_image_pixels)
        return self._prepare(rgb, *self._check_clicks(rgb.shape, extreme_points, positive_clicks, negative_clicks))

    def _check_clicks(self, shape, extreme_points, positive_clicks, negative_clicks):
        ep = check_points(extreme_points, "extreme_points", shape, min_count=2, distinct=True)
        pos = check_points(positive_clicks, "positive_clicks", shape)
        neg = check_points(negative_clicks, "negative_clicks", shape)
        return ep, pos, neg

    def _prepare(self, rgb: np.ndarray, ep: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> Prepared:
        """:meth:`prepare` on checked input; ``rgb`` is (H, W, 3) uint8."""
        spec = self.spec
        s = spec.input_size
        box = crop.crop_box(np.concatenate([ep, pos]), spec.relax)
        pixels = crop.crop_resize(rgb, box, s)  # (S, S, 3) uint8
        with kernel_threads(self.sfg_threads):  # soft_focus itself is thread- and fork-safe
            sfg = soft_focus(
                (s, s),
                crop.to_canvas(ep, box, s),
                crop.to_canvas(pos, box, s),
                crop.to_canvas(neg, box, s),
                beta=spec.beta,
                kappa=spec.kappa,
                sigma=spec.sigma,
            )
        x = np.empty((4, s, s), dtype=np.float32)
        x[:3] = pixels.transpose(2, 0, 1)
        x[3] = sfg
        return Prepared(x, box, (rgb.shape[0], rgb.shape[1]))

    def postprocess(self, probabilities: np.ndarray, prepared: Prepared, threshold: float | None = None) -> Result:
        """Step 3: the (S, S) or (1, S, S) canvas probabilities as a full-size :class:`Result`."""
        t = self.spec.threshold if threshold is None else check_threshold(threshold)
        canvas = np.asarray(probabilities).reshape(self.spec.input_size, self.spec.input_size)
        prob = crop.paste_back(canvas, prepared.box, prepared.image_shape)
        return Result(mask=prob >= t, probabilities=prob, box=prepared.box)

    def _run(self, inputs: list[np.ndarray]) -> np.ndarray:
        """Backend on a list of (4, S, S) inputs, in chunks of ``max_batch``; (N, 1, S, S)."""
        step = self.max_batch or len(inputs)
        outs = [self.backend.run(np.stack(inputs[i : i + step])) for i in range(0, len(inputs), step)]
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    # ---------------------------------------------------------------- API
    def segment(
        self,
        image: np.ndarray,
        extreme_points: Points,
        positive_clicks: Points = (),
        negative_clicks: Points = (),
        threshold: float | None = None,
    ) -> Result:
        """Segment one object.

        Args:
            image: (H, W, 3) uint8 RGB; (H, W) gray and (H, W, 4) RGBA are converted.
            extreme_points: (n, 2) (x, y) extreme points, n >= 2 (3 or 4 usual).
            positive_clicks: (m, 2) (x, y) "this is object" clicks.
            negative_clicks: (k, 2) (x, y) "this is background" clicks.
            threshold: probability at or above which a pixel is object, in [0, 1];
                ``None`` for the model's own (0.5 unless its metadata says otherwise).

        Returns:
            :class:`Result` with mask (H, W) bool, probabilities (H, W) float32, box.

        Raises:
            InputError: naming the argument that is malformed (a ``ValueError``).
        """
        t = self.spec.threshold if threshold is None else check_threshold(threshold)
        prepared = self.prepare(image, extreme_points, positive_clicks, negative_clicks)
        probabilities = self.backend.run(prepared.input[None])
        return self.postprocess(probabilities[0], prepared, t)

    def segment_many(
        self,
        image: np.ndarray,
        objects: Iterable[Mapping[str, Any]],
        threshold: float | None = None,
    ) -> list[Result]:
        """Segment several objects of one image with one batched backend call.

        Args:
            image: as in :meth:`segment`.
            objects: one mapping per object with ``"extreme_points"`` and optionally
                ``"positive_clicks"`` and ``"negative_clicks"`` (as in :meth:`segment`).
            threshold: as in :meth:`segment`.

        Returns:
            One :class:`Result` per object, in order. All objects are checked
            before anything runs; an error names the object's index.
        """
        t = self.spec.threshold if threshold is None else check_threshold(threshold)
        rgb = check_image(image, self.max_image_pixels)
        checked = []
        for i, obj in enumerate(objects):
            if not isinstance(obj, Mapping) or "extreme_points" not in obj:
                raise InputError(f"objects[{i}] must be a mapping with 'extreme_points', got {obj!r}")
            unknown = set(obj) - {"extreme_points", "positive_clicks", "negative_clicks"}
            if unknown:
                raise InputError(f"objects[{i}] has unknown keys {sorted(unknown)}")
            try:
                checked.append(
                    self._check_clicks(
                        rgb.shape, obj["extreme_points"], obj.get("positive_clicks", ()), obj.get("negative_clicks", ())
                    )
                )
            except InputError as err:
                raise InputError(f"objects[{i}]: {err}") from None
        if not checked:
            return []
        prepared = [self._prepare(rgb, *c) for c in checked]
        probabilities = self._run([p.input for p in prepared])
        return [self.postprocess(prob, p, t) for prob, p in zip(probabilities, prepared)]

    def session(
        self, image: np.ndarray, extreme_points: Points, threshold: float | None = None
    ) -> InteractiveSession:
        """An :class:`~fairs_sdk.session.InteractiveSession` on ``image``: add and undo clicks."""
        from fairs_sdk.session import InteractiveSession

        return InteractiveSession(self, image, extreme_points, threshold=threshold)
