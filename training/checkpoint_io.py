"""Read checkpoint files without running code: the one place that calls ``torch.load``.

A ``.pt`` file is a pickle, and unpickling can call any function the file names. Every
checkpoint the training and export code reads (``--resume``, ``init_from``, ``fairs-train
evaluate --checkpoint``, ``load_model``, refine checkpoints, ImageNet weights,
``fairs-export``) goes through :func:`read_checkpoint`, which loads with
``weights_only=True``: tensors, dicts, lists, tuples, strings, numbers and the optimiser's
plain state, never an arbitrary object. Anything else, and any missing, truncated or
foreign file, raises :class:`CheckpointError` with one line naming the file.

What the trainers save is plain (configs are ``to_dict()``/JSON dicts, histories lists
of dicts of numbers), so their own files always load this way.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import torch

__all__ = ["CheckpointError", "read_checkpoint"]

# torch's weights-only refusal explains itself over several paragraphs (and suggests allowlisting
# the object); what matters is the object the file names: "... unsupported GLOBAL posix.system ..."
# (torch >= 2.6) or "Unsupported global: GLOBAL builtins.exec ..." (either, by module). Other
# refusals ("Unsupported operand 110") mean the bytes are not a pickle at all.
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


class CheckpointError(ValueError):
    """The checkpoint is missing, unreadable, holds more than plain data, or lacks what the reader needs."""


def _one_line(error: BaseException) -> str:
    text = str(error)
    refused = _REFUSED_GLOBAL.search(text)
    if refused:
        return (f"refused: it holds the Python object {refused.group(1)}, not only tensors and plain data; "
                "checkpoints are read weights-only and never run code")
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return f"not a readable torch checkpoint: {first}"


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", keys: Iterable[str] = ()) -> Any:
    """The object saved in ``path`` (usually a dict of tensors and plain values), loaded weights-only.

    Args:
        path: a file written by ``torch.save``.
        map_location: where tensors go (``"cpu"``, ``"cuda:0"``, a ``torch.device``).
        keys: entries the caller needs; when given, the file must hold a dict with all of them.

    Raises:
        CheckpointError: ``path`` is not a file, cannot be unpickled weights-only (it names a
            Python object, e.g. a function to call), is corrupt, or lacks ``keys``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # pickle, zip and weights-only refusals share no base class
        raise CheckpointError(f"{path}: {_one_line(error)}") from error
    needed = list(keys)
    if needed:
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: expected a dict with {needed}, got {type(state).__name__}")
        missing = [key for key in needed if key not in state]
        if missing:
            raise CheckpointError(f"{path}: missing {missing} (keys found: {sorted(map(str, state))})")
    return state
