"""Object-instance data sets and the training sample pipeline.

One sample is one object instance. A *source* lists instances and loads one as
(image (H, W, 3) uint8 RGB, object (H, W) bool, ignore (H, W) bool). Sources:
folders of images + masks (0 background, 255 object, 128 ignore), folders of
images + region label maps (BSDS500 layout), COCO instance json (pycocotools),
PASCAL VOC 2012 SegmentationObject and SBD instance masks.

:class:`InstanceDataset` turns an instance into the network input of SPEC
sections 2 and 4: simulated extreme points (and clicks), the relaxed crop resized
to ``InputSpec.input_size``, and the SFG map from :func:`fairs_sdk.sfg.soft_focus`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fairs_sdk.config import InputSpec
from fairs_sdk.crop import crop_box, crop_resize, to_canvas

from .guidance import guidance_map
from .simulate import drop_to_three_points, extreme_points, noisy_extreme_points, sample_training_clicks

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
IGNORE_VALUE = 128

Loaded = tuple[np.ndarray, np.ndarray, np.ndarray]


def read_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image; ValueError if it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_gray(path: str | Path) -> np.ndarray:
    """(H, W) single-channel map as stored (first channel of a colour file)."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ValueError(f"cannot read mask {path}")
    return data[..., 0] if data.ndim == 3 else data


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise ValueError(f"no image folder {folder}")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


class InstanceSource:
    """A list of object instances; ``load(i)`` gives (image, object, ignore)."""

    name: str = "source"

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> Loaded:
        raise NotImplementedError

    def describe(self, index: int) -> str:
        """A short human-readable id of instance ``index`` (file and region)."""
        return f"{self.name}[{index}]"


class FolderMasks(InstanceSource):
    """``root/images/<stem>.*`` + ``root/masks/<stem>.png``; one instance per mask.

    Object = mask > 0 except ``ignore_value`` (128), which is ignore.
    """

    def __init__(self, root: str | Path, ignore_value: int | None = IGNORE_VALUE) -> None:
        root = Path(root)
        images = _images_by_stem(root / "images")
        masks = sorted((root / "masks").glob("*.png")) if (root / "masks").is_dir() else []
        self.items = [(images[m.stem], m) for m in masks if m.stem in images]
        if not self.items:
            raise ValueError(f"no image/mask pairs under {root} (expected images/ and masks/)")
        self.ignore_value = ignore_value
        self.name = root.name

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Loaded:
        image_path, mask_path = self.items[index]
        mask = read_gray(mask_path)
        ignore = mask == self.ignore_value if self.ignore_value is not None else np.zeros(mask.shape, bool)
        return read_rgb(image_path), (mask > 0) & ~ignore, ignore

    def describe(self, index: int) -> str:
        return self.items[index][1].name


class FolderLabelMaps(InstanceSource):
    """``root/images/<id>.*`` + ``root/label_maps/<id>_gt<k>.png`` (BSDS500 layout).

    Every region id (> 0) of every map whose area is ``area_range`` of the image
    (1 to 60 % by default) is an instance. The index reads every map once.
    """

    PATTERN = re.compile(r"^(?P<stem>.+)_gt(?P<k>\d+)$")

    def __init__(self, root: str | Path, area_range: tuple[float, float] = (0.01, 0.60), max_maps: int | None = None) -> None:
        root = Path(root)
        images = _images_by_stem(root / "images")
        maps = sorted((root / "label_maps").glob("*.png")) if (root / "label_maps").is_dir() else []
        self.items: list[tuple[Path, Path, int]] = []
        for map_path in maps[:max_maps]:
            match = self.PATTERN.match(map_path.stem)
            if not match or match["stem"] not in images:
                continue
            labels = read_gray(map_path)
            ids, counts = np.unique(labels, return_counts=True)
            fractions = counts / labels.size
            for region, fraction in zip(ids, fractions):
                if region > 0 and area_range[0] <= fraction <= area_range[1]:
                    self.items.append((images[match["stem"]], map_path, int(region)))
        if not self.items:
            raise ValueError(f"no label-map regions under {root} (expected images/ and label_maps/)")
        self.name = root.name

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Loaded:
        image_path, map_path, region = self.items[index]
        labels = read_gray(map_path)
        return read_rgb(image_path), labels == region, np.zeros(labels.shape, bool)

    def describe(self, index: int) -> str:
        return f"{self.items[index][1].name}#{self.items[index][2]}"


class CocoInstances(InstanceSource):
    """COCO instance annotations (pycocotools); crowd annotations and tiny objects skipped."""

    def __init__(self, annotations: str | Path, images: str | Path, min_area: float = 100.0) -> None:
        from pycocotools.coco import COCO

        self.coco = COCO(str(annotations))
        self.images = Path(images)
        self.ann_ids = [
            a["id"] for a in self.coco.dataset.get("annotations", []) if not a.get("iscrowd", 0) and a.get("area", 0) >= min_area
        ]
        if not self.ann_ids:
            raise ValueError(f"no usable instances in {annotations}")
        self.name = Path(annotations).stem

    def __len__(self) -> int:
        return len(self.ann_ids)

    def load(self, index: int) -> Loaded:
        ann = self.coco.anns[self.ann_ids[index]]
        info = self.coco.imgs[ann["image_id"]]
        image = read_rgb(self.images / info["file_name"])
        mask = self.coco.annToMask(ann).astype(bool)
        return image, mask, np.zeros(mask.shape, bool)

    def describe(self, index: int) -> str:
        return f"coco ann {self.ann_ids[index]}"


class VOCInstances(InstanceSource):
    """PASCAL VOC 2012 ``SegmentationObject`` instances (255 = ignore) of one split list.

    ``root`` is VOCdevkit/VOC2012; ``split`` names ImageSets/Segmentation/<split>.txt.
    """

    def __init__(self, root: str | Path, split: str = "train", min_area: int = 100) -> None:
        from PIL import Image

        root = Path(root)
        split_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not split_file.is_file():
            raise ValueError(f"no VOC split file {split_file}")
        self.root = root
        self.items: list[tuple[str, int]] = []
        for stem in split_file.read_text().split():
            labels = np.asarray(Image.open(root / "SegmentationObject" / f"{stem}.png"))
            for region, count in zip(*np.unique(labels, return_counts=True)):
                if 0 < region < 255 and count >= min_area:
                    self.items.append((stem, int(region)))
        self.name = f"voc_{split}"

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Loaded:
        from PIL import Image

        stem, region = self.items[index]
        labels = np.asarray(Image.open(self.root / "SegmentationObject" / f"{stem}.png"))
        return read_rgb(self.root / "JPEGImages" / f"{stem}.jpg"), labels == region, labels == 255

    def describe(self, index: int) -> str:
        return f"{self.items[index][0]}#{self.items[index][1]}"


class SBDInstances(InstanceSource):
    """SBD ``inst/<stem>.mat`` instance masks of one split list (needs scipy)."""

    def __init__(self, root: str | Path, split: str = "train", min_area: int = 100) -> None:
        root = Path(root)
        split_file = root / f"{split}.txt"
        if not split_file.is_file():
            raise ValueError(f"no SBD split file {split_file}")
        self.root = root
        self.items: list[tuple[str, int]] = []
        for stem in split_file.read_text().split():
            labels = self._labels(stem)
            for region, count in zip(*np.unique(labels, return_counts=True)):
                if region > 0 and count >= min_area:
                    self.items.append((stem, int(region)))
        self.name = f"sbd_{split}"

    def _labels(self, stem: str) -> np.ndarray:
        try:
            from scipy.io import loadmat
        except ImportError as error:
            raise ValueError("SBD .mat masks need scipy (pip install scipy)") from error
        return loadmat(str(self.root / "inst" / f"{stem}.mat"))["GTinst"][0]["Segmentation"][0]

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Loaded:
        stem, region = self.items[index]
        labels = self._labels(stem)
        return read_rgb(self.root / "img" / f"{stem}.jpg"), labels == region, np.zeros(labels.shape, bool)


class ConcatSource(InstanceSource):
    """Several sources as one, in order."""

    def __init__(self, sources: Sequence[InstanceSource]) -> None:
        if not sources:
            raise ValueError("ConcatSource needs at least one source")
        self.sources = list(sources)
        self.offsets = np.cumsum([0] + [len(s) for s in self.sources])
        self.name = "+".join(s.name for s in self.sources)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _locate(self, index: int) -> tuple[InstanceSource, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        which = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return self.sources[which], index - int(self.offsets[which])

    def load(self, index: int) -> Loaded:
        source, local = self._locate(index)
        return source.load(local)

    def describe(self, index: int) -> str:
        source, local = self._locate(index)
        return f"{source.name}/{source.describe(local)}"


class Subset(InstanceSource):
    """The instances of ``source`` at ``indices``."""

    def __init__(self, source: InstanceSource, indices: Sequence[int]) -> None:
        self.source, self.indices = source, list(indices)
        self.name = source.name

    def __len__(self) -> int:
        return len(self.indices)

    def load(self, index: int) -> Loaded:
        return self.source.load(self.indices[index])

    def describe(self, index: int) -> str:
        return self.source.describe(self.indices[index])


class InMemorySource(InstanceSource):
    """All instances of ``source`` loaded once and kept in memory (small sets, tests).

    With ``max_side`` each image and its masks are shrunk (area / nearest
    interpolation) so that the longer side is at most ``max_side`` pixels.
    """

    def __init__(self, source: InstanceSource, max_side: int | None = None) -> None:
        self.items: list[Loaded] = []
        self.names = [source.describe(i) for i in range(len(source))]
        for index in range(len(source)):
            image, obj, ignore = source.load(index)
            scale = 1.0 if max_side is None else min(1.0, max_side / max(image.shape[:2]))
            if scale < 1.0:
                size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                obj = cv2.resize(obj.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
                ignore = cv2.resize(ignore.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            self.items.append((image, obj, ignore))
        self.name = source.name

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int) -> Loaded:
        return self.items[index]

    def describe(self, index: int) -> str:
        return self.names[index]


def build_source(spec: dict[str, Any] | str) -> InstanceSource:
    """A source from a config entry.

    A string is a folder (``masks/`` or ``label_maps/`` layout, detected). A dict has
    ``kind``: "folder" (root), "coco" (annotations, images), "voc" (root, split),
    "sbd" (root, split); optional ``max_instances`` keeps the first n instances.
    """
    if isinstance(spec, (str, Path)):
        spec = {"kind": "folder", "root": str(spec)}
    spec = dict(spec)
    kind = spec.pop("kind", "folder")
    limit = spec.pop("max_instances", None)
    if kind == "folder":
        root = Path(spec.pop("root"))
        if (root / "label_maps").is_dir():
            source: InstanceSource = FolderLabelMaps(root, **spec)
        else:
            source = FolderMasks(root, **spec)
    elif kind == "coco":
        source = CocoInstances(**spec)
    elif kind == "voc":
        source = VOCInstances(**spec)
    elif kind == "sbd":
        source = SBDInstances(**spec)
    else:
        raise ValueError(f"unknown data source kind {kind!r}; use folder, coco, voc or sbd")
    if limit is not None:
        source = Subset(source, range(min(int(limit), len(source))))
    return source


def build_sources(specs: Sequence[dict[str, Any] | str]) -> InstanceSource:
    """One source from a list of config entries (see :func:`build_source`)."""
    sources = [build_source(s) for s in specs]
    return sources[0] if len(sources) == 1 else ConcatSource(sources)


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


@dataclass
class AugmentConfig:
    """Random scale, rotation (degrees) and horizontal flip, about the object's centre."""

    scale: tuple[float, float] = (0.75, 1.25)
    rotation: float = 20.0
    flip_probability: float = 0.5


def augment(image: np.ndarray, obj: np.ndarray, ignore: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> Loaded:
    """Randomly flipped, scaled and rotated copies (same size); masks use nearest neighbour."""
    if rng.random() < config.flip_probability:
        image, obj, ignore = image[:, ::-1], obj[:, ::-1], ignore[:, ::-1]
    scale = rng.uniform(*config.scale)
    angle = rng.uniform(-config.rotation, config.rotation)
    ys, xs = np.nonzero(obj)
    centre = (float(xs.min() + xs.max()) / 2, float(ys.min() + ys.max()) / 2)
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    size = (image.shape[1], image.shape[0])
    warped_image = cv2.warpAffine(np.ascontiguousarray(image), matrix, size, flags=cv2.INTER_LINEAR)
    warped_obj = cv2.warpAffine(np.ascontiguousarray(obj, dtype=np.uint8), matrix, size, flags=cv2.INTER_NEAREST) > 0
    warped_ignore = cv2.warpAffine(np.ascontiguousarray(ignore, dtype=np.uint8), matrix, size, flags=cv2.INTER_NEAREST) > 0
    if not warped_obj.any():
        return np.ascontiguousarray(image), np.ascontiguousarray(obj), np.ascontiguousarray(ignore)
    return warped_image, warped_obj, warped_ignore


def normalize_rgb(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 ((x / 255 - mean) / std), as InputNormalizer."""
    scale = 1.0 / (255.0 * np.asarray(spec.std, dtype=np.float32))
    offset = np.asarray(spec.mean, dtype=np.float32) / np.asarray(spec.std, dtype=np.float32)
    return (rgb.astype(np.float32) * scale - offset).transpose(2, 0, 1)


def encode_input(
    image: np.ndarray,
    spec: InputSpec,
    extreme: np.ndarray,
    positive: np.ndarray | None = None,
    negative: np.ndarray | None = None,
    guidance: str = "sfg",
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Network input for one image and its clicks (SPEC section 2): ((4, S, S) float32, box).

    Points are (x, y) image pixels; the box encloses the extreme points and positive
    clicks, enlarged by ``spec.relax``; S = ``spec.input_size``. ``guidance`` picks the
    4th channel: "sfg" (FAIRS) or "gaussian" (DEXTR's heat map, for the ablation).
    """
    positive = np.empty((0, 2)) if positive is None else np.asarray(positive, dtype=np.float64).reshape(-1, 2)
    negative = np.empty((0, 2)) if negative is None else np.asarray(negative, dtype=np.float64).reshape(-1, 2)
    box = crop_box(np.concatenate([extreme, positive]), spec.relax)
    size = spec.input_size
    crop = crop_resize(image, box, size)
    heat = guidance_map(
        guidance,
        (size, size),
        to_canvas(extreme, box, size),
        to_canvas(positive, box, size),
        to_canvas(negative, box, size),
        beta=spec.beta,
        kappa=spec.kappa,
        sigma=spec.sigma,
    )
    return np.concatenate([normalize_rgb(crop, spec), heat[None]]), box


class InstanceDataset(Dataset):
    """Training / validation samples from an :class:`InstanceSource`.

    ``dataset[i]`` is a dict of tensors: ``input`` (4, S, S) float32 (normalised RGB +
    guidance map, see :func:`encode_input`), ``target`` (1, S, S) float32 in {0, 1},
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
                box=crop_box(points, self.spec.relax),
                distance_range=tuple(sim.click_distance),
            )
        net_input, box = encode_input(image, self.spec, points, positive, negative, self.guidance)
        size = self.spec.input_size
        target = crop_resize(obj.astype(np.uint8), box, size, cv2.INTER_NEAREST)
        ignored = crop_resize(ignore.astype(np.uint8), box, size, cv2.INTER_NEAREST)
        return {
            "input": torch.from_numpy(net_input),
            "target": torch.from_numpy(target[None].astype(np.float32)),
            "valid": torch.from_numpy((1 - ignored[None]).astype(np.float32)),
            "extreme": torch.from_numpy(pad_points(to_canvas(points, box, size), 4)),
            "positive": torch.from_numpy(pad_points(to_canvas(positive, box, size), sim.max_positive_clicks)),
            "negative": torch.from_numpy(pad_points(to_canvas(negative, box, size), sim.max_negative_clicks)),
        }

