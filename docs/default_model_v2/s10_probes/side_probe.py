"""Session 10 probe: three points, the wider margin on some sides of the crop only.

No training. The shipped model's runtime crop box is replaced (in its encoder only) by
the three points' box with ``relax`` on every side plus ``fraction`` x the box's longer
side on the sides a ``--mode`` picks:

- ``all``: every side (what ``partial_relax`` does);
- ``corner``: the sides touched by a point that touches two sides of the box (with three
  points one point sits on a corner, and the side left open is one of its two sides);
- ``oracle``: only the side of the dropped point (known here, not at run time): the
  upper bound of any rule that guesses the open side.

Full images, model alone, no cut. Each ``--data`` (a folder, or a source entry as JSON)
is read at its ``--every`` stride.

    python docs/default_model_v2/s10_probes/side_probe.py --model M.onnx --mode corner \
        --fraction 0.1 0.2 --data ../shared/data/train/coco_mval --every 8 --out OUT.json
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
from tqdm import tqdm

from fairs_sdk.training.evaluate import RuntimePredictor
from fairs_sdk.training.simulate import extreme_points, iou, point_to_drop
from fairs_sdk.training.sources import build_source

SIDES = ("left", "top", "right", "bottom")
DROPPED_SIDE = ("left", "right", "top", "bottom")  # extreme_points' order


def corner_sides(points: np.ndarray) -> set[str]:
    """Sides of the points' box touched by a point that touches two of them."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    out: set[str] = set()
    for x, y in points:
        touched = {s for s, hit in zip(SIDES, (x == lo[0], y == lo[1], x == hi[0], y == hi[1])) if hit}
        if len(touched) >= 2:
            out |= touched
    return out


def side_box(points: np.ndarray, relax: int, extra: int, wide: set[str]) -> tuple[int, int, int, int]:
    """Half-open (x0, y0, x1, y1): relax on every side, relax + extra on the ``wide`` sides."""
    m = {s: relax + (extra if s in wide else 0) for s in SIDES}
    lo, hi = points.min(axis=0), points.max(axis=0)
    return (math.floor(lo[0]) - m["left"], math.floor(lo[1]) - m["top"],
            math.floor(hi[0]) + m["right"] + 1, math.floor(hi[1]) + m["bottom"] + 1)


parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--data", action="append", required=True, help="a folder, or a source entry as JSON")
parser.add_argument("--every", type=int, action="append", required=True, help="one stride per --data")
parser.add_argument("--relax", type=int, default=30)
parser.add_argument("--fraction", type=float, nargs="+", required=True)
parser.add_argument("--mode", choices=("all", "corner", "oracle"), nargs="+", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()
if len(args.every) != len(args.data):
    parser.error("give one --every per --data")

predictor = RuntimePredictor(args.model)
seg = predictor.segmenter
sources = {d: build_source(json.loads(d) if d.startswith("{") else d) for d in args.data}
wide_sides: set[str] = set()
extra_px = 0


def crop_box(extreme, positive=np.zeros((0, 2))):
    points = np.concatenate([extreme, positive])
    return side_box(points, args.relax, extra_px, wide_sides)


seg.encoder.crop_box = crop_box
result: dict[str, dict[str, list[float]]] = {}
for mode in args.mode:
    for fraction in args.fraction:
        key = f"{mode}+{fraction:g}"
        for (name, source), every in zip(sources.items(), args.every):
            scores = []
            for i in tqdm(range(0, len(source), every), desc=key, mininterval=30):
                image, obj, ignore = source.load(i)
                if obj.sum() < 16:
                    continue
                points = extreme_points(obj)
                drop = point_to_drop(points)
                three = np.delete(points, drop, axis=0)
                extra_px = round(fraction * float(np.ptp(three, axis=0).max()))
                wide_sides = {"all": set(SIDES), "corner": corner_sides(three),
                              "oracle": {DROPPED_SIDE[drop]}}[mode]
                mask = predictor.probabilities(image, three) >= seg.spec.threshold
                scores.append(iou(mask, obj, ignore))
            result.setdefault(name, {})[key] = scores
            print(key, name[-40:], len(scores), round(100 * float(np.mean(scores)), 2), flush=True)
            with open(args.out, "w") as f:
                json.dump(result, f)
