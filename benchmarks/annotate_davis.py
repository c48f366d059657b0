"""``fairs annotate`` on DAVIS-345: objects/s of the local and Ray engines, and the written masks' mIoU.

    python benchmarks/annotate_davis.py --out outputs/annotate_davis [--workers 2] [--threads 1]
        [--engines local ray] [--evaluate]

1. Writes ``davis345_extreme.json``: a COCO file with one annotation per DAVIS-345 mask,
   whose ``extreme_points`` are the 4 exact extreme points that ``fairs-train evaluate``
   gives the model (:func:`fairs_sdk.training.simulate.extreme_points` of the same
   :class:`~fairs_sdk.training.sources.FolderMasks` object mask, SPEC 4).
2. Runs ``fairs annotate`` (:func:`fairs_sdk.annotate.annotate_file`) with each engine on it,
   timing objects/s (wall time, start-up included, and after the first image), and
   checks that the engines' files are byte-identical.
3. mIoU of the written masks (decoded with pycocotools) against the ground truth, with
   the evaluation's IoU (:func:`fairs_sdk.training.simulate.iou`, 128 = ignore).
4. With ``--evaluate``: runs ``fairs-train evaluate --model <the same model> --max-clicks 4``
   on the same folder and compares its ``miou_4pts`` with step 3's.

Prints a markdown table and writes ``results.json`` in ``--out``. Needs the train
extra (torch for fairs-train, pycocotools) and, for the Ray engine, ray[data].
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DAVIS = ROOT.parent / "shared" / "data" / "dev" / "davis345"


def write_davis_coco(root: Path, path: Path, limit: int | None = None) -> int:
    """COCO file of ``root`` (images/ + masks/) with the evaluation's extreme points; returns the object count.

    ``file_name`` is relative to ``root / "images"``. Ids: image k and annotation k
    (1-based) for the k-th mask of :class:`FolderMasks`, the evaluation's order.
    """
    from fairs_sdk.training.simulate import extreme_points
    from fairs_sdk.training.sources import FolderMasks

    source = FolderMasks(root)
    images, annotations = [], []
    for k in range(len(source) if limit is None else min(limit, len(source))):
        image_path, _ = source.items[k]
        image, obj, _ignore = source.load(k)
        if not obj.any():
            continue  # the evaluation skips empty masks too
        h, w = image.shape[:2]
        images.append({"id": k + 1, "file_name": image_path.name, "width": w, "height": h})
        annotations.append({"id": k + 1, "image_id": k + 1, "category_id": 1, "iscrowd": 0,
                            "extreme_points": extreme_points(obj).tolist()})
    data = {"info": {"description": f"{root.name}: extreme points of the masks (SPEC 4)"},
            "images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
    path.write_text(json.dumps(data))
    return len(annotations)


def written_miou(output: Path, root: Path) -> tuple[float, list[float]]:
    """Mean IoU of the masks in ``output`` against ``root``'s ground truth (ignore = 128), per object too."""
    from pycocotools import mask as mask_utils

    from fairs_sdk.training.simulate import iou
    from fairs_sdk.training.sources import FolderMasks

    source = FolderMasks(root)
    data = json.loads(output.read_text())
    if data["fairs_annotate"]["failed"]:
        raise RuntimeError(f"{output}: failed annotations {data['fairs_annotate']['failed']}")
    ious = []
    for ann in data["annotations"]:
        _image, obj, ignore = source.load(ann["id"] - 1)
        prediction = mask_utils.decode(ann["segmentation"]).astype(bool)
        ious.append(iou(prediction, obj, ignore))
    return float(np.mean(ious)), ious


def run_engine(engine: str, coco: Path, images: Path, output: Path, workers: int, threads: int | None,
               model: str | None) -> dict:
    from fairs_sdk.annotate import SegmenterOptions, annotate_file

    for stale in (output, output.with_name(output.name + ".journal")):
        stale.unlink(missing_ok=True)
    summary = annotate_file(coco, images, output, SegmenterOptions(model=model, threads=threads), engine=engine,
                            workers=workers, progress=True)
    steady = (summary.seconds - summary.first_result_s) if summary.first_result_s else None
    return {
        "engine": engine,
        "workers": workers,
        "threads": threads,
        "objects": summary.computed_objects,
        "failed": len(summary.failed),
        "seconds": round(summary.seconds, 2),
        "first_image_s": round(summary.first_result_s or 0.0, 2),
        "objects_per_s": round(summary.objects_per_s, 3),
        # objects after the first image over the time after it: without start-up
        "steady_objects_per_s": round((summary.computed_objects - 1) / steady, 3) if steady else None,
        "load_average_1min_after": round(os.getloadavg()[0], 2),  # other jobs on a shared machine skew the figures
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DAVIS)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "annotate_davis")
    parser.add_argument("--engines", nargs="+", default=["local", "ray"], choices=["local", "ray"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per worker")
    parser.add_argument("--model", default=None, help="default: the bundled model")
    parser.add_argument("--limit", type=int, default=None, help="first N masks only (a quick check)")
    parser.add_argument("--evaluate", action="store_true", help="also run fairs-train evaluate --max-clicks 4")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    coco = args.out / "davis345_extreme.json"
    count = write_davis_coco(args.data, coco, args.limit)
    print(f"wrote {coco}: {count} objects")
    runs, outputs = [], {}
    for engine in args.engines:
        outputs[engine] = args.out / f"annotated_{engine}.json"
        runs.append(run_engine(engine, coco, args.data / "images", outputs[engine], args.workers, args.threads,
                               args.model))
        print(runs[-1])
    files = {e: p.read_bytes() for e, p in outputs.items()}
    identical = len(set(files.values())) == 1
    miou, per_object = written_miou(next(iter(outputs.values())), args.data)
    results = {"objects": count, "cpu_count": os.cpu_count(), "runs": runs, "identical_outputs": identical,
               "written_miou": miou}
    if args.evaluate:
        from fairs_sdk.segmenter import DEFAULT_MODEL

        model = args.model or str(DEFAULT_MODEL)
        eval_dir = args.out / "evaluate"
        command = ["fairs-train", "evaluate", "--model", model, "--data", str(args.data), "--out", str(eval_dir),
                   "--max-clicks", "4"] + (["--max-instances", str(args.limit)] if args.limit else [])
        t = time.perf_counter()
        subprocess.run(command, check=True)
        metrics = json.loads((eval_dir / "metrics.json").read_text())
        evaluated = [r["ious"][0] for r in metrics["instances"]]
        results["evaluate"] = {"command": " ".join(command), "miou_4pts": metrics["summary"]["miou_4pts"],
                               "seconds": round(time.perf_counter() - t, 1)}
        diffs = np.abs(np.array(evaluated) - np.array(per_object))
        results["evaluate"]["objects_differing"] = int((diffs > 0).sum())
        results["evaluate"]["max_iou_difference"] = float(diffs.max())
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print("| engine | workers x threads | objects | wall s | first image s | objects/s | objects/s after the first image "
          "| load average after |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['engine']} | {r['workers']} x {r['threads']} | {r['objects']} | {r['seconds']} | "
              f"{r['first_image_s']} | {r['objects_per_s']} | {r['steady_objects_per_s']} | "
              f"{r['load_average_1min_after']} |")
    print(f"outputs byte-identical across engines: {identical}")
    print(f"mIoU of the written masks: {miou:.6f}")
    if "evaluate" in results:
        e = results["evaluate"]
        print(f"fairs-train evaluate miou_4pts: {e['miou_4pts']:.6f} ({e['objects_differing']} objects differ, "
              f"max IoU difference {e['max_iou_difference']:.2e})")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
