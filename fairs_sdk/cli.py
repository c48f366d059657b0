"""The ``fairs`` command: segment an image from clicks, or time the runtime on this machine.

    fairs segment photo.jpg --points 120,200 420,230 260,90 280,400 [--positive X,Y ...]
                  [--negative X,Y ...] [--model model.onnx] [--out outputs/]
    fairs segment photo.jpg --json clicks.json
    fairs bench [--model model.onnx] [--image photo.jpg | --size 640x480] [--objects 8] [--repeat 20]

``bench``'s ranges: ``--size`` W x H with each side 1 to 32767 and W * H at most 100
million pixels (the runtime's own limits, :mod:`fairs_sdk.validation`); ``--objects``
1 to 1000; ``--repeat`` 1 to 1000.

``bench`` times each stage of ``segment``, ``segment_many``, and the per-click latency
of an interactive session (its first result against each corrective click after it,
which on a two-part model runs only the decoder). Its ``segment_many`` timing streams
the results (``Segmenter.iter_segment_many``) and drops each one after use, as does
its loop of single ``segment`` calls, so its memory stays flat in ``--objects``.

``segment`` writes, into ``--out``: ``<stem>_mask.png`` (0/255; one
``<stem>_mask_<k>.png`` per object when there are several), ``<stem>_overlay.png``
(the image with the masks tinted and the clicks drawn) and ``<stem>.json``
(image size, model, and per object its clicks, COCO RLE, crop box, mask box, area).
A clicks JSON file holds one object ``{"extreme_points": [[x, y], ...],
"positive_clicks": [...], "negative_clicks": [...]}``, a list of such objects, or
``{"objects": [...]}``. Points are (x, y) image pixels.

Errors (bad arguments, a missing, truncated or corrupt image, bad points, a missing or
foreign model, ``--out`` naming a file, ``--json`` naming a folder) print one line,
``fairs: error: ...`` (``fairs <command>: error: ...`` for a bad argument), and exit
with status 2. :class:`OneLineParser` and :func:`error_line` give ``fairs-train`` and
``fairs-export`` the same one-line errors.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import statistics
import sys
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fairs_sdk.imageio import read_image  # the runtime's one image reader (truncated JPEG/PNG refused)

__all__ = ["main", "bench_objects", "click_latency", "OneLineParser", "one_line", "error_line", "bounded_int",
           "check_output_folder", "check_not_folder",
           "MAX_BENCH_OBJECTS", "MAX_BENCH_REPEAT"]

#: Ranges of ``fairs bench --objects`` and ``--repeat``.
MAX_BENCH_OBJECTS = 1000
MAX_BENCH_REPEAT = 1000

_COLORS = [(0, 200, 0), (230, 60, 60), (60, 120, 255), (240, 200, 0), (200, 0, 200), (0, 200, 200)]


class CliError(Exception):
    """A problem with the command line or its files; printed without a traceback."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, ``<prog>: error: ...``, and exit 2.

    argparse's own prints the usage first; a one-line error is what scripts and logs
    read. Subparsers made from it are of the same class.
    """

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{error_line(self.prog, message)} (see {self.prog} --help)\n")


def one_line(error: BaseException | str) -> str:
    """An error's message on one line: its lines stripped and joined with "; " (its type's name if empty)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or (type(error).__name__ if isinstance(error, BaseException) else "failed")


def error_line(prog: str, error: BaseException | str) -> str:
    """``"<prog>: error: <message>"`` on one line (see :func:`one_line`)."""
    return f"{prog}: error: {one_line(error)}"


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``low`` to ``high`` (both included)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


# ----------------------------------------------------------------------------- input
def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a point is X,Y (two numbers, comma, no space), got {text!r}") from None
    return x, y


def _size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT within the runtime's image limits (each side and the pixel count)."""
    from fairs_sdk.validation import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a size is WIDTHxHEIGHT, e.g. 1920x1080, got {text!r}") from None
    if not (1 <= w <= MAX_IMAGE_SIDE and 1 <= h <= MAX_IMAGE_SIDE and w * h <= MAX_IMAGE_PIXELS):
        raise argparse.ArgumentTypeError(
            f"{w}x{h} is outside the runtime's limits: each side 1 to {MAX_IMAGE_SIDE}, "
            f"at most {MAX_IMAGE_PIXELS:,} pixels"
        )
    return w, h


def check_output_folder(path: Path | None, option: str) -> None:
    """ValueError if ``path`` exists and is not a folder (the command writes files into it); None passes.

    Shared by the ``fairs``, ``fairs-train`` and ``fairs-export`` commands.
    """
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise ValueError(f"{option} {path} is a file; {option} names a folder")


def check_not_folder(path: Path | None, option: str, names: str = "a file") -> None:
    """ValueError if ``path`` is an existing folder where the command wants ``names`` (a file); None passes."""
    if path is not None and Path(path).is_dir():
        raise ValueError(f"{option} {path} is a folder; {option} names {names}")


def read_objects(path: Path) -> list[dict[str, Any]]:
    """The objects of a clicks JSON file (see the module docstring)."""
    check_not_folder(path, "--json", "a clicks file")
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CliError(f"clicks file not found: {path}") from None
    except OSError as err:
        raise CliError(f"cannot read clicks file {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise CliError(f"{path} is not valid JSON: {err}") from None
    if isinstance(data, dict) and "objects" in data:
        data = data["objects"]
    objects = data if isinstance(data, list) else [data]
    if not objects or not all(isinstance(o, dict) and "extreme_points" in o for o in objects):
        raise CliError(f"{path}: expected an object with 'extreme_points', a list of them, or {{'objects': [...]}}")
    for k, obj in enumerate(objects):
        unknown = set(obj) - {"extreme_points", "positive_clicks", "negative_clicks"}
        if unknown:
            raise CliError(f"{path}: object {k} has unknown keys {sorted(unknown)}")
    return objects


# ---------------------------------------------------------------------------- output
def overlay(image: np.ndarray, results: Sequence, objects: Sequence[dict[str, Any]]) -> np.ndarray:
    """The image with each mask tinted and outlined and its clicks drawn; (H, W, 3) uint8 RGB."""
    out = image.copy()
    for k, (res, obj) in enumerate(zip(results, objects)):
        color = np.array(_COLORS[k % len(_COLORS)], dtype=np.float32)
        out[res.mask] = (0.5 * out[res.mask] + 0.5 * color).astype(np.uint8)
        cv2.drawContours(out, res.to_polygons(), -1, tuple(int(c) for c in color), 2)
        r = max(3, round(0.006 * max(image.shape[:2])))
        for key, fill in (("extreme_points", (255, 0, 255)), ("positive_clicks", (0, 255, 0)), ("negative_clicks", (255, 0, 0))):
            for x, y in obj.get(key, ()):
                centre = (int(round(x)), int(round(y)))
                cv2.circle(out, centre, r, fill, -1, cv2.LINE_AA)
                cv2.circle(out, centre, r, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _write_png(path: Path, rgb_or_gray: np.ndarray) -> None:
    array = rgb_or_gray if rgb_or_gray.ndim == 2 else cv2.cvtColor(rgb_or_gray, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), array):
        raise CliError(f"cannot write {path}")


def _points_list(points) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2)]


# --------------------------------------------------------------------------- segment
def cmd_segment(args: argparse.Namespace) -> int:
    from fairs_sdk import Segmenter
    from fairs_sdk.sfg import background_compile

    if args.json is not None and args.points is not None:
        raise CliError("give the clicks either with --points or with --json, not both")
    if args.json is not None:
        objects = read_objects(args.json)
    elif args.points is not None:
        objects = [{"extreme_points": args.points, "positive_clicks": args.positive, "negative_clicks": args.negative}]
    else:
        raise CliError("no clicks: give --points X,Y X,Y ... or --json FILE")
    check_output_folder(args.out, "--out")
    out_dir = args.out
    image = read_image(args.image)
    with background_compile():  # one-shot: the NumPy SFG rather than seconds waiting for Numba's compiler
        seg = Segmenter(args.model, backend=args.backend, providers=args.providers)
        if len(objects) == 1:  # errors then name the argument, not "objects[0]"
            results = [seg.segment(image, **objects[0], threshold=args.threshold)]
        else:
            results = seg.segment_many(image, objects, threshold=args.threshold)

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.image.stem
    written = []
    for k, res in enumerate(results):
        name = f"{stem}_mask.png" if len(results) == 1 else f"{stem}_mask_{k}.png"
        _write_png(out_dir / name, res.mask.astype(np.uint8) * 255)
        written.append(out_dir / name)
    _write_png(out_dir / f"{stem}_overlay.png", overlay(image, results, objects))
    written.append(out_dir / f"{stem}_overlay.png")
    report = {
        "image": str(args.image),
        "size": [int(image.shape[0]), int(image.shape[1])],
        "model": str(seg.model_path),
        "backend": seg.backend.name,
        "providers": list(seg.providers),
        "threshold": seg.spec.threshold if args.threshold is None else args.threshold,
        "objects": [
            {
                "extreme_points": _points_list(obj["extreme_points"]),
                "positive_clicks": _points_list(obj.get("positive_clicks", ())),
                "negative_clicks": _points_list(obj.get("negative_clicks", ())),
                "rle": res.to_rle(),
                "crop_box": list(res.box),
                "bbox": None if (bbox := res.bbox()) is None else list(bbox),
                "area": res.area,
            }
            for obj, res in zip(objects, results)
        ],
    }
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    written.append(out_dir / f"{stem}.json")
    for path in written:
        print(path)
    return 0


# ----------------------------------------------------------------------------- bench
def _median_ms(fn: Callable[[], Any], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def bench_objects(width: int, height: int, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` plausible objects (4 extreme points, a positive and a negative click) in a W x H image."""
    rng = np.random.default_rng(seed)
    objects = []
    for _ in range(count):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        rx, ry = rng.uniform(0.05, 0.18) * width, rng.uniform(0.05, 0.18) * height
        objects.append(
            {
                "extreme_points": [(cx - rx, cy), (cx + rx, cy + 0.1 * ry), (cx, cy - ry), (cx - 0.1 * rx, cy + ry)],
                "positive_clicks": [(cx + 0.3 * rx, cy)],
                "negative_clicks": [(cx - 0.5 * rx, cy - 0.5 * ry)],
            }
        )
    return objects


def click_latency(seg, image: np.ndarray, obj: dict[str, Any], repeat: int) -> tuple[float, float]:
    """Medians (ms) of an interactive session's first result and of one corrective click after it.

    The first result is ``seg.session(image, extreme points)`` (on a two-part model: crop,
    image encoder, decoder); the click is ``obj``'s first negative click, which keeps the
    crop box (on a two-part model: the decoder alone). The two are timed alternately, so
    that load from other processes hits both alike.
    """
    points, click = obj["extreme_points"], obj["negative_clicks"][0]
    session = seg.session(image, points)  # warm-up of both
    session.add_negative(*click)
    session.undo()
    first, clicks = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        session = seg.session(image, points)
        first.append(time.perf_counter() - t)
        t = time.perf_counter()
        session.add_negative(*click)
        clicks.append(time.perf_counter() - t)
    return statistics.median(first) * 1e3, statistics.median(clicks) * 1e3


def cmd_bench(args: argparse.Namespace) -> int:
    from fairs_sdk import Segmenter, crop
    from fairs_sdk.validation import check_image

    t0 = time.perf_counter()
    seg = Segmenter(args.model, backend=args.backend, providers=args.providers)
    load_s = time.perf_counter() - t0
    if args.image is not None:
        image = read_image(args.image)
    else:
        w, h = args.size
        image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    h, w = image.shape[:2]
    objects = bench_objects(w, h, args.objects)
    obj = objects[0]
    s, encoder = seg.spec.input_size, seg.encoder
    prepared = seg.prepare(image, **obj)  # the model's input, as segment() builds it
    batch = prepared.input[None]
    probabilities = seg.backend.run(batch)
    box = prepared.box
    # The encoder's stages one at a time, on the canvas points that prepare() computed from.
    ep, pos, neg = (crop.to_canvas(np.asarray(obj[k], np.float64), box, s) for k in
                    ("extreme_points", "positive_clicks", "negative_clicks"))
    planes = [n for n in seg.spec.input_channels if n != "rgb"]
    r = args.repeat

    print(f"model      {seg.model_path} ({seg.metadata.backbone}, {seg.metadata.precision}, input {s} x {s}, "
          f"channels {', '.join(seg.spec.input_channels)}{', two-part' if seg.two_part else ''})")
    print(f"backend    {seg.backend.name}, providers {list(seg.providers)}; load + warm-up {load_s:.2f} s")
    print(f"image      {w} x {h}; median of {r} runs")
    stages = [
        ("check image", lambda: check_image(image)),
        ("crop + resize", lambda: encoder.crop_pixels(image, box)),
        (f"guidance ({', '.join(planes) or 'none'})", lambda: encoder.guidance(ep, pos, neg)),
        ("prepare (all of the above)", lambda: seg.prepare(image, **obj)),
        ("engine", lambda: seg.backend.run(batch)),
        ("paste back + threshold", lambda: seg.postprocess(probabilities[0], prepared)),
    ]
    timings = {name: _median_ms(fn, r) for name, fn in stages}
    total = _median_ms(lambda: seg.segment(image, **obj), r)
    width = max(28, len(f"segment_many, {len(objects)} objects (streamed)"), *(len(name) for name in timings))
    for name, ms in timings.items():
        print(f"  {name:{width}s} {ms:9.2f} ms")
    engine = timings["engine"]
    print(f"  {'segment (end to end)':{width}s} {total:9.2f} ms  ({100 * (total - engine) / engine:+.1f} % over the engine)")
    # Each result is dropped once made: full-size maps of every object at once grew to 21 GB
    # at --objects 10000 (issue 13, item 3).
    many = _median_ms(lambda: collections.deque(seg.iter_segment_many(image, objects), maxlen=0), max(1, r // 2))

    def one_at_a_time() -> None:
        for o in objects:
            seg.segment(image, **o)

    single = _median_ms(one_at_a_time, max(1, r // 2))
    n = len(objects)
    print(f"  {f'segment_many, {n} objects (streamed)':{width}s} {many:9.2f} ms  ({many / n:.2f} ms per object)")
    print(f"  {f'{n} x segment':{width}s} {single:9.2f} ms  ({single / n:.2f} ms per object)")
    first, click = click_latency(seg, image, obj, r)
    how = ("two-part model: image encoder once per crop, decoder per click" if seg.two_part
           else "one model: each click runs all of it")
    print(f"per click  InteractiveSession, {how}; medians of {r} alternating runs")
    print(f"  {'first segment of an object':{width}s} {first:9.2f} ms")
    print(f"  {'each corrective click after it':{width}s} {click:9.2f} ms  ({first / click:.1f}x faster than the first)")
    return 0


# ------------------------------------------------------------------------------ main
#: Subcommands that live in their own modules; each module has ``add_parser(subparsers)``
#: that adds its parser and sets ``func`` (imports of optional extras happen inside it).
COMMAND_MODULES: tuple[str, ...] = ("fairs_sdk.doctor", "fairs_sdk.serve.cli", "fairs_sdk.annotate.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="fairs", description="FAIRS object segmentation from extreme points.")
    sub = parser.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", type=Path, default=None, help="ONNX model or TensorRT engine (default: bundled model)")
        p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"])
        p.add_argument("--providers", nargs="+", default=None, metavar="NAME",
                       help="ONNX Runtime providers to use, in order (tensorrt, cuda, cpu); default: all installed")

    seg = sub.add_parser("segment", help="segment one image; writes mask PNG, overlay PNG and JSON")
    seg.add_argument("image", type=Path)
    seg.add_argument("--points", nargs="+", type=_point, metavar="X,Y", help="extreme points (2 or more)")
    seg.add_argument("--positive", nargs="+", type=_point, default=[], metavar="X,Y", help="'object' clicks")
    seg.add_argument("--negative", nargs="+", type=_point, default=[], metavar="X,Y", help="'background' clicks")
    seg.add_argument("--json", type=Path, default=None, help="clicks file: one object, a list, or {'objects': [...]}")
    seg.add_argument("--threshold", type=float, default=None, help="mask threshold (default: the model's, 0.5)")
    seg.add_argument("--out", type=Path, default=Path("."), help="output folder (default: current folder)")
    model_options(seg)
    seg.set_defaults(func=cmd_segment)

    bench = sub.add_parser("bench", help="time the runtime and each of its stages on this machine")
    bench.add_argument("--image", type=Path, default=None, help="image to time on (default: random, --size)")
    bench.add_argument("--size", type=_size, default=(640, 480), metavar="WxH",
                       help="random image size (default 640x480, as the README's figures); each side 1 to 32767, "
                       "at most 100 million pixels")
    bench.add_argument("--objects", type=bounded_int(1, MAX_BENCH_OBJECTS), default=8,
                       help=f"objects for segment_many, 1 to {MAX_BENCH_OBJECTS} (default 8)")
    bench.add_argument("--repeat", type=bounded_int(1, MAX_BENCH_REPEAT), default=20,
                       help=f"runs per measurement, 1 to {MAX_BENCH_REPEAT} (median reported; default 20)")
    model_options(bench)
    bench.set_defaults(func=cmd_bench)

    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fairs`` command; returns the exit status.

    Every expected failure (files, images, models, providers) prints one line on stderr
    and returns 2; a bad argument prints one line and raises ``SystemExit(2)``, as argparse does.
    """
    from fairs_sdk.backends import ModelLoadError, ModelOutputError, ProviderError
    from fairs_sdk.extras import MissingExtraError
    from fairs_sdk.model_format import NotAFairsModelError

    args = build_parser().parse_args(argv)  # a usage error: one line, SystemExit(2) (OneLineParser)
    try:
        return args.func(args)
    except (CliError, ValueError, OSError, ModelLoadError, NotAFairsModelError, ProviderError, ModelOutputError,
            MissingExtraError) as err:
        print(error_line("fairs", err), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
