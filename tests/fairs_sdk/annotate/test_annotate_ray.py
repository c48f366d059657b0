"""The Ray engine of ``fairs annotate`` on a local Ray with 2 CPUs: the same bytes as the local engine."""

from __future__ import annotations

import json

import pytest

from fairs_sdk.annotate import SegmenterOptions, annotate_file

try:
    import ray
    import ray.data  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the install
    pytest.skip(f"the Ray engine needs ray[data] (pip install 'fairs-sdk[ray]'): {err}", allow_module_level=True)


@pytest.fixture
def local_ray():
    """A local Ray of 2 CPUs for one test, shut down after it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_writes_the_local_engines_bytes(scene, red_model, tmp_path, local_ray):
    coco, images, data = scene
    data["annotations"].append({"id": 99, "image_id": 20, "extreme_points": [[1, 1], [999, 1], [5, 9]]})  # fails
    coco.write_text(json.dumps(data))
    options = SegmenterOptions(model=str(red_model), threads=1)
    local, on_ray = tmp_path / "local.json", tmp_path / "ray.json"
    annotate_file(coco, images, local, options, engine="local", progress=False)
    summary = annotate_file(coco, images, on_ray, options, engine="ray", workers=2, progress=False)
    assert summary.computed_images == 3 and [f["id"] for f in summary.failed] == [99], summary
    assert ray.is_initialized(), "the engine must not shut down a Ray it did not start"
    assert on_ray.read_bytes() == local.read_bytes(), "the Ray engine wrote other bytes than the local engine"
