"""Cached image-encoder outputs for training the decoder of a two-part model (issue 12, design b).

The frozen image encoder runs once per object crop; its features, U2-Netp's saliency
logits and the crop's target mask are kept, so every later training step (new noisy
extreme points, clicks, iterative rounds) costs only the light decoder. The crop is
the one the runtime makes from the object's exact extreme points (SPEC 2, through
:class:`fairs_sdk.encoder.InputEncoder`); points are then simulated on that canvas.
A three-point cache crops from three of them instead (SPEC 4: one of the closest pair
dropped, at random), as the runtime does when a user gives three points: the object
then runs past the crop on the missing side, which a four-point crop never shows.

A cache is a folder of shards ``shard_XXXX.npz``, each with ``features`` (n, 128, S/4,
S/4) float16, ``saliency`` (n, 1, S, S) float16, ``target`` and ``valid`` (n, S, S) uint8,
``names`` (n,) str, ``points`` (n, 4, 2) float32 canvas (x, y) of the extreme points the
crop was made from (NaN rows for a dropped point); a pixel cache (no encoder, for end-to-end training) has ``pixels``
(n, S, S, 3) uint8 instead of features and saliency. Shards already written are kept,
so an interrupted build resumes; ``cache.json`` records what the crops were made with
(source, count, input size, relax, crop points, jitter), and a build with other settings
into the same folder is refused.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import crop_box, crop_resize, to_canvas
from fairs_sdk.encoder import InputEncoder

from .simulate import extreme_points, point_to_drop

__all__ = ["FeatureCache", "build_cache", "JITTER_NOISE", "JITTER_RELAX", "MANIFEST"]

#: Jittered crops (``build_cache(crop_jitter=True)``): points moved by up to this many image px
#: before the box is made, and the relax multiplied by a factor drawn from this range.
JITTER_NOISE = 8.0
JITTER_RELAX = (0.5, 2.5)


def build_cache(
    source,
    indices: Sequence[int],
    spec: InputSpec,
    encoder,
    folder: str | Path,
    shard_size: int = 64,
    progress: bool = True,
    crop_points: int = 4,
    crop_jitter: bool = False,
) -> Path:
    """Encode the crops of ``source[indices]`` with ``encoder`` (an ONNX Runtime session) into ``folder``.

    With ``encoder=None`` the crops' pixels are kept instead (a pixel cache). ``crop_points``
    3 crops each object from three of its extreme points (which one is dropped: seeded by
    the index, so a resumed build makes the same crops). ``crop_jitter`` makes the box from
    the points moved by up to :data:`JITTER_NOISE` px and enlarged by a relax drawn from
    :data:`JITTER_RELAX` times the model's (seeded by the index too): the crops a user's
    imprecise points make, and more or less context, from the same objects."""
    if crop_points not in (3, 4):
        raise ValueError(f"crop_points must be 3 or 4, got {crop_points}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _check_manifest(folder, {
        "source": source.name, "instances": len(indices), "input_size": spec.input_size, "relax": spec.relax,
        "crop_points": crop_points, "crop_jitter": crop_jitter, "kind": "features" if encoder is not None else "pixels",
        # written only where they shape the crops (as InputSpec.to_dict leaves out their defaults),
        # so that older caches keep matching
        **({k: v for k, v in spec.to_dict().items() if k in ("partial_relax", "partial_relax_sides")}
           if crop_points == 3 and spec.partial_relax else {}),
    })
    encode = InputEncoder(spec)
    size = spec.input_size
    shards = [list(indices[i : i + shard_size]) for i in range(0, len(indices), shard_size)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(indices), desc=f"cache {folder.name}")
    for number, shard in enumerate(shards):
        path = folder / f"shard_{number:04d}.npz"
        if path.exists():
            if bar is not None:
                bar.update(len(shard))
            continue
        keys = ("features", "saliency") if encoder is not None else ("pixels",)
        rows: dict[str, list] = {k: [] for k in (*keys, "target", "valid", "names", "points")}
        for index in shard:
            image, obj, ignore = source.load(index)
            if bar is not None:
                bar.update(1)
            if obj.sum() < 16:
                continue
            points = extreme_points(obj)
            if crop_points == 3:
                points[point_to_drop(points, np.random.default_rng([7, int(index)]))] = np.nan
            kept = points[~np.isnan(points).any(1)]
            if crop_jitter:
                rng = np.random.default_rng([11, int(index)])
                moved = kept + rng.uniform(-JITTER_NOISE, JITTER_NOISE, size=kept.shape)
                scale = rng.uniform(*JITTER_RELAX)  # the margins' sides come from the points as found
                box = crop_box(moved, tuple(int(round(m * scale)) for m in encode.margins(kept)))
            else:
                box = encode.crop_box(kept)
            pixels = encode.crop_pixels(image, box)
            if encoder is not None:
                rgb = pixels.transpose(2, 0, 1)[None].astype(np.float32)
                features, saliency = encoder.run(["features", "saliency"], {"rgb": rgb})
                rows["features"].append(features[0].astype(np.float16))
                rows["saliency"].append(saliency[0].astype(np.float16))
            else:
                rows["pixels"].append(pixels)
            target = crop_resize(obj.astype(np.uint8), box, size)  # as the image: bilinear, rounded to 0/1
            ignored = crop_resize(ignore.astype(np.uint8), box, size, cv2.INTER_NEAREST)
            rows["target"].append(target)
            rows["valid"].append(1 - ignored)
            rows["names"].append(source.describe(index))
            rows["points"].append(to_canvas(points, box, size).astype(np.float32))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: np.stack(v) if k != "names" else np.array(v) for k, v in rows.items()})
        tmp.rename(path)
    if bar is not None:
        bar.close()
    return folder


#: The file in each cache folder that says what its crops were made with.
MANIFEST = "cache.json"


def _check_manifest(folder: Path, made_with: dict) -> None:
    """Write ``made_with`` into a new cache folder; refuse one whose crops were made otherwise.

    A folder is named after its config entry, so without this a changed relax, input size
    or source would silently reuse crops made the old way. Folders written before the
    manifest existed have shards and no manifest: they are taken as they are, with a warning.
    """
    path = folder / MANIFEST
    if path.exists():
        found = json.loads(path.read_text())
        changed = {k: (found.get(k), v) for k, v in made_with.items() if found.get(k) != v}
        if changed:
            details = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ValueError(f"cache {folder} was made with other settings ({details}); "
                             "delete it or point cache_dir elsewhere")
        return
    if any(folder.glob("shard_*[0-9].npz")):
        warnings.warn(f"cache {folder} has no {MANIFEST} (made by an older version); its settings cannot be checked",
                      stacklevel=3)
        return
    path.write_text(json.dumps(made_with, indent=1, sort_keys=True) + "\n")


@dataclass
class FeatureCache:
    """All shards of one or more cache folders in memory; ``weights`` sets each folder's share of samples."""

    target: np.ndarray
    valid: np.ndarray
    names: np.ndarray
    sample_weight: np.ndarray
    points: np.ndarray | None = None
    features: np.ndarray | None = None
    saliency: np.ndarray | None = None
    pixels: np.ndarray | None = None

    @classmethod
    def load(cls, folders: Sequence[str | Path], weights: Sequence[float] | None = None) -> "FeatureCache":
        """Read every shard into one array per key, filled in place (peak memory: the cache plus one shard)."""
        weights = list(weights) if weights is not None else [1.0] * len(folders)
        shards: list[Path] = []
        sample_weight = []
        for folder, weight in zip(folders, weights):
            found = sorted(Path(folder).glob("shard_*[0-9].npz"))
            if not found:
                raise FileNotFoundError(f"no cache shards in {folder}")
            count = 0
            for shard in found:
                with np.load(shard) as data:
                    count += len(data["names"])
            shards += found
            sample_weight.append(np.full(count, weight / count))
        w = np.concatenate(sample_weight)
        total = len(w)
        out: dict[str, np.ndarray] = {}
        start = 0
        for shard in shards:
            with np.load(shard) as data:
                n = len(data["names"])
                arrays = {key: data[key] for key in data.files}
            if "points" not in arrays:  # caches built before crops kept their points
                arrays["points"] = np.full((n, 4, 2), np.nan, np.float32)
            for key, value in arrays.items():
                if key not in out:
                    out[key] = np.empty((total, *value.shape[1:]), value.dtype if key != "names" else object)
                out[key][start : start + n] = value
            start += n
        out["names"] = out["names"].astype(str)
        return cls(**out, sample_weight=w / w.sum())

    def __len__(self) -> int:
        return len(self.names)

    def crop_points(self, row: int) -> np.ndarray | None:
        """The canvas points a three-point crop was made from, (3, 2) float64; None for four-point crops."""
        if self.points is None:
            return None
        points = self.points[row]
        kept = ~np.isnan(points).any(1)
        if kept.all() or not kept.any():  # a four-point crop, or one cached before points were kept
            return None
        return points[kept].astype(np.float64)
