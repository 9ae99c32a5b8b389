"""Progress bars for the long stages (rich), silent when not on a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_enabled = True


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


@contextlib.contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(n)`` function; draws a bar on a terminal only. ``total`` is an
    estimate where the work may grow (judged sets ask more than one question a round):
    advancing past it raises the total."""
    if not _enabled or not sys.stderr.isatty() or total <= 0:
        yield lambda n: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            bar.update(task, advance=n, total=max(total, done))

        yield advance
