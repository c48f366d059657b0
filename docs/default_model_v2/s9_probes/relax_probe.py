"""Session 9 probe: a model's 3-point and 4-point IoU when the runtime crops with another relax.

No training: the model's own metadata relax and partial_relax are replaced in the
runtime's encoder only (``--fraction``: partial_relax, the share of the points' box's
longer side added to the margin of a three-point crop). Full images,
model alone, no cut. Each ``--data`` (a folder, or a source entry as JSON) is read at
its ``--every`` stride.

    python docs/default_model_v2/s9_probes/relax_probe.py --model M.onnx --relax 30 50 70 \
        --points 3 --data ../shared/data/dev/davis345 --every 1 --out OUT.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
from tqdm import tqdm

from fairs_sdk.training.evaluate import RuntimePredictor
from fairs_sdk.training.simulate import drop_to_three_points, extreme_points, iou
from fairs_sdk.training.sources import build_source

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--data", action="append", required=True, help="a folder, or a source entry as JSON")
parser.add_argument("--every", type=int, action="append", required=True, help="one stride per --data")
parser.add_argument("--relax", type=int, nargs="+", required=True)
parser.add_argument("--fraction", type=float, nargs="+", default=[0.0],
                    help="three points only: add this fraction of the points' box's longer side to the relax")
parser.add_argument("--points", type=int, nargs="+", default=[3, 4])
parser.add_argument("--out", required=True)
args = parser.parse_args()
if len(args.every) != len(args.data):
    parser.error("give one --every per --data")

predictor = RuntimePredictor(args.model)
seg = predictor.segmenter
sources = {d: build_source(json.loads(d) if d.startswith("{") else d) for d in args.data}
result: dict[str, dict[str, dict[str, list[float]]]] = {}
settings = [(relax, fraction) for relax in args.relax for fraction in args.fraction]
for relax, fraction in settings:
    key = str(relax) if fraction == 0 else f"{relax}+{fraction:g}"
    seg.encoder.spec = dataclasses.replace(seg.spec, relax=relax, partial_relax=fraction)
    for (name, source), every in zip(sources.items(), args.every):
        per = {str(n): [] for n in args.points}
        for i in tqdm(range(0, len(source), every), desc=f"relax {key}", mininterval=30):
            image, obj, ignore = source.load(i)
            if obj.sum() < 16:
                continue
            points = extreme_points(obj)
            for n in args.points:
                pts = points if n == 4 else drop_to_three_points(points)
                mask = predictor.probabilities(image, pts) >= seg.spec.threshold
                per[str(n)].append(iou(mask, obj, ignore))
        result.setdefault(name, {})[key] = per
        print(key, name[-40:], len(per[str(args.points[0])]),
              {n: round(100 * float(np.mean(v)), 2) for n, v in per.items()}, flush=True)
with open(args.out, "w") as f:
    json.dump(result, f)
