"""The FAIRS runtime: ``Segmenter``, an image and clicks in, a mask out (SPEC section 3).

NumPy in, NumPy out. Points are (x, y) floats in image pixels, pixel (row i,
column j) at (x, y) = (j, i). One call is three steps, each also public for
callers that batch or time them:

1. :meth:`Segmenter.prepare`: the model's input of one object, built by the shared
   :class:`~fairs_sdk.encoder.InputEncoder` (crop box around the extreme points and
   positive clicks enlarged by ``relax``, the crop resized to the S x S canvas, and
   the guidance channels the model declares); -> :class:`~fairs_sdk.encoder.Encoded`
   with a (C, S, S) float32 input.
2. :meth:`Segmenter.run`: (N, C, S, S) -> (N, 1, S, S) probabilities.
3. :meth:`Segmenter.postprocess`: probabilities resized into the crop box of a
   full-size map (0 outside), thresholded into the mask.

:meth:`Segmenter.predict` runs steps 2 and 3 on prepared objects;
:meth:`Segmenter.segment_many` and :meth:`Segmenter.iter_segment_many` (a stream) run
many objects of one image, at most :data:`BATCH_SIZE` (their ``batch_size``) per model
run, so their working memory does not grow with the number of objects. Every constant
(S, C and the channel order, relax, SFG parameters, threshold) comes from the
model's metadata. Each public method checks each value it is given once, where it
enters (:mod:`fairs_sdk.validation`: a malformed value raises :class:`InputError`, a
``ValueError``; nothing is coerced); inside, checked values are passed on as they are.

Two-part models (:mod:`fairs_sdk.model_format`): when the model file names an image
encoder and a decoder beside it, the Segmenter loads them too. As in
segment_anything's predictor, :meth:`Segmenter.embed` runs the image encoder once on
an object's crop (-> :class:`ImageEmbedding`), and :meth:`Segmenter.predict` with that
embedding runs only the decoder on the guidance planes (:meth:`Segmenter.decode` gives
its canvas probabilities), so a corrective click that keeps the crop box costs one
decoder run. :meth:`Segmenter.segment` and
:meth:`Segmenter.segment_many` run the combined file, as for any model.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from fairs_sdk import crop
from fairs_sdk.backends import Backend, PartBackend, load_backend, load_part
from fairs_sdk.config import CHANNEL_WIDTHS, InputSpec
from fairs_sdk.encoder import Encoded, InputEncoder
from fairs_sdk.model_format import DECODER, IMAGE_ENCODER, OUTPUT_NAME, ModelMetadata, NotAFairsModelError
from fairs_sdk.result import Result
from fairs_sdk.session import InteractiveSession
from fairs_sdk.validation import (
    MAX_IMAGE_PIXELS,
    InputError,
    Points,
    check_batch_size,
    check_image,
    check_points,
    check_threshold,
)


__all__ = ["Segmenter", "Encoded", "ImageEmbedding", "Prepared", "DEFAULT_MODEL", "BATCH_SIZE", "Result", "InputError"]

PathLike = Union[str, os.PathLike]

#: The model shipped inside the package, used by ``Segmenter()``.
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.onnx"

#: Objects that :meth:`Segmenter.segment_many` and :meth:`Segmenter.iter_segment_many` encode
#: and run together by default. Memory grows with it, not with the number of objects: the
#: batch's inputs (2.4 MB per object at S = 320) and the backend's working memory. With the
#: bundled model on ONNX Runtime's CPU provider, a stream over a 1920 x 1080 image peaked at
#: 1.0 GB resident at batch 1, 2.4 GB at 4 and 4.7 GB at 8, for 16 to 128 objects alike.
BATCH_SIZE = 4

#: Former name of :class:`~fairs_sdk.encoder.Encoded`, what :meth:`Segmenter.prepare` returns.
Prepared = Encoded

_OBJECT_KEYS = ("extreme_points", "positive_clicks", "negative_clicks")


@dataclass(frozen=True, eq=False)
class ImageEmbedding:
    """The image encoder's output for one object's crop (:meth:`Segmenter.embed`).

    Attributes:
        features: (F, S/4, S/4) float32 feature planes.
        saliency: (K, S, S) float32 saliency logits (K = 1, or 2 for a flip-averaged model).
        box: (x0, y0, x1, y1) crop box in image pixels, half-open (as ``Encoded.box``).
        image_shape: (H, W) of the image.
        rgb: (3, S, S) float32 raw RGB of the crop it was computed from, so that
            :meth:`Segmenter.predict` can tell that an object's input has the same crop.
    """

    features: np.ndarray
    saliency: np.ndarray
    box: tuple[int, int, int, int]
    image_shape: tuple[int, int]
    rgb: np.ndarray


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
        max_batch: most objects per backend call in :meth:`run` (``None``: the
            backend's own limit, or all at once); :meth:`segment_many` also runs at
            most its ``batch_size`` (:data:`BATCH_SIZE`) objects at a time.
        warmup: run one segmentation at construction, so the first call is not slow.
        sfg_threads: threads of the Numba SFG kernel per call. ``None``: 1 when the
            model runs on the CPU only (its threads then need every core, and idle
            OpenMP workers spinning after a parallel SFG slowed the engine by up to
            2x in our measurements), else Numba's default (all cores).
        engine_cache: folder of TensorRT engines built from ONNX files for
            ``backend="tensorrt"`` (default ``$FAIRS_ENGINE_CACHE`` or
            ``~/.cache/fairs_sdk/engines``).
        parts: the parts of a two-part ``.onnx`` model (image encoder and decoder, named
            in its metadata, beside it), loaded on the same backend. ``None``: load
            them when the model names them (a warning when one is missing); ``True``:
            required; ``False``: never (:meth:`embed` is then unavailable).

    Raises:
        FileNotFoundError: the model file (or the bundled default) is missing.
        fairs_sdk.backends.ModelLoadError: the file is truncated or not a model.
        fairs_sdk.model_format.NotAFairsModelError: a model without FAIRS metadata.
        fairs_sdk.backends.ProviderError: a requested provider is missing or failed.
        NotAFairsModelError: a part that does not belong to the model (other input
            spec, other file than the export recorded, shapes that do not fit).

    Attributes:
        metadata: the model's :class:`~fairs_sdk.model_format.ModelMetadata`.
        spec: its :class:`~fairs_sdk.config.InputSpec` (input size, channels, relax, ...).
        encoder: the :class:`~fairs_sdk.encoder.InputEncoder` that builds its input
            (on checked input: points are (n, 2) float64 arrays).
        backend: the loaded inference backend.
        image_encoder, decoder: the two parts' backends of a two-part model, else None.

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
        parts: bool | None = None,
    ) -> None:
        self.model_path = Path(model) if model is not None else _default_model()
        self.backend: Backend = load_backend(
            self.model_path, backend=backend, providers=providers, session_options=session_options,
            engine_cache=engine_cache,
        )
        self.metadata: ModelMetadata = self.backend.metadata
        self.spec: InputSpec = self.metadata.input_spec
        rgb = self.spec.input_channels.index("rgb")
        start = sum(CHANNEL_WIDTHS[n] for n in self.spec.input_channels[:rgb])
        self._rgb_planes = slice(start, start + CHANNEL_WIDTHS["rgb"])
        #: The input planes that are not RGB, in order: the decoder's ``guidance``.
        self._guidance_planes = [i for i in range(self.spec.channel_count) if not start <= i < self._rgb_planes.stop]
        self.image_encoder: PartBackend | None = None
        self.decoder: PartBackend | None = None
        found = self._part_paths(parts)
        if found is not None:
            options = dict(backend=self.backend.name, providers=providers, session_options=session_options,
                           engine_cache=engine_cache)
            self.image_encoder = load_part(found[IMAGE_ENCODER], IMAGE_ENCODER, **options)
            self.decoder = load_part(found[DECODER], DECODER, **options)
            self._check_parts(found)
        self.max_image_pixels = int(max_image_pixels)
        limit = self.backend.max_batch
        if max_batch is not None and max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch if limit is None else min(max_batch or limit, limit)
        cpu_only = all(p == "CPUExecutionProvider" for p in self.providers)
        if sfg_threads is not None and sfg_threads < 1:
            raise ValueError(f"sfg_threads must be >= 1, got {sfg_threads}")
        self.sfg_threads = sfg_threads if sfg_threads is not None else (1 if cpu_only else None)
        self.encoder = InputEncoder(self.spec, sfg_threads=self.sfg_threads)
        if warmup:
            self._warmup()

    def _part_paths(self, wanted: bool | None) -> dict[str, Path] | None:
        """The parts' files to load, by part name; None for none (see ``parts`` in the class docs)."""
        if wanted is False:
            return None
        paths = self.metadata.part_paths(self.model_path) if self.model_path.suffix.lower() == ".onnx" else None
        if paths is None:
            if wanted:
                raise NotAFairsModelError(
                    f"{self.model_path} names no image encoder and decoder (parts=True needs the combined "
                    ".onnx file of a two-part model, exported by fairs_sdk.export.two_part.export_bundle)"
                )
            return None
        missing = [str(p) for p in paths.values() if not p.is_file()]
        if missing and wanted:
            raise FileNotFoundError(f"{self.model_path}: its parts {missing} are missing")
        if missing:
            warnings.warn(
                f"{self.model_path} names its parts but {missing} is not beside it: loaded without them, "
                "so every corrective click runs the whole model",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        return paths

    def _check_parts(self, paths: dict[str, Path]) -> None:
        """The parts must come from the same export as the model: same input spec, files and shapes."""
        from fairs_sdk.trt import file_sha256  # torch- and TensorRT-free

        digests = self.metadata.part_sha256
        for name, part in ((IMAGE_ENCODER, self.image_encoder), (DECODER, self.decoder)):
            if part.metadata.input_spec != self.spec:
                raise NotAFairsModelError(
                    f"{paths[name]} has another input spec than {self.model_path} "
                    f"({part.metadata.input_spec} vs {self.spec}): it is not this model's {name}"
                )
            if name in digests and file_sha256(paths[name]) != digests[name]:
                raise NotAFairsModelError(
                    f"{paths[name]} is not the {name} that {self.model_path} was exported with "
                    "(its sha256 differs): export the bundle again, or load with parts=False"
                )
        for name in ("features", "saliency"):
            made, taken = self.image_encoder.output_shapes[name], self.decoder.input_shapes[name]
            if len(made) != len(taken) or any(a is not None and b is not None and a != b for a, b in zip(made, taken)):
                raise NotAFairsModelError(
                    f"the image encoder gives {name!r} of shape {made}, the decoder takes {taken}: "
                    "the two parts do not fit together"
                )

    # ------------------------------------------------------------------ info
    @property
    def providers(self) -> tuple[str, ...]:
        """Execution providers actually in use, fastest first."""
        return self.backend.providers

    @property
    def two_part(self) -> bool:
        """True when the image encoder and decoder are loaded: :meth:`embed` and ``predict(embedding=)`` work."""
        return self.image_encoder is not None

    def __repr__(self) -> str:
        return (
            f"Segmenter(model={str(self.model_path)!r}, backend={self.backend.name!r}, "
            f"providers={list(self.providers)}, input_size={self.spec.input_size}, "
            f"input_channels={list(self.spec.input_channels)}, two_part={self.two_part})"
        )

    def _warmup(self) -> None:
        s = self.spec.input_size
        image = np.zeros((s, s, 3), dtype=np.uint8)
        points = [(s * 0.25, s * 0.5), (s * 0.75, s * 0.5)]
        self.segment(image, points)
        if self.two_part:
            prepared = self.prepare(image, points)
            self._predict([prepared], self.spec.threshold, [self.embed(prepared)])

    # ------------------------------------------------------------ pipeline
    def prepare(
        self,
        image: np.ndarray,
        extreme_points: Points,
        positive_clicks: Points = (),
        negative_clicks: Points = (),
    ) -> Encoded:
        """Step 1: the network input of one object. Checks the image and every point.

        Args:
            image: (H, W, 3) uint8 RGB; (H, W) gray and (H, W, 4) RGBA are converted.
            extreme_points: (n, 2) (x, y), n >= 2, not all the same, inside the image.
            positive_clicks, negative_clicks: (m, 2) (x, y) inside the image.

        Returns:
            :class:`~fairs_sdk.encoder.Encoded`: ``input`` (C, S, S) float32 with the
            channels of ``spec.input_channels`` in order, ``box``, ``image_shape``.
        """
        rgb = check_image(image, self.max_image_pixels)
        return self.encoder.encode(rgb, *_check_object(rgb.shape, extreme_points, positive_clicks, negative_clicks))

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Step 2: the model on (N, C, S, S) float32 inputs -> (N, 1, S, S) float32 probabilities.

        Runs in chunks of ``max_batch``. The shape must be the model's (C channels of
        ``spec.input_channels``, S = ``spec.input_size``).
        """
        c, s = self.spec.channel_count, self.spec.input_size
        if not isinstance(inputs, np.ndarray) or inputs.ndim != 4 or inputs.shape[1:] != (c, s, s):
            shape = getattr(inputs, "shape", type(inputs).__name__)
            raise InputError(
                f"inputs must be (N, {c}, {s}, {s}) float32 (channels {list(self.spec.input_channels)}), got {shape}"
            )
        batch = np.ascontiguousarray(inputs, dtype=np.float32)
        if len(batch) == 0:
            return np.zeros((0, 1, s, s), dtype=np.float32)
        step = self.max_batch or len(batch)
        if len(batch) <= step:
            return self.backend.run(batch)
        return np.concatenate([self.backend.run(batch[i : i + step]) for i in range(0, len(batch), step)])

    def postprocess(self, probabilities: np.ndarray, prepared: Encoded, threshold: float | None = None) -> Result:
        """Step 3: the (S, S) or (1, S, S) canvas probabilities of ``prepared`` as a full-size :class:`Result`."""
        return self._result(probabilities, prepared, self._threshold(threshold))

    def embed(self, prepared: Encoded) -> ImageEmbedding:
        """Run the image encoder of a two-part model on one object's crop (its RGB planes).

        Args:
            prepared: what :meth:`prepare` (or ``encoder.encode``) returned for the object.

        Returns:
            :class:`ImageEmbedding` of the crop, for :meth:`predict`; valid for every
            input of the same image with the same crop box (negative clicks keep the
            box; a positive click outside the points' bounding box moves it, SPEC 2).

        Raises:
            InputError: the model has no parts (see :attr:`two_part`), or ``prepared``
                is not an input of this model.
        """
        if not self.two_part:
            raise InputError(f"{self.model_path} has no image encoder and decoder: embed() needs a two-part model")
        self._check_prepared(prepared, "prepared")
        rgb = np.array(prepared.input[self._rgb_planes], dtype=np.float32)  # a copy the embedding owns
        out = self.image_encoder.run({"rgb": rgb[None]})
        return ImageEmbedding(out["features"][0], out["saliency"][0], prepared.box, prepared.image_shape, rgb)

    def decode(
        self, prepared: Sequence[Encoded], embedding: ImageEmbedding | Sequence[ImageEmbedding]
    ) -> np.ndarray:
        """Step 2 of a two-part model: the decoder on objects' guidance planes -> (N, 1, S, S) float32.

        Args:
            prepared: what :meth:`prepare` returned, one per object.
            embedding: :meth:`embed`'s output for the objects' crop (one for all
                objects, or one per object).

        Returns:
            The objects' canvas probabilities, as :meth:`run` gives them for the
            whole model; :meth:`postprocess` turns each into a :class:`Result`.

        Raises:
            InputError: the model has no parts, or an embedding of another crop
                (another box, image or model).
        """
        embeddings = self._checked_embeddings(prepared, embedding)
        if not prepared:
            return np.zeros((0, 1, self.spec.input_size, self.spec.input_size), dtype=np.float32)
        return self._decode(prepared, embeddings)

    def predict(
        self,
        prepared: Sequence[Encoded],
        threshold: float | None = None,
        embedding: ImageEmbedding | Sequence[ImageEmbedding] | None = None,
    ) -> list[Result]:
        """Steps 2 and 3 on objects from :meth:`prepare`, with one batched model call.

        Args:
            prepared: what :meth:`prepare` returned, one per object (any images).
            threshold: as in :meth:`segment`.
            embedding: ``None`` runs the whole model. With :meth:`embed`'s output for
                the same crop (one for all objects, or one per object), only the
                decoder runs, on the objects' guidance planes (:meth:`decode`).

        Returns:
            One :class:`Result` per object, in order.

        Raises:
            InputError: an embedding of another crop (another box, image or model),
                or embeddings on a model without parts.
        """
        t = self._threshold(threshold)
        if embedding is None:
            return self._predict(prepared, t)
        return self._predict(prepared, t, self._checked_embeddings(prepared, embedding))

    def _checked_embeddings(
        self, prepared: Sequence[Encoded], embedding: ImageEmbedding | Sequence[ImageEmbedding]
    ) -> list[ImageEmbedding]:
        """One checked embedding per object (see :meth:`decode`)."""
        if isinstance(embedding, ImageEmbedding):
            embeddings = [embedding] * len(prepared)
        elif isinstance(embedding, Sequence):
            embeddings = list(embedding)
        else:
            raise InputError(f"embedding must be an ImageEmbedding from embed() or one per object, "
                             f"got {type(embedding).__name__}")
        if len(embeddings) != len(prepared):
            raise InputError(
                f"got {len(embeddings)} embeddings for {len(prepared)} objects: give one, or one per object"
            )
        if not self.two_part:
            raise InputError(f"{self.model_path} has no decoder: embeddings need a two-part model")
        for i, (p, e) in enumerate(zip(prepared, embeddings)):
            self._check_prepared(p, f"prepared[{i}]")
            self._check_embedding(e, p, i)
        return embeddings

    def _predict(
        self, prepared: Sequence[Encoded], threshold: float, embeddings: Sequence[ImageEmbedding] | None = None
    ) -> list[Result]:
        """:meth:`predict` with a checked threshold (and checked embeddings, one per object)."""
        if not prepared:
            return []
        if embeddings is None:
            probabilities = self.run(np.stack([p.input for p in prepared]))
        else:
            probabilities = self._decode(prepared, embeddings)
        return [self._result(prob, p, threshold) for prob, p in zip(probabilities, prepared)]

    def _decode(self, prepared: Sequence[Encoded], embeddings: Sequence[ImageEmbedding]) -> np.ndarray:
        """The decoder on the objects' guidance planes and their crops' embeddings: (N, 1, S, S) float32."""
        feeds = {
            "features": np.stack([e.features for e in embeddings]),
            "saliency": np.stack([e.saliency for e in embeddings]),
            "guidance": np.stack([p.input[self._guidance_planes] for p in prepared]),
        }
        step = self.decoder.max_batch or len(prepared)
        outs = [self.decoder.run({k: v[i : i + step] for k, v in feeds.items()})[OUTPUT_NAME]
                for i in range(0, len(prepared), step)]
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

    def _check_prepared(self, prepared: Encoded, name: str) -> None:
        c, s = self.spec.channel_count, self.spec.input_size
        x = getattr(prepared, "input", None)
        if not isinstance(prepared, Encoded) or not isinstance(x, np.ndarray) or x.shape != (c, s, s):
            raise InputError(f"{name} must be an Encoded input of this model ((C, S, S) = ({c}, {s}, {s})), "
                             f"got {type(prepared).__name__} {getattr(x, 'shape', '')}")

    def _check_embedding(self, embedding: ImageEmbedding, prepared: Encoded, index: int) -> None:
        """``embedding`` must be of ``prepared``'s crop: same box, image size and RGB planes."""
        if not isinstance(embedding, ImageEmbedding):
            raise InputError(f"embedding for object {index} must be an ImageEmbedding from embed(), "
                             f"got {type(embedding).__name__}")
        if embedding.box != prepared.box or embedding.image_shape != prepared.image_shape:
            raise InputError(
                f"the embedding is of crop box {embedding.box} in a {embedding.image_shape} image, object {index}'s "
                f"crop box is {prepared.box} in {prepared.image_shape}: embed() its input again (a positive click "
                "outside the points' bounding box moves the crop box)"
            )
        for name in ("features", "saliency"):
            want = self.image_encoder.output_shapes[name][1:]
            got = getattr(embedding, name).shape
            if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
                raise InputError(f"the embedding's {name} are {got}; this model's image encoder gives {want}: "
                                 "an embedding of another model")
        if not np.array_equal(embedding.rgb, prepared.input[self._rgb_planes]):
            raise InputError(f"the embedding is of another image than object {index}'s (same box, other pixels): "
                             "embed() its input")

    def _threshold(self, threshold: float | None) -> float:
        return self.spec.threshold if threshold is None else check_threshold(threshold)

    def _result(self, probabilities: np.ndarray, prepared: Encoded, threshold: float) -> Result:
        s = self.spec.input_size
        canvas = np.asarray(probabilities).reshape(s, s)
        prob = crop.paste_back(canvas, prepared.box, prepared.image_shape)
        return Result(mask=prob >= threshold, probabilities=prob, box=prepared.box)

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
            image: (H, W, 3) uint8 RGB; (H, W) gray and (H, W, 1) or (H, W, 4) RGBA
                uint8 are converted; at most ``max_image_pixels`` pixels
                (:data:`~fairs_sdk.validation.MAX_IMAGE_PIXELS` by default) and
                :data:`~fairs_sdk.validation.MAX_IMAGE_SIDE` per side.
            extreme_points: (n, 2) (x, y) extreme points, 2 <= n <= ``MAX_POINTS``
                (3 or 4 usual), not all the same, inside the image.
            positive_clicks: (m, 2) (x, y) "this is object" clicks, m <= ``MAX_POINTS``.
            negative_clicks: (k, 2) (x, y) "this is background" clicks, k <= ``MAX_POINTS``.
            threshold: probability at or above which a pixel is object, an int or
                float in [0, 1]; ``None`` for the model's own (0.5 unless its metadata
                says otherwise).

        Coordinates are ints or floats (Python or NumPy); strings, bools, NaN and
        infinities are refused.

        Returns:
            :class:`Result` with mask (H, W) bool, probabilities (H, W) float32 in
            [0, 1] (0 outside ``box``), box.

        Raises:
            InputError: naming the argument that is malformed (a ``ValueError``).
        """
        t = self._threshold(threshold)
        (result,) = self._predict([self.prepare(image, extreme_points, positive_clicks, negative_clicks)], t)
        return result

    def segment_many(
        self,
        image: np.ndarray,
        objects: Iterable[Mapping[str, Any]],
        threshold: float | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> list[Result]:
        """Segment several objects of one image, ``batch_size`` objects per model run.

        Args:
            image: as in :meth:`segment`.
            objects: one mapping per object with ``"extreme_points"`` and optionally
                ``"positive_clicks"`` and ``"negative_clicks"`` (as in :meth:`segment`).
            threshold: as in :meth:`segment`.
            batch_size: most objects encoded and run together (:data:`BATCH_SIZE` by
                default); the backend runs at most ``max_batch`` of them per call.

        Returns:
            One :class:`Result` per object, in order; each holds two full-size maps
            (about 10 MB at 1920 x 1080), so for many objects use
            :meth:`iter_segment_many`, whose memory does not grow with their number.

        Raises:
            InputError: a malformed argument; all objects are checked before anything
                runs, and an error names the object's index.
        """
        rgb, checked, t, size = self._check_many(image, objects, threshold, batch_size)
        return list(self._stream(rgb, checked, t, size))

    def iter_segment_many(
        self,
        image: np.ndarray,
        objects: Iterable[Mapping[str, Any]],
        threshold: float | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> Iterator[Result]:
        """:meth:`segment_many` as a stream: yields each object's :class:`Result` in order.

        The arguments are as in :meth:`segment_many` and are all checked by this call,
        before it returns (an :class:`InputError` names the object's index). The
        iterator then encodes and runs ``batch_size`` objects at a time and builds
        each full-size result only when it is asked for, so a caller that drops the
        results it has used needs memory for one batch, whatever the number of
        objects. It works on its own copy of ``image``.
        """
        rgb, checked, t, size = self._check_many(image, objects, threshold, batch_size)
        if np.may_share_memory(rgb, image):
            rgb = rgb.copy()  # the stream outlives this call: later changes to the caller's image do not reach it
        return self._stream(rgb, checked, t, size)

    def _check_many(
        self, image: np.ndarray, objects: Iterable[Mapping[str, Any]], threshold: float | None, batch_size: int
    ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]], float, int]:
        """The checked (H, W, 3) image, each object's checked points, threshold and batch size."""
        t = self._threshold(threshold)
        size = check_batch_size(batch_size)
        rgb = check_image(image, self.max_image_pixels)
        if isinstance(objects, (Mapping, str, bytes)) or not isinstance(objects, Iterable):
            raise InputError(f"objects must be a sequence of mappings (one per object), got {type(objects).__name__}")
        checked = []
        for i, obj in enumerate(objects):
            if not isinstance(obj, Mapping) or "extreme_points" not in obj:
                raise InputError(f"objects[{i}] must be a mapping with 'extreme_points', got {obj!r:.200}")
            unknown = set(obj) - set(_OBJECT_KEYS)
            if unknown:
                raise InputError(f"objects[{i}] has unknown keys {sorted(map(str, unknown))}")
            try:
                checked.append(
                    _check_object(
                        rgb.shape, obj["extreme_points"], obj.get("positive_clicks", ()), obj.get("negative_clicks", ())
                    )
                )
            except InputError as err:
                raise InputError(f"objects[{i}]: {err}") from None
        return rgb, checked, t, size

    def _stream(
        self, rgb: np.ndarray, checked: list[tuple[np.ndarray, np.ndarray, np.ndarray]], threshold: float, size: int
    ) -> Iterator[Result]:
        """Results of checked objects, ``size`` objects encoded into one (n, C, S, S) batch at a time."""
        c, s = self.spec.channel_count, self.spec.input_size
        for start in range(0, len(checked), size):
            chunk = checked[start : start + size]
            batch = np.empty((len(chunk), c, s, s), dtype=np.float32)
            placed = []
            for i, points in enumerate(chunk):
                encoded = self.encoder.encode(rgb, *points)
                batch[i] = encoded.input
                placed.append(Encoded(batch[i], encoded.box, encoded.image_shape))  # drops its own input
            probabilities = self.run(batch)
            del batch
            for prob, p in zip(probabilities, placed):
                yield self._result(prob, p, threshold)

    def session(
        self, image: np.ndarray, extreme_points: Points, threshold: float | None = None
    ) -> InteractiveSession:
        """An :class:`~fairs_sdk.session.InteractiveSession` on ``image``: add and undo clicks.

        The session works on its own copy of ``image``; its memory does not grow with the
        number of clicks (see :mod:`fairs_sdk.session`). Arguments as in :meth:`segment`.
        """
        return InteractiveSession(self, image, extreme_points, threshold=threshold)


def _check_object(
    image_shape: tuple[int, ...], extreme_points: Points, positive_clicks: Points, negative_clicks: Points
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One object's points, each checked: (n, 2), (m, 2), (k, 2) float64 (x, y)."""
    return (
        check_points(extreme_points, "extreme_points", image_shape, min_count=2, distinct=True),
        check_points(positive_clicks, "positive_clicks", image_shape),
        check_points(negative_clicks, "negative_clicks", image_shape),
    )
