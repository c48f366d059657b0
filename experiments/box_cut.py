"""What cutting the mask to the extreme points' box would give (a candidate SPEC 2 change).

Four extreme points rule out any object pixel outside their box, but SPEC 2 makes the
mask from the pasted probabilities alone, so the runtime keeps whatever the model
predicts there. This scores an exported model on full images, as ``fairs-train
evaluate`` does, with its probabilities set to 0 outside the box of the four points
and of any positive clicks whenever four points are given; three-point inputs are
left as they are (the object runs past their box).

    python experiments/box_cut.py --model fairs_sdk/models/default.onnx \\
        --data ../shared/data/dev/davis345 --max-clicks 7 --out runs/eval/v22_boxcut_all
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fairs_sdk.crop import crop_box
from fairs_sdk.training.evaluate import RuntimePredictor, evaluate, write_report
from fairs_sdk.training.sources import build_source


class BoxCutPredictor(RuntimePredictor):
    """:class:`RuntimePredictor` whose (H, W) probabilities are 0 outside the box of 4 extreme points
    (and of the positive clicks), image pixels, points (x, y)."""

    def probabilities(self, image: np.ndarray, extreme: np.ndarray, positive: np.ndarray | None = None,
                      negative: np.ndarray | None = None) -> np.ndarray:
        out = super().probabilities(image, extreme, positive, negative)
        points = np.asarray(extreme, dtype=np.float64).reshape(-1, 2)
        if len(points) != 4:
            return out
        if positive is not None:
            points = np.concatenate([points, np.asarray(positive, dtype=np.float64).reshape(-1, 2)])
        x0, y0, x1, y1 = crop_box(points, 0)
        inside = np.zeros(out.shape, dtype=bool)
        inside[max(y0, 0) : y1, max(x0, 0) : x1] = True
        return np.where(inside, out, 0.0).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="an exported model (ONNX)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--max-clicks", type=int, default=7)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = evaluate(BoxCutPredictor(args.model), build_source(args.data), args.max_clicks, None, progress=True,
                      every=args.every)
    write_report(result, args.out)
    s = result.summary
    print(f"{args.model} with the box cut: {s['instances']} objects, mIoU 4 pts {100 * s['miou_4pts']:.2f}, "
          f"3 pts {100 * s['miou_3pts']:.2f}, " + ", ".join(f"@{k} {100 * v:.2f}" for k, v in s["miou_at"].items()))


if __name__ == "__main__":
    main()
