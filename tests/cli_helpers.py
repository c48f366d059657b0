"""Running a command line's ``main`` in-process, for the CLI tests of every package."""

from __future__ import annotations

from typing import Callable, Sequence


def exit_status(main: Callable[[Sequence[str]], int], argv: list[str]) -> int:
    """``main(argv)``'s exit status, whether returned or raised by argparse (``SystemExit``)."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code
