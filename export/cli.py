"""``fairs-export``: checkpoint -> ONNX -> fp16 / int8 ONNX -> TensorRT engine, and precision reports.

    fairs-export onnx CHECKPOINT -o model.onnx [--data DIR]        # export + checker + parity
    fairs-export bundle REFINE_CHECKPOINT -o DIR --stem default [--flip-average]   # two-part model: 3 files, parity
    fairs-export quantize model.onnx --precision fp16 -o model_fp16.onnx
    fairs-export quantize model.onnx --precision int8 --data DIR -o model_int8.onnx
    fairs-export trt model.onnx --precision fp16 --cache-dir engines/ [--max-batch 8]
    fairs-export compare model.onnx model_fp16.onnx model_int8.onnx --data dev/davis345

Errors (a missing, refused or incompatible checkpoint, a model that is not an fp32 FAIRS
model or whose external data is missing or outside its folder, ``-o`` naming a folder
where a file is written or a file where a folder is, bad options) print one line,
``fairs-export: error: ...``, and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from fairs_sdk.cli import OneLineParser, bounded_int, check_not_folder, check_output_folder, error_line, one_line
from fairs_sdk.config import PARTIAL_RELAX_SIDES
from fairs_sdk.extras import exit_on_missing_extra

__all__ = ["main", "build_parser"]


def _non_negative_float(text: str) -> float:
    """An argparse ``type``: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _default_data() -> Path | None:
    """``../shared/data/train/coco_mval`` beside the project, if it exists."""
    candidate = Path(__file__).resolve().parents[2] / "shared" / "data" / "train" / "coco_mval"
    return candidate if (candidate / "images").is_dir() else None


def _cmd_onnx(args: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint
    from .onnx_export import check_parity, export_onnx
    from .samples import random_inputs, stack_inputs

    check_not_folder(args.output, "-o", "the file to write")
    checkpoint = load_checkpoint(args.checkpoint)
    output = export_onnx(checkpoint, args.output, opset=args.opset, dynamic_batch=not args.static_batch)
    spec = checkpoint.input_spec
    print(f"wrote {output} (opset {args.opset}, input channels {', '.join(spec.input_channels)}, onnx.checker passed)")
    data = args.data or _default_data()
    if data is not None:
        inputs = stack_inputs(data, spec, count=args.parity_count, stride=7)
        source = f"{len(inputs)} real crops from {data}"
    else:
        inputs = random_inputs(spec, count=2)
        source = "2 random images (no --data given and ../shared/data not found)"
    diff = check_parity(checkpoint, output, inputs if not args.static_batch else inputs[:1], atol=args.atol)
    print(f"parity: max |ORT - PyTorch| = {diff:.2e} on {source} (limit {args.atol:g})")
    return 0


def _cmd_bundle(args: argparse.Namespace) -> int:
    from .two_part import export_bundle, load_refine_checkpoint

    check_output_folder(args.output, "-o")
    model, summary = load_refine_checkpoint(args.checkpoint, args.u2netp)
    # crop settings of the runtime's: the weights stay as trained
    crop_settings = {"relax": args.relax, "partial_relax": args.partial_relax,
                     "partial_relax_sides": args.partial_relax_sides}
    crop_settings = {k: v for k, v in crop_settings.items() if v is not None}
    if crop_settings:
        model.spec = replace(model.spec, **crop_settings)
    bundle = export_bundle(model, args.output, args.stem, opset=args.opset, atol=args.atol, extra=summary,
                           flip_average=args.flip_average)
    for path, name in ((bundle.combined, "combined"), (bundle.image_encoder, "image_encoder"), (bundle.decoder, "decoder")):
        print(f"wrote {path} (parity {bundle.parity[name]:.2e})")
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    from .onnx_export import read_metadata
    from .quantize import load_source

    meta = read_metadata(load_source(args.model))  # a foreign file, non-float32 inputs, bad external data: ValueError
    if meta.precision != "fp32":
        raise ValueError(f"{args.model} is {meta.precision}; quantize starts from the fp32 export")
    output = args.output or Path(args.model).with_name(Path(args.model).stem + f"_{args.precision}.onnx")
    check_not_folder(output, "-o", "the file to write")
    if Path(output).resolve() == Path(args.model).resolve():
        raise ValueError(f"-o {output} is the model itself; write the {args.precision} model to another file")
    from .quantize import CANCELLING_BIAS_RATIO, convert_bundle, convert_fp16, quantize_int8

    inputs, ratio = None, None
    if args.precision == "int8":
        from .samples import stack_inputs

        data = args.data or _default_data()
        if data is None:
            raise ValueError("int8 calibration needs real crops: pass --data DIR (images/ + masks/)")
        inputs = stack_inputs(data, meta.input_spec, count=args.calibration_count, stride=args.calibration_stride)
        # 0 turns the rule off (None for the quantiser).
        ratio = (CANCELLING_BIAS_RATIO if args.bias_ratio is None else args.bias_ratio) or None
    if meta.parts is not None and not args.whole:  # a two-part model: its parts too, for the runtime's sessions
        files = list(convert_bundle(args.model, output, args.precision, inputs, args.method, ratio).values())
    elif args.precision == "fp16":
        files = [convert_fp16(args.model, output)]
    else:
        files = [quantize_int8(args.model, output, inputs, method=args.method, bias_ratio=ratio)]
    if inputs is not None:
        kept = sum(len(read_metadata(f).extra.get("fp32_convs", [])) for f in files)
        print(f"calibrated on {len(inputs)} crops from {data} ({args.method}); "
              + (f"{kept} convolutions kept fp32 (|bias| > {ratio:g} x their output's range)" if ratio else "every convolution quantised"))
    for path in files:
        print(f"wrote {path} ({args.precision}, attention kept in fp32)")
    return 0


def _cmd_trt(args: argparse.Namespace) -> int:
    from fairs_sdk.trt import EngineCache, file_sha256

    check_output_folder(args.cache_dir, "--cache-dir")
    calibrator = None
    if args.precision == "int8" and not args.qdq:
        from .onnx_export import read_metadata
        from .samples import stack_inputs
        from .trt_build import make_calibrator

        data = args.data or _default_data()
        if data is None:
            raise ValueError("int8 engines need calibration crops: pass --data DIR, or --qdq for an int8 ONNX file")
        spec = read_metadata(args.model).input_spec
        inputs = stack_inputs(data, spec, count=args.calibration_count, stride=args.calibration_stride)
        cache_dir = Path(args.cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        # One table per ONNX file: TensorRT would apply another model's table without complaint.
        table = cache_dir / f"int8_calibration_{file_sha256(args.model)[:16]}.table"
        calibrator = make_calibrator(inputs, spec, batch_size=min(8, len(inputs)), cache_path=table)
    engine = EngineCache(args.cache_dir).get_or_build(
        args.model, args.precision, max_batch=args.max_batch, opt_batch=args.opt_batch, calibrator=calibrator
    )
    print(f"engine: {engine}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_models, format_table
    from .quantize import check_source

    check_not_folder(args.output, "-o", "the file to write")
    for model in args.models:  # a foreign model or non-float32 inputs: one line now, not an ONNX Runtime error mid-run
        check_source(model)

    def progress(done: int) -> None:
        if done % 50 == 0:
            print(f"{done} objects", file=sys.stderr, flush=True)

    scores = compare_models(args.models, args.data, limit=args.limit, threads=args.threads, progress=progress)
    table = format_table(scores)
    print(table)
    if args.output:
        Path(args.output).write_text(table + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="fairs-export", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("onnx", help="checkpoint -> fp32 ONNX with metadata, checked against PyTorch")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--static-batch", action="store_true", help="fix N = 1 instead of a dynamic batch axis")
    p.add_argument("--data", type=Path, help="images/ + masks/ folder for the parity crops (default ../shared/data/train/coco_mval)")
    p.add_argument("--parity-count", type=bounded_int(1, 10_000), default=8)
    p.add_argument("--atol", type=float, default=1e-4, help="max abs probability difference allowed")
    p.set_defaults(run=_cmd_onnx)

    p = sub.add_parser("bundle", help="fairs-train refine checkpoint -> two-part model (combined file + its parts)")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for <stem>.onnx, .encoder.onnx, .decoder.onnx")
    p.add_argument("--stem", default="model", help="file name stem (default: model)")
    p.add_argument("--u2netp", type=Path, default=None, help="U2-Netp weights (default: the checkpoint config's)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--atol", type=float, default=1e-4, help="max difference to PyTorch allowed")
    p.add_argument("--flip-average", action="store_true",
                   help="average each prediction with the mirrored crop's (the default model's setting; "
                        "about 2x encoder and decoder time)")
    p.add_argument("--relax", type=bounded_int(0, 10_000), default=None, metavar="PX",
                   help="write this input.relax into the metadata instead of the checkpoint's: the crop's margin "
                        "around the points' box, image px")
    p.add_argument("--partial-relax", type=_non_negative_float, default=None, metavar="FRACTION",
                   help="write this input.partial_relax into the metadata instead of the checkpoint's: for fewer "
                        "than four extreme points the crop margin grows by this fraction of the points' box's "
                        "longer side (the default model: 0.2)")
    p.add_argument("--partial-relax-sides", choices=PARTIAL_RELAX_SIDES, default=None,
                   help="write this input.partial_relax_sides into the metadata instead of the checkpoint's: the "
                        "sides partial_relax widens, all four or the two at the points' box's corner (the default "
                        "model: corner)")
    p.set_defaults(run=_cmd_bundle)

    p = sub.add_parser("quantize", help="fp32 ONNX -> fp16 or int8 ONNX (attention in fp32)")
    p.add_argument("model", type=Path)
    p.add_argument("--precision", choices=("fp16", "int8"), required=True)
    p.add_argument("-o", "--output", type=Path)
    p.add_argument("--data", type=Path, help="calibration images/ + masks/ (int8)")
    p.add_argument("--calibration-count", type=bounded_int(1, 100_000), default=64)
    p.add_argument("--calibration-stride", type=bounded_int(1, 100_000), default=11)
    p.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax")
    p.add_argument("--whole", action="store_true",
                   help="a two-part model: write one whole file that names no parts (default: the parts too)")
    p.add_argument("--bias-ratio", type=_non_negative_float, default=None,
                   help="int8: keep fp32 the convolutions with a channel whose |bias| exceeds this many times its "
                        "output range (default: quantize.CANCELLING_BIAS_RATIO, 10; 0 quantises them all)")
    p.set_defaults(run=_cmd_quantize)

    p = sub.add_parser("trt", help="ONNX -> cached TensorRT 10 engine")
    p.add_argument("model", type=Path)
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16")
    p.add_argument("--cache-dir", type=Path, default=Path("engines"))
    p.add_argument("--max-batch", type=bounded_int(1, 4096), default=8)
    p.add_argument("--opt-batch", type=bounded_int(1, 4096), default=1)
    p.add_argument("--data", type=Path, help="int8 calibration images/ + masks/")
    p.add_argument("--qdq", action="store_true", help="the ONNX file is already int8 (QDQ): no calibrator")
    p.add_argument("--calibration-count", type=bounded_int(1, 100_000), default=64)
    p.add_argument("--calibration-stride", type=bounded_int(1, 100_000), default=11)
    p.set_defaults(run=_cmd_trt)

    p = sub.add_parser("compare", help="mIoU and CPU latency of models against the first one")
    p.add_argument("models", type=Path, nargs="+", help="reference (fp32) first")
    p.add_argument("--data", type=Path, required=True, help="evaluation images/ + masks/, e.g. ../shared/data/dev/davis345")
    p.add_argument("--limit", type=bounded_int(1, 10**9), help="first N objects only")
    p.add_argument("--threads", type=bounded_int(1, 4096), help="ONNX Runtime intra-op threads")
    p.add_argument("-o", "--output", type=Path, help="also write the table here")
    p.set_defaults(run=_cmd_compare)
    return parser


@exit_on_missing_extra("fairs-export")  # without torch & co.: one line, exit 2
def main(argv: Sequence[str] | None = None) -> int:
    from .onnx_export import ParityError

    args = build_parser().parse_args(argv)
    for name in ("checkpoint", "model", "models"):
        paths = getattr(args, name, None)
        for path in paths if isinstance(paths, list) else [paths] if paths is not None else []:
            if not Path(path).is_file():
                what = "is not a file" if Path(path).exists() else "not found"
                print(f"fairs-export: error: {name} {what}: {path}", file=sys.stderr)
                return 2
    try:
        return args.run(args)
    except ParityError as error:
        print(f"fairs-export: parity check failed: {one_line(error)}", file=sys.stderr)
        return 1
    except (ValueError, ImportError, OSError) as error:  # CheckpointError, NotAFairsModelError, files, missing packages
        print(error_line("fairs-export", error), file=sys.stderr)
        return 2
    except RuntimeError as error:  # no GPU, TensorRT build failure
        print(f"fairs-export: failed: {one_line(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
