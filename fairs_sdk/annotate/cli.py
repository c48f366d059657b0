"""``fairs annotate``: bulk annotation of a COCO file from its extreme points.

    fairs annotate INPUT.json --images DIR -o OUTPUT.json [--workers N] [--threads T]
                   [--engine local|ray] [--address ADDRESS] [--resume] [--model model.onnx]

Writes OUTPUT.json: INPUT.json with every annotation's ``segmentation`` (COCO RLE),
``area``, ``bbox`` and ``score`` from the model's mask (see
:mod:`fairs_sdk.annotate.coco_io`). Progress (objects/s, ETA) goes to stderr; at the
end one summary line, and one line per failed annotation (its id and why).

Exit status: 0 when every annotation got a mask, 1 when some failed (the others are
written), 2 for an unusable input file, images folder, journal or model, 130 after
Ctrl-C (finished images are kept: run again with ``--resume``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_parser", "cmd_annotate"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``annotate`` subcommand to the ``fairs`` parser's ``subparsers``."""
    p = subparsers.add_parser(
        "annotate",
        help="fill the masks of a COCO file from its annotations' extreme points",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("input", type=Path, help="COCO file; each annotation has 'extreme_points' (and optional clicks)")
    p.add_argument("--images", type=Path, required=True, help="folder the images' file_name are relative to")
    p.add_argument("-o", "--output", type=Path, required=True, help="annotated COCO file to write")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: processes of this machine (default); ray: a Ray Data pipeline")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="processes (local, default 1: this process) or Ray actors (default: the cluster's CPUs)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="ONNX Runtime threads per worker (default: all cores; 1 per actor on Ray)")
    p.add_argument("--address", default=None, help="Ray cluster to use (e.g. auto, ray://head:10001); "
                   "default: start a local Ray")
    p.add_argument("--resume", action="store_true",
                   help="go on from the journal (OUTPUT.journal) of an interrupted run; its images are not redone")
    p.add_argument("--threshold", type=float, default=None, help="mask threshold (default: the model's, 0.5)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--model", default=None, help="ONNX model or TensorRT engine (default: bundled model)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"])
    p.add_argument("--providers", nargs="+", default=None, metavar="NAME",
                   help="ONNX Runtime providers to use, in order (tensorrt, cuda, cpu); default: all installed")
    p.set_defaults(func=cmd_annotate)
    return p


def cmd_annotate(args: argparse.Namespace) -> int:
    """Run ``fairs annotate``; returns the exit status (module docstring)."""
    from fairs_sdk.annotate.journal import journal_path
    from fairs_sdk.annotate.options import SegmenterOptions
    from fairs_sdk.annotate.pipeline import annotate_file
    from fairs_sdk.annotate.progress import format_duration

    if args.address is not None and args.engine != "ray":
        raise ValueError("--address is for --engine ray")
    options = SegmenterOptions(
        model=args.model,
        backend=args.backend,
        providers=None if args.providers is None else tuple(args.providers),
        threads=args.threads,
        threshold=args.threshold,
    )
    try:
        summary = annotate_file(
            args.input, args.images, args.output, options, engine=args.engine, workers=args.workers,
            address=args.address, resume=args.resume, progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        print(f"\nfairs annotate: interrupted; finished images are kept in {journal_path(args.output)}: "
              "run the same command with --resume to go on", file=sys.stderr)
        return 130
    for fail in summary.failed:
        print(f"failed: annotation {fail['id']} (image {fail['image_id']}): {fail['error']}", file=sys.stderr)
    print(
        f"wrote {summary.output}: {summary.objects - len(summary.failed)} of {summary.objects} annotations "
        f"of {summary.images} images; {summary.computed_objects} objects computed in {format_duration(summary.seconds)} "
        f"({summary.objects_per_s:.2f} objects/s), {summary.resumed_objects} from the journal; "
        f"{len(summary.failed)} failed"
    )
    return 1 if summary.failed else 0
