"""Training and validation samples: one object instance -> network input, target and points.

:class:`InstanceDataset` turns an instance of an
:class:`~fairs_sdk.training.sources.InstanceSource` into the input of SPEC sections 2
and 4: simulated extreme points (and clicks), then the crop and the guidance planes
built by the runtime's own :class:`fairs_sdk.encoder.InputEncoder` (through
:func:`~fairs_sdk.training.guidance.make_encoder`), so a sample's ``input`` is exactly
what an exported model receives (the planes that ``InputSpec.input_channels``
declares) once :func:`normalize_input` has normalised its RGB planes, as the exported
graph's :class:`~fairs_sdk.training.model.InputNormalizer` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import crop_resize, to_canvas

from .augmentation import AugmentConfig, augment
from .channels import channel_slices
from .guidance import make_encoder
from .simulate import drop_to_three_points, extreme_points, noisy_extreme_points, sample_training_clicks
from .sources import InstanceSource

__all__ = ["SimulationConfig", "InstanceDataset", "normalize_input", "pad_points", "unpad_points"]


@dataclass
class SimulationConfig:
    """Simulated user input for training samples (SPEC section 4, paper 4.5)."""

    point_noise: float = 10.0
    three_point_probability: float = 0.0
    click_probability: float = 0.0
    max_positive_clicks: int = 2
    max_negative_clicks: int = 2
    click_distance: tuple[float, float] = (15.0, 60.0)
    iterative_probability: float = 0.0
    max_iterative_clicks: int = 3


def pad_points(points: np.ndarray, count: int) -> np.ndarray:
    """(n, 2) points padded with NaN rows to (count, 2) float32 (batches need one shape)."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    if len(points) > count:
        raise ValueError(f"{len(points)} points do not fit {count} slots")
    return np.vstack([points, np.full((count - len(points), 2), np.nan, dtype=np.float32)])


def unpad_points(points: np.ndarray) -> np.ndarray:
    """The rows of a :func:`pad_points` array that are not NaN: (n, 2) float64."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return points[~np.isnan(points).any(axis=1)]


def normalize_input(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The encoder's (C, S, S) float32 runtime input -> the network's input (a new array).

    The ``rgb`` planes (raw 0..255, wherever ``spec.input_channels`` puts them) become
    (x / 255 - mean) / std, computed as the exported graph's InputNormalizer does; the
    guidance planes are copied unchanged. The one place training normalises.
    """
    if x.ndim != 3 or x.shape[0] != spec.channel_count:
        raise ValueError(f"expected ({spec.channel_count}, S, S) input for {list(spec.input_channels)}, got {x.shape}")
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    scale = np.float32(1.0) / (np.float32(255.0) * std)
    offset = np.asarray(spec.mean, dtype=np.float32)[:, None, None] / std
    out = x.astype(np.float32, copy=True)
    rgb = channel_slices(spec.input_channels)["rgb"]
    out[rgb] = out[rgb] * scale - offset
    return out


class InstanceDataset(Dataset):
    """Training / validation samples from an :class:`InstanceSource`.

    ``dataset[i]`` is a dict of tensors: ``input`` (C, S, S) float32, the channels of
    ``spec.input_channels`` as the runtime's encoder makes them, then normalised by
    :func:`normalize_input` (guidance planes in [0, 1]; ``guidance`` "gaussian" puts
    DEXTR's heat map in the ``sfg`` plane for the ablation), ``target`` (1, S, S)
    float32 in {0, 1},
    ``valid`` (1, S, S) float32 (0 on ignore pixels), and the points in canvas pixels
    ((x, y) float32, NaN rows pad to a fixed count): ``extreme`` (4, 2), ``positive``
    and ``negative`` (max clicks, 2), from which iterative click training re-encodes
    the guidance. With ``train=True`` each sample is augmented, its points noisy,
    and random clicks are added per :class:`SimulationConfig`; the randomness of
    sample i in epoch e comes from seed (seed, e, i) only, so it is the same in any
    worker or process and after a resume.
    """

    def __init__(
        self,
        source: InstanceSource,
        spec: InputSpec,
        train: bool = True,
        simulation: SimulationConfig | None = None,
        augmentation: AugmentConfig | None = None,
        seed: int = 0,
        guidance: str = "sfg",
    ) -> None:
        self.source = source
        self.guidance = guidance
        self.spec = spec
        self.encoder = make_encoder(spec, guidance)
        self.train = train
        self.simulation = simulation or SimulationConfig()
        self.augmentation = augmentation or AugmentConfig()
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch if self.train else 0, index])
        image, obj, ignore = self.source.load(index)
        if not obj.any():
            raise ValueError(f"instance {self.source.describe(index)} has an empty mask")
        sim = self.simulation
        if self.train:
            image, obj, ignore = augment(image, obj, ignore, rng, self.augmentation)
            points = noisy_extreme_points(obj, rng, sim.point_noise)
        else:
            points = extreme_points(obj)
        if rng.random() < sim.three_point_probability:
            points = drop_to_three_points(points, rng)
        positive = negative = np.empty((0, 2))
        if self.train and rng.random() < sim.click_probability:
            positive, negative = sample_training_clicks(
                obj,
                rng,
                int(rng.integers(0, sim.max_positive_clicks + 1)),
                int(rng.integers(0, sim.max_negative_clicks + 1)),
                box=self.encoder.crop_box(points),
                distance_range=tuple(sim.click_distance),
            )
        encoded = self.encoder.encode(image, points, positive, negative)
        box, size = encoded.box, self.spec.input_size
        target = crop_resize(obj.astype(np.uint8), box, size, cv2.INTER_NEAREST)
        ignored = crop_resize(ignore.astype(np.uint8), box, size, cv2.INTER_NEAREST)
        return {
            "input": torch.from_numpy(normalize_input(encoded.input, self.spec)),
            "target": torch.from_numpy(target[None].astype(np.float32)),
            "valid": torch.from_numpy((1 - ignored[None]).astype(np.float32)),
            "extreme": torch.from_numpy(pad_points(to_canvas(points, box, size), 4)),
            "positive": torch.from_numpy(pad_points(to_canvas(positive, box, size), sim.max_positive_clicks)),
            "negative": torch.from_numpy(pad_points(to_canvas(negative, box, size), sim.max_negative_clicks)),
        }

