"""The journal of a ``fairs annotate`` run: what is done survives a kill, and ``--resume`` goes on from it.

A JSON-lines file beside the output (``<output>.journal``). The first line is a header
that names the run (input file digest, model, threshold); each further line holds one
finished image: ``{"image_id": ..., "records": [...]}``, written with one ``write``,
flushed and fsynced before the next image is counted as done. A kill can leave at
most the last line torn; :meth:`Journal.open` drops such a tail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["Journal", "journal_path"]


def journal_path(output: str | os.PathLike) -> Path:
    """Where the journal of a run writing ``output`` lives: ``<output>.journal``."""
    output = Path(output)
    return output.with_name(output.name + ".journal")


class Journal:
    """Append-only record of finished images (see the module docstring).

    Use :meth:`open`; ``done`` maps each journaled image id to its records.
    """

    def __init__(self, path: Path, file, done: dict[Any, list[dict[str, Any]]]) -> None:
        self.path = path
        self._file = file
        self.done = done

    @classmethod
    def open(cls, path: str | os.PathLike, header: Mapping[str, Any], resume: bool) -> "Journal":
        """Start a journal at ``path``, or with ``resume`` go on with the one there.

        Raises:
            ValueError: a journal exists and ``resume`` is false (it holds finished work:
                resume it or delete it), or it belongs to another run (other header).
        """
        path = Path(path)
        header = dict(header)
        done: dict[Any, list[dict[str, Any]]] = {}
        if path.exists() and not resume:
            raise ValueError(
                f"{path} holds the finished images of an interrupted run: pass --resume to go on with it, "
                "or delete it to start again"
            )
        if resume and path.exists():
            with open(path, "rb") as f:
                raw = f.read()
            good = raw[: raw.rfind(b"\n") + 1]  # a kill may leave a torn last line
            lines = good.splitlines()
            if not lines or json.loads(lines[0]) != header:
                found = json.loads(lines[0]) if lines else None
                raise ValueError(
                    f"{path} is the journal of another run ({found}, this run is {header}): "
                    "delete it to start again, or resume with the same input, model and threshold"
                )
            for line in lines[1:]:
                entry = json.loads(line)
                done[_key(entry["image_id"])] = entry["records"]
            file = open(path, "r+b")
            file.truncate(len(good))
            file.seek(len(good))
        else:
            file = open(path, "wb")
            file.write(json.dumps(header).encode() + b"\n")
            _sync(file)
        return cls(path, file, done)

    def append(self, image_id: Any, records: list[dict[str, Any]]) -> None:
        """Record one finished image durably (flushed and fsynced)."""
        line = json.dumps({"image_id": image_id, "records": records}, separators=(",", ":"), ensure_ascii=False)
        self._file.write(line.encode() + b"\n")
        _sync(self._file)
        self.done[_key(image_id)] = records

    def close(self, remove: bool = False) -> None:
        """Close the file; with ``remove`` delete it (the output is written)."""
        self._file.close()
        if remove:
            self.path.unlink()


def _key(image_id: Any) -> Any:
    """A hashable form of an image id as JSON gives it back."""
    return tuple(image_id) if isinstance(image_id, list) else image_id


def _sync(file) -> None:
    file.flush()
    os.fsync(file.fileno())
