"""The one way d1cdc makes a rich `Console`: full width when the output is not a terminal.

rich assumes 80 columns without a terminal, so `make demo | cat`, a CI log or a container
log cut table cells to `compet…` and nine tables looked alike. Off a terminal the width is
wide enough for any row; on a terminal rich measures it as usual.
"""

from __future__ import annotations

import sys

from rich.console import Console

_UNBOUNDED = 500


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else _UNBOUNDED
    return Console(stderr=stderr, width=width)
