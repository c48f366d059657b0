"""Bulk annotation: masks for a COCO file's objects from their extreme points (``fairs annotate``).

- :mod:`~fairs_sdk.annotate.coco_io`: the COCO file in (extreme points, clicks) and out
  (RLE, area, bbox, score), split into per-image tasks.
- :mod:`~fairs_sdk.annotate.image_task`: :func:`annotate_image`, the work on one image
  that every engine runs (one ``Segmenter.segment_many`` call per image).
- :mod:`~fairs_sdk.annotate.local` and :mod:`~fairs_sdk.annotate.ray_engine`: the engines
  (this machine's processes; a Ray Data pipeline).
- :mod:`~fairs_sdk.annotate.journal`: finished images survive a kill; ``--resume``.
- :mod:`~fairs_sdk.annotate.pipeline`: :func:`annotate_file`, all of it.

Uses only the Segmenter's public methods; never imports torch. Ray is imported only
by the Ray engine.
"""

from fairs_sdk.annotate.coco_io import image_tasks, read_coco, write_output
from fairs_sdk.annotate.image_task import annotate_image, run_task
from fairs_sdk.annotate.options import SegmenterOptions
from fairs_sdk.annotate.pipeline import Summary, annotate_file

__all__ = [
    "annotate_file",
    "annotate_image",
    "run_task",
    "image_tasks",
    "read_coco",
    "write_output",
    "SegmenterOptions",
    "Summary",
]
