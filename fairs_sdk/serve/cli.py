"""``fairs serve``: run the HTTP service, its CVAT interactor endpoint and its web page.

    fairs serve [--host 127.0.0.1] [--port 8000] [--model model.onnx] [--backend auto]
                [--max-upload-mb 32] [--max-megapixels 25] [--cache-images 16] [--cache-embeddings 32]
                [--workers 2] [--max-pending 32]

Binds 127.0.0.1 unless ``--host`` says otherwise (``0.0.0.0`` to listen on every
interface: the service has no authentication; put it behind one that does). Needs
the ``serve`` extra (FastAPI, uvicorn, Pillow); without it the command says so in one
line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fairs_sdk.extras import install_advice, missing_extra
from fairs_sdk.serve.limits import MiB, Limits

__all__ = ["add_parser", "cmd_serve"]


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import PIL  # noqa: F401  (image headers are read with Pillow)
        import uvicorn

        from fairs_sdk.serve.app import create_app
    except ImportError as error:
        if missing_extra(error) != "serve":
            raise
        print(f"fairs: error: fairs serve needs the 'serve' extra ({error.name} is missing): {install_advice(error)}",
              file=sys.stderr)
        return 2
    from fairs_sdk import Segmenter

    limits = Limits(
        max_upload_bytes=int(args.max_upload_mb * MiB),
        max_image_pixels=int(args.max_megapixels * 1e6),
        cache_images=args.cache_images,
        cache_embeddings=args.cache_embeddings,
        max_concurrent=args.workers,
        max_pending=args.max_pending,
    )
    segmenter = Segmenter(args.model, backend=args.backend, providers=args.providers,
                          max_image_pixels=limits.max_image_pixels)
    app = create_app(segmenter, limits)
    print(f"fairs serve: {segmenter.model_path.name} on {segmenter.backend.name} {list(segmenter.providers)}; "
          f"page at http://{args.host}:{args.port}/", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``serve`` to the ``fairs`` command's subparsers."""
    d = Limits()
    p = subparsers.add_parser("serve", help="HTTP service: JSON API, CVAT interactor endpoint and a web page")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--model", type=Path, default=None, help="ONNX model or TensorRT engine (default: bundled model)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime", "tensorrt"])
    p.add_argument("--providers", nargs="+", default=None, metavar="NAME",
                   help="ONNX Runtime providers to use, in order (tensorrt, cuda, cpu); default: all installed")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / MiB,
                   help=f"largest request body, MiB (default {d.max_upload_bytes // MiB})")
    p.add_argument("--max-megapixels", type=float, default=d.max_image_pixels / 1e6,
                   help=f"largest image, megapixels (default {d.max_image_pixels / 1e6:g})")
    p.add_argument("--cache-images", type=int, default=d.cache_images,
                   help=f"uploaded images kept for image_id, least recently used dropped (default {d.cache_images})")
    p.add_argument("--cache-embeddings", type=int, default=d.cache_embeddings,
                   help="image-encoder outputs kept for later clicks on the same crop (two-part models; "
                        f"default {d.cache_embeddings})")
    p.add_argument("--workers", type=int, default=d.max_concurrent,
                   help=f"segmentations computed at once (threads; default {d.max_concurrent})")
    p.add_argument("--max-pending", type=int, default=d.max_pending,
                   help=f"requests waiting beyond which the server answers 503 (default {d.max_pending})")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.add_argument("--no-access-log", dest="access_log", action="store_false", help="do not log each request")
    p.set_defaults(func=cmd_serve)
    return p
