"""Object-instance data sets: where training and evaluation instances come from.

A *source* lists object instances and loads one as (image (H, W, 3) uint8 RGB,
object (H, W) bool, ignore (H, W) bool). Sources: folders of images + masks
(0 background, 255 object, 128 ignore), folders of images + region label maps
(BSDS500 layout), COCO instance json (pycocotools), PASCAL VOC 2012
SegmentationObject and SBD instance masks; plus concatenation, subsets and an
in-memory cache. :func:`build_source` makes one from a config entry.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

__all__ = [
    "Loaded",
    "InstanceSource",
    "FolderMasks",
    "FolderLabelMaps",
    "CocoInstances",
    "VOCInstances",
    "SBDInstances",
    "ConcatSource",
    "Subset",
    "InMemorySource",
    "Mirrored",
    "Occluded",
    "build_source",
    "build_sources",
    "read_rgb",
    "read_gray",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
IGNORE_VALUE = 128

#: (image (H, W, 3) uint8 RGB, object (H, W) bool, ignore (H, W) bool)
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


class Mirrored(InstanceSource):
    """The instances of ``source`` flipped left to right (image, mask and ignore map)."""

    def __init__(self, source: InstanceSource) -> None:
        self.source = source
        self.name = f"{source.name}_mirrored"

    def __len__(self) -> int:
        return len(self.source)

    def load(self, index: int) -> Loaded:
        return tuple(np.ascontiguousarray(a[:, ::-1]) for a in self.source.load(index))

    def describe(self, index: int) -> str:
        return self.source.describe(index) + " (mirrored)"


class Occluded(InstanceSource):
    """The instances of ``source`` with a region of another image pasted over part of them.

    The target is what stays visible: the object minus the pasted region. It teaches the
    case where the most salient thing in the crop is not the object but something in
    front of it (a tree trunk before a cyclist, a flower pot before a motorbike), which a
    salient-object prior gets wrong and corrective clicks must undo.

    For instance ``i`` (all draws seeded by ``seed`` and ``i``, so a cache resumes to the
    same data): an instance of ``occluders`` is cut out along its mask, scaled so that
    its box is ``scale_range`` times the object's box (each side), and placed at a random
    position that covers between ``cover_range`` of the object. Up to ``tries`` draws are
    made; if none covers that much, the instance is returned unoccluded.
    """

    def __init__(
        self,
        source: InstanceSource,
        occluders: InstanceSource,
        seed: int = 0,
        scale_range: tuple[float, float] = (0.25, 0.9),
        cover_range: tuple[float, float] = (0.1, 0.5),
        tries: int = 8,
    ) -> None:
        if not (0.0 < scale_range[0] <= scale_range[1] and 0.0 <= cover_range[0] < cover_range[1] <= 1.0):
            raise ValueError(f"bad occlusion ranges: scale {scale_range}, cover {cover_range}")
        self.source, self.occluders = source, occluders
        self.seed, self.scale_range, self.cover_range, self.tries = seed, scale_range, cover_range, tries
        self.name = f"{source.name}_occluded"

    def __len__(self) -> int:
        return len(self.source)

    def load(self, index: int) -> Loaded:
        image, obj, ignore = self.source.load(index)
        rng = np.random.default_rng([self.seed, int(index)])
        ys, xs = np.nonzero(obj)
        if len(ys) == 0:
            return image, obj, ignore
        box_w, box_h = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
        area = len(ys)
        for _ in range(self.tries):
            patch, patch_mask = self._cut(int(rng.integers(len(self.occluders))))
            if patch is None:
                continue
            scale_w, scale_h = rng.uniform(*self.scale_range, size=2)
            width = max(2, round(box_w * scale_w))
            height = max(2, round(box_h * scale_h))
            patch = cv2.resize(patch, (width, height), interpolation=cv2.INTER_AREA)
            patch_mask = cv2.resize(patch_mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
            # the patch's centre falls on an object pixel, so it overlaps the object
            pick = int(rng.integers(area))
            x0, y0 = int(xs[pick]) - width // 2, int(ys[pick]) - height // 2
            layer = np.zeros(obj.shape, bool)
            sx0, sy0 = max(0, -x0), max(0, -y0)
            dx0, dy0 = max(0, x0), max(0, y0)
            dx1, dy1 = min(obj.shape[1], x0 + width), min(obj.shape[0], y0 + height)
            if dx1 <= dx0 or dy1 <= dy0:
                continue
            cut = patch_mask[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0]
            layer[dy0:dy1, dx0:dx1] = cut
            covered = (layer & obj).sum() / area
            if not self.cover_range[0] <= covered <= self.cover_range[1]:
                continue
            out = image.copy()
            out[layer] = patch[sy0 : sy0 + dy1 - dy0, sx0 : sx0 + dx1 - dx0][cut]
            return out, obj & ~layer, ignore & ~layer
        return image, obj, ignore

    def _cut(self, index: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The occluder's pixels and mask, cut to the mask's box; (None, None) if it is empty."""
        image, mask, _ = self.occluders.load(index)
        ys, xs = np.nonzero(mask)
        if len(ys) < 16:
            return None, None
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        return image[y0:y1, x0:x1], mask[y0:y1, x0:x1]

    def describe(self, index: int) -> str:
        return self.source.describe(index) + " (occluded)"


def build_source(spec: dict[str, Any] | str) -> InstanceSource:
    """A source from a config entry.

    A string is a folder (``masks/`` or ``label_maps/`` layout, detected). A dict has
    ``kind``: "folder" (root), "coco" (annotations, images), "voc" (root, split),
    "sbd" (root, split); optional ``max_instances`` keeps the first n instances and
    ``mirror: true`` flips every instance left to right; ``occluders`` (a list of source
    entries) pastes one of their instances over part of each object (:class:`Occluded`;
    ``occlusion_seed`` seeds it).
    """
    if isinstance(spec, (str, Path)):
        spec = {"kind": "folder", "root": str(spec)}
    spec = dict(spec)
    kind = spec.pop("kind", "folder")
    limit = spec.pop("max_instances", None)
    mirror = spec.pop("mirror", False)
    occluders = spec.pop("occluders", None)
    occlusion_seed = spec.pop("occlusion_seed", 0)
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
    if mirror:
        source = Mirrored(source)
    if occluders:
        source = Occluded(source, build_sources(occluders), seed=int(occlusion_seed))
    return source


def build_sources(specs: Sequence[dict[str, Any] | str]) -> InstanceSource:
    """One source from a list of config entries (see :func:`build_source`)."""
    sources = [build_source(s) for s in specs]
    return sources[0] if len(sources) == 1 else ConcatSource(sources)
