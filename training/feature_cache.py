"""Cached image-encoder outputs for training the decoder of a two-part model (issue 12, design b).

The frozen image encoder runs once per object crop; its features, U2-Netp's saliency
logits and the crop's target mask are kept, so every later training step (new noisy
extreme points, clicks, iterative rounds) costs only the light decoder. The crop is
the one the runtime makes from the object's exact extreme points (SPEC 2, through
:class:`fairs_sdk.encoder.InputEncoder`); points are then simulated on that canvas.

A cache is a folder of shards ``shard_XXXX.npz``, each with ``features`` (n, 128, S/4,
S/4) float16, ``saliency`` (n, 1, S, S) float16, ``target`` and ``valid`` (n, S, S) uint8,
``names`` (n,) str; a pixel cache (no encoder, for end-to-end training) has ``pixels``
(n, S, S, 3) uint8 instead of features and saliency. Shards already written are kept,
so an interrupted build resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import crop_resize
from fairs_sdk.encoder import InputEncoder

from .simulate import extreme_points

__all__ = ["FeatureCache", "build_cache", "encoder_session"]


def encoder_session(path: str | Path, threads: int | None = None):
    """ONNX Runtime session of an exported image encoder (input ``rgb``; outputs ``features``, ``saliency``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def build_cache(
    source,
    indices: Sequence[int],
    spec: InputSpec,
    encoder,
    folder: str | Path,
    shard_size: int = 64,
    progress: bool = True,
) -> Path:
    """Encode the crops of ``source[indices]`` with ``encoder`` (an ONNX Runtime session) into ``folder``.

    With ``encoder=None`` the crops' pixels are kept instead (a pixel cache)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
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
        rows: dict[str, list] = {k: [] for k in (*keys, "target", "valid", "names")}
        for index in shard:
            image, obj, ignore = source.load(index)
            if bar is not None:
                bar.update(1)
            if obj.sum() < 16:
                continue
            points = extreme_points(obj)
            box = encode.crop_box(points)
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
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{k: np.stack(v) if k != "names" else np.array(v) for k, v in rows.items()})
        tmp.rename(path)
    if bar is not None:
        bar.close()
    return folder


@dataclass
class FeatureCache:
    """All shards of one or more cache folders in memory; ``weights`` sets each folder's share of samples."""

    target: np.ndarray
    valid: np.ndarray
    names: np.ndarray
    sample_weight: np.ndarray
    features: np.ndarray | None = None
    saliency: np.ndarray | None = None
    pixels: np.ndarray | None = None

    @classmethod
    def load(cls, folders: Sequence[str | Path], weights: Sequence[float] | None = None) -> "FeatureCache":
        parts: dict[str, list[np.ndarray]] = {}
        sample_weight = []
        weights = list(weights) if weights is not None else [1.0] * len(folders)
        for folder, weight in zip(folders, weights):
            shards = sorted(Path(folder).glob("shard_*[0-9].npz"))
            if not shards:
                raise FileNotFoundError(f"no cache shards in {folder}")
            count = 0
            for shard in shards:
                with np.load(shard) as data:
                    for key in data.files:
                        parts.setdefault(key, []).append(data[key])
                    count += len(data["names"])
            sample_weight.append(np.full(count, weight / count))
        out = {k: np.concatenate(v) for k, v in parts.items()}
        w = np.concatenate(sample_weight)
        return cls(**out, sample_weight=w / w.sum())

    def __len__(self) -> int:
        return len(self.names)
