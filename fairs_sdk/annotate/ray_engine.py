"""The Ray engine of ``fairs annotate``: the same per-image work as a Ray Data pipeline.

``ray.data.from_items`` of the image tasks, then ``map_batches`` with
:class:`RayAnnotator`, a callable class: each Ray actor builds one Segmenter and
annotates one image per call (:func:`~fairs_sdk.annotate.image_task.run_task`, as the
local engine does), so both engines write the same bytes. Results stream back to the
driver as images finish; the driver journals them.

Ray runs where it is: an existing cluster (``address``, e.g. "auto" or
"ray://head:10001"), one already started in this process, or else a local one
started here with ``workers * threads`` CPUs and stopped at the end. On a cluster,
every node needs fairs_sdk (with the model file at the same path, or the bundled
default) and must see the image folder at the same path.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from fairs_sdk.annotate.coco_io import ImageTask
from fairs_sdk.annotate.image_task import run_task
from fairs_sdk.annotate.options import SegmenterOptions

__all__ = ["RayAnnotator", "run_ray", "import_ray"]


def import_ray():
    """The ``ray`` module, with Ray Data; ImportError naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (needs pandas and pyarrow: the ray[data] extra)
    except ImportError as err:
        raise ImportError(
            f"--engine ray needs Ray Data ({err.name or err} is missing): pip install 'fairs-sdk[ray]'",
            name="ray",
        ) from err
    return ray


class RayAnnotator:
    """Ray Data UDF: one Segmenter per actor; a batch of JSON image tasks -> JSON results.

    Input column ``task`` (JSON of an :class:`ImageTask`); output column ``result``
    (JSON of ``{"image_id", "records"}``).
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = SegmenterOptions.from_dict(options)
        self.segmenter = self.options.build()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = []
        for text in batch["task"]:
            task = json.loads(text)
            records = run_task(self.segmenter, task, self.options.threshold)
            out.append(json.dumps({"image_id": task["image_id"], "records": records}))
        return {"result": np.array(out, dtype=object)}


def run_ray(
    tasks: Iterable[ImageTask],
    options: SegmenterOptions,
    workers: int | None = None,
    address: str | None = None,
    images_per_block: int = 4,
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """(image id, records) of each task, as they finish, computed by Ray actors.

    Args:
        tasks: the images to annotate.
        options: how each actor builds its Segmenter; ``options.threads`` (default 1)
            is also the CPUs each actor reserves.
        workers: actors; ``None``: the cluster's CPUs // threads (a local Ray started
            here gets this machine's CPUs), at least 1.
        address: a running cluster's address; ``None`` uses the Ray of this process or
            starts a local one.
        images_per_block: images per Ray Data block. An actor's results reach the driver
            (journal, progress) a block at a time, so a kill loses at most the blocks in
            flight; larger blocks mean fewer Ray objects for very large files.
    """
    ray = import_ray()
    threads = options.threads or 1
    options = dataclasses.replace(options, threads=threads)
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if images_per_block < 1:
        raise ValueError(f"images_per_block must be >= 1, got {images_per_block}")
    started = False
    if not ray.is_initialized():
        if address is not None:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            cpus = (workers or max(1, (os.cpu_count() or 1) // threads)) * threads
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        started = True
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # fairs annotate draws its own
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        items = [{"task": json.dumps(t)} for t in tasks]
        if not items:
            return
        blocks = max(math.ceil(len(items) / images_per_block), min(len(items), workers))  # every actor gets work
        dataset = ray.data.from_items(items, override_num_blocks=blocks)
        results = dataset.map_batches(
            RayAnnotator,
            fn_constructor_kwargs={"options": options.to_dict()},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=threads,
        )
        for row in results.iter_rows():
            result = json.loads(row["result"])
            yield result["image_id"], result["records"]
    finally:
        if started:
            ray.shutdown()
