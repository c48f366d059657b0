"""``annotate_file``: a COCO file with extreme points in, the same file with masks out.

Steps: read and check the file (:mod:`~fairs_sdk.annotate.coco_io`), open the
journal (:mod:`~fairs_sdk.annotate.journal`; with ``resume`` its images are skipped),
stream the remaining images through an engine (:mod:`~fairs_sdk.annotate.local` or
:mod:`~fairs_sdk.annotate.ray_engine`), journal each finished image, and at the end
write the output from the journal in the input's order (temporary file, then rename)
and delete the journal. Interrupted at any point, the journal keeps every finished
image and the output is either absent or complete.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fairs_sdk.annotate.coco_io import file_sha256, image_tasks, read_coco, write_output
from fairs_sdk.annotate.journal import Journal, journal_path
from fairs_sdk.annotate.options import SegmenterOptions
from fairs_sdk.annotate.progress import Progress

__all__ = ["annotate_file", "Summary", "ENGINES"]

ENGINES = ("local", "ray")


@dataclass
class Summary:
    """What a run did.

    Attributes:
        output: the written file.
        images, objects: images with annotations and annotations in the input.
        resumed_images, resumed_objects: taken from the journal of an earlier run.
        computed_images, computed_objects: done in this run.
        failed: ``[{"id", "image_id", "error"}]`` of the annotations without a mask.
        seconds: wall time of this run, start to output written.
        first_result_s: seconds until the first image of this run was done (start-up
            included: model loading, worker processes or Ray); None if none was computed.
    """

    output: Path
    images: int
    objects: int
    resumed_images: int
    resumed_objects: int
    computed_images: int = 0
    computed_objects: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    first_result_s: float | None = None

    @property
    def objects_per_s(self) -> float:
        """Objects computed in this run per second of its wall time (start-up included)."""
        return self.computed_objects / self.seconds if self.seconds > 0 else 0.0


def _engine(name: str, tasks, options: SegmenterOptions, workers: int | None, address: str | None):
    if name == "local":
        from fairs_sdk.annotate.local import run_local

        if address is not None:
            raise ValueError("--address is for --engine ray")
        return run_local(tasks, options, workers or 1)
    if name == "ray":
        from fairs_sdk.annotate.ray_engine import run_ray

        return run_ray(tasks, options, workers, address)
    raise ValueError(f"unknown engine {name!r}; use one of {', '.join(ENGINES)}")


def annotate_file(
    input_path: str | os.PathLike,
    images_dir: str | os.PathLike,
    output: str | os.PathLike,
    options: SegmenterOptions | None = None,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    resume: bool = False,
    progress: bool = True,
    stream: TextIO | None = None,
) -> Summary:
    """Fill ``segmentation``, ``area``, ``bbox`` and ``score`` of every annotation of a COCO file.

    Args:
        input_path: COCO file whose annotations have ``extreme_points`` (see
            :mod:`~fairs_sdk.annotate.coco_io` for the formats).
        images_dir: folder that the images' ``file_name`` are relative to.
        output: file to write (atomically); its journal is ``<output>.journal``.
        options: how the Segmenters are built (model, backend, threads, threshold).
        engine: "local" (processes of this machine) or "ray".
        workers: processes or Ray actors (local default 1: this process).
        address: a Ray cluster's address (engine "ray" only).
        resume: go on from the journal of an interrupted run with the same input,
            model and threshold (its images are not computed again).
        progress: draw a progress line on ``stream`` (default stderr).

    Returns:
        :class:`Summary`; annotations that could not be annotated (no points, points
        outside their image, missing or unreadable image) are in ``failed`` and left
        out of the output's ``annotations`` (listed in its ``fairs_annotate`` section).

    Raises:
        FileNotFoundError, ValueError: an unusable input file, images folder or journal.
        KeyboardInterrupt: passed on after the journal is closed; resume later.
    """
    t0 = time.perf_counter()
    options = options or SegmenterOptions()
    if not Path(images_dir).is_dir():
        raise FileNotFoundError(f"images folder not found: {images_dir}")
    if Path(output).resolve() == Path(input_path).resolve():
        raise ValueError(f"the output {output} is the input file: write the annotated file elsewhere")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    data = read_coco(input_path)
    header = {
        "fairs_annotate_journal": 1,
        "input_sha256": file_sha256(input_path),
        "model": None if options.model is None else os.path.abspath(options.model),
        "backend": options.backend,
        "providers": None if options.providers is None else list(options.providers),
        "threshold": options.threshold,
    }
    journal = Journal.open(journal_path(output), header, resume)
    summary = Summary(
        output=Path(output),
        images=len({a.get("image_id") for a in data["annotations"] if isinstance(a.get("image_id"), (int, str))}),
        objects=len(data["annotations"]),
        resumed_images=len(journal.done),
        resumed_objects=sum(len(r) for r in journal.done.values()),
    )
    try:
        bar = Progress(summary.objects, summary.resumed_objects, stream=stream, enabled=progress)
        tasks = image_tasks(data, images_dir, skip=set(journal.done))
        with contextlib.closing(_engine(engine, tasks, options, workers, address)) as results:
            for image_id, records in results:
                journal.append(image_id, records)
                if summary.first_result_s is None:
                    summary.first_result_s = time.perf_counter() - t0
                summary.computed_images += 1
                summary.computed_objects += len(records)
                bar.update(len(records))
        bar.close()
        records_by_id = {r["id"]: r for records in journal.done.values() for r in records}
        info = {"model": options.model or "default", "threshold": options.threshold}
        summary.failed = write_output(data, records_by_id, output, info)
    except BaseException:
        journal.close()
        raise
    journal.close(remove=True)
    summary.seconds = time.perf_counter() - t0
    return summary
