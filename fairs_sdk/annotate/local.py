"""The default engine of ``fairs annotate``: this machine's processes.

With one worker the images run in this process, one after the other. With more,
each of ``workers`` spawned processes builds its own Segmenter once and takes whole
images; at most ``2 * workers`` images are in flight, so memory stays flat however
long the file. Results come back as images finish (not in file order).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from fairs_sdk.annotate.coco_io import ImageTask
from fairs_sdk.annotate.image_task import run_task
from fairs_sdk.annotate.options import SegmenterOptions

__all__ = ["run_local"]

_worker_segmenter = None
_worker_options: SegmenterOptions | None = None


def _init_worker(options: SegmenterOptions) -> None:
    """Pool initializer: Ctrl-C is the parent's to handle; build this process's Segmenter."""
    global _worker_segmenter, _worker_options
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_options = options
    _worker_segmenter = options.build()


def _work(task: ImageTask) -> tuple[Any, list[dict[str, Any]]]:
    return task["image_id"], run_task(_worker_segmenter, task, _worker_options.threshold)


def run_local(
    tasks: Iterable[ImageTask], options: SegmenterOptions, workers: int = 1
) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """(image id, records) of each task, as they finish.

    Args:
        tasks: the images to annotate (:func:`~fairs_sdk.annotate.coco_io.image_tasks`).
        options: how each worker builds its Segmenter.
        workers: processes; 1 runs in this process.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers == 1:
        segmenter = None
        for task in tasks:
            if segmenter is None and task["objects"]:
                segmenter = options.build()
            yield task["image_id"], run_task(segmenter, task, options.threshold)
        return
    pool = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(options,)
    )
    pending: set[Future] = set()
    try:
        source = iter(tasks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * workers:
                task = next(source, None)
                if task is None:
                    exhausted = True
                else:
                    pending.add(pool.submit(_work, task))
            if not pending:
                break
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    finally:
        # On an error or Ctrl-C: drop what has not started; the images in flight end on their own.
        pool.shutdown(wait=False, cancel_futures=True)
