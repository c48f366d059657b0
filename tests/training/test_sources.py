"""Instance sources: folder masks, BSDS label maps, COCO json, VOC SegmentationObject."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fairs_sdk.training.sources import (
    CocoInstances,
    FolderLabelMaps,
    FolderMasks,
    InstanceSource,
    Occluded,
    VOCInstances,
    build_source,
    build_sources,
)


def write_rgb(path, h=20, w=30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((h, w, 3), 100, np.uint8))


def test_folder_masks_object_and_ignore(tmp_path) -> None:
    write_rgb(tmp_path / "images" / "a.jpg")
    mask = np.zeros((20, 30), np.uint8)
    mask[5:10, 5:10] = 255
    mask[0:2, 0:2] = 128
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), mask)
    image, obj, ignore = FolderMasks(tmp_path).load(0)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    assert obj.sum() == 25 and ignore.sum() == 4, "255 is object, 128 is ignore"
    assert not (obj & ignore).any()


def test_label_maps_keep_regions_in_area_range(tmp_path) -> None:
    write_rgb(tmp_path / "images" / "7.jpg", 10, 10)
    labels = np.ones((10, 10), np.uint8)  # region 1: 70 %
    labels[0:3, 0:10] = 2  # region 2: 30 %
    labels[9, 9] = 3  # region 3: 1 %
    (tmp_path / "label_maps").mkdir()
    cv2.imwrite(str(tmp_path / "label_maps" / "7_gt0.png"), labels)
    source = build_source(str(tmp_path))
    assert isinstance(source, FolderLabelMaps), "a label_maps/ folder must be detected"
    assert [item[2] for item in source.items] == [2, 3], "only regions covering 1 to 60 % of the image"
    assert source.load(0)[1].sum() == 30, "region 2 is the top 3 rows"


def test_coco_instances_skip_crowd(tmp_path) -> None:
    write_rgb(tmp_path / "img" / "x.jpg")
    square = [5.0, 5.0, 25.0, 5.0, 25.0, 15.0, 5.0, 15.0]
    data = {
        "images": [{"id": 1, "file_name": "x.jpg", "height": 20, "width": 30}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [square], "area": 200.0, "bbox": [5, 5, 20, 10], "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 1, "segmentation": [square], "area": 200.0, "bbox": [5, 5, 20, 10], "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    source = CocoInstances(tmp_path / "ann.json", tmp_path / "img", min_area=10)
    assert source.ann_ids == [10], "crowd annotations must be skipped"
    _, obj, _ = source.load(0)
    assert obj.shape == (20, 30) and 150 <= obj.sum() <= 260, f"polygon mask area {obj.sum()}"


def test_voc_instances_and_void(tmp_path) -> None:
    from PIL import Image

    root = tmp_path / "VOC2012"
    write_rgb(root / "JPEGImages" / "2007_000001.jpg", 20, 20)
    labels = np.zeros((20, 20), np.uint8)
    labels[2:12, 2:12] = 1
    labels[14:19, 14:19] = 2
    labels[1, :] = 255
    (root / "SegmentationObject").mkdir(parents=True)
    palette_image = Image.new("P", (20, 20))
    palette_image.putdata(labels.flatten().tolist())
    palette_image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (252 * 3) + [224, 224, 192])
    palette_image.save(root / "SegmentationObject" / "2007_000001.png")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000001\n")
    source = VOCInstances(root, "train", min_area=10)
    assert source.items == [("2007_000001", 1), ("2007_000001", 2)], source.items
    _, obj, ignore = source.load(0)
    assert obj.sum() == 100 and ignore.sum() == 20, "palette index is the instance id, 255 is void"


def test_build_sources_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown data source kind"):
        build_source({"kind": "lmdb", "root": str(tmp_path)})
    with pytest.raises(ValueError, match="no image folder"):
        build_sources([str(tmp_path)])


class _Fixed(InstanceSource):
    """One instance: a grey image with ``obj`` as the object."""

    def __init__(self, image: np.ndarray, obj: np.ndarray) -> None:
        self.image, self.obj = image, obj

    def __len__(self) -> int:
        return 1

    def load(self, index: int):
        return self.image, self.obj, np.zeros(self.obj.shape, bool)


def _square_object(value: int = 100) -> _Fixed:
    obj = np.zeros((64, 64), bool)
    obj[16:48, 16:48] = True
    return _Fixed(np.full((64, 64, 3), value, np.uint8), obj)


def test_occluded_target_is_the_visible_object() -> None:
    source = Occluded(_square_object(100), _square_object(250), seed=3)
    image, obj, _ = source.load(0)
    original = source.source.load(0)[1]
    pasted = (image == 250).all(-1)
    assert pasted.any(), "an occluder must be pasted over the object"
    assert not (obj & pasted).any(), "pasted pixels must not stay in the target"
    assert np.array_equal(obj | (pasted & original), original), "the target must be the object minus the pasted region"
    covered = (pasted & original).sum() / original.sum()
    assert 0.1 <= covered <= 0.5, f"the occluder covers {covered:.2f} of the object, outside the default cover range"


def test_occluded_is_seeded_by_index() -> None:
    first = Occluded(_square_object(100), _square_object(250), seed=3).load(0)
    again = Occluded(_square_object(100), _square_object(250), seed=3).load(0)
    other = Occluded(_square_object(100), _square_object(250), seed=4).load(0)
    assert all(np.array_equal(a, b) for a, b in zip(first, again)), "the same seed and index must give the same sample"
    assert not np.array_equal(first[1], other[1]), "another seed must place the occluder elsewhere"


def test_occluded_keeps_the_object_when_no_draw_fits() -> None:
    # the occluder covers at least a quarter of the box on each side, never at most 1 %
    source = Occluded(_square_object(100), _square_object(250), cover_range=(0.0, 0.01))
    image, obj, _ = source.load(0)
    assert np.array_equal(obj, source.source.load(0)[1]) and (image == 100).all(), "an unfitting draw must leave the instance as it was"


def test_build_source_occluders(tmp_path) -> None:
    for name, value in (("objects", 100), ("occluders", 250)):
        write_rgb(tmp_path / name / "images" / "a.jpg", 64, 64)
        cv2.imwrite(str(tmp_path / name / "images" / "a.jpg"), np.full((64, 64, 3), value, np.uint8))
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 16:48] = 255
        (tmp_path / name / "masks").mkdir()
        cv2.imwrite(str(tmp_path / name / "masks" / "a.png"), mask)
    source = build_source({"kind": "folder", "root": str(tmp_path / "objects"), "occluders": [str(tmp_path / "occluders")]})
    assert isinstance(source, Occluded), "an entry with occluders must build an Occluded source"
    assert source.load(0)[1].sum() < 32 * 32, "the built source must occlude its objects"


def test_occluded_refuses_bad_ranges() -> None:
    with pytest.raises(ValueError, match="bad occlusion ranges"):
        Occluded(_square_object(), _square_object(), cover_range=(0.5, 0.2))
