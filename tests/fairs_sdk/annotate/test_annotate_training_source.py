"""A file written by ``fairs annotate`` is a ``fairs-train`` data source (kind "coco", pycocotools)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fairs_sdk.annotate import SegmenterOptions, annotate_file


def test_training_reads_the_written_file_as_a_coco_source(scene, red_model, tmp_path):
    mask_api = pytest.importorskip("pycocotools.mask")
    sources = pytest.importorskip("fairs_sdk.training.sources")
    coco, images, _ = scene
    out = tmp_path / "annotated.json"
    annotate_file(coco, images, out, SegmenterOptions(model=str(red_model)), progress=False)
    written = json.loads(out.read_text())["annotations"]

    source = sources.build_source({"kind": "coco", "annotations": str(out), "images": str(images), "min_area": 1})
    assert len(source) == len(written), f"the source has {len(source)} instances, the file {len(written)} annotations"
    for index, ann in enumerate(written):
        image, obj, ignore = source.load(index)
        rle = ann["segmentation"]
        expected = mask_api.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
        assert image.shape[:2] == obj.shape == tuple(rle["size"]), f"instance {index}: shapes differ"
        assert np.array_equal(obj, expected), f"instance {index}: the source's mask is not the written RLE"
        assert not ignore.any()
