"""What a command shows on the terminal: how much it logs (``-v``, ``-q``, ``--log-level``),
the log file (``--log-file``), progress bars, and the summary block that ends a run.

By default a command shows its progress bars, warnings and errors, then one summary
block; ``-v`` adds the stage log (``-vv`` debug records), ``-q`` leaves errors and the
result line(s) at the summary's end only. The options are taken by the ``kgalign`` group
and by each long command (``kgalign run ... -v`` and ``kgalign -v run ...`` are the
same); the group resets them on every invocation.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

#: Third-party loggers that speak at INFO about what they load: kept at WARNING unless -vv.
NOISY_LOGGERS = ("sentence_transformers", "transformers", "httpx", "faiss", "filelock", "peft", "urllib3", "accelerate")

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True)
class Output:
    """The terminal settings of one invocation."""

    verbose: int = 0
    quiet: bool = False
    log_level: str | None = None  # --log-level, when given: the console's level, unless -v
    log_file: Path | None = None

    @property
    def console_level(self) -> int:
        # The most specific wins: -v, then --log-level, then -q (which quiets bars and the summary too).
        if self.verbose >= 2:
            return logging.DEBUG
        if self.verbose == 1:
            return logging.INFO
        if self.log_level is not None:
            return LEVELS[self.log_level.lower()]
        return logging.ERROR if self.quiet else logging.WARNING

    @property
    def file_level(self) -> int:
        return logging.DEBUG if self.verbose >= 2 or (self.log_level or "").lower() == "debug" else logging.INFO


_current = Output()
_file_handler: logging.Handler | None = None


def current() -> Output:
    return _current


def is_quiet() -> bool:
    return _current.quiet


def configure(output: Output) -> None:
    """Install ``output``: console and file handlers, the root level, the progress bars."""
    global _current, _file_handler
    from rich.console import Console
    from rich.logging import RichHandler

    from kgalign.runtime.progress import set_enabled
    from kgalign.runtime.redact import RedactingFilter

    _current = output
    # Log records go to stderr: stdout carries only the command's result. Every record,
    # third-party ones too (openai's debug lines show request URLs), loses its credentials.
    console = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False)
    console.setLevel(output.console_level)
    console.addFilter(RedactingFilter())
    handlers: list[logging.Handler] = [console]
    if _file_handler is not None:
        _file_handler.close()
        _file_handler = None
    if output.log_file is not None:
        try:
            _file_handler = logging.FileHandler(output.log_file, encoding="utf-8")
        except OSError as exc:
            raise click.UsageError(f"{output.log_file}: cannot write the log file ({exc.strerror or exc})") from None
        _file_handler.setLevel(output.file_level)
        _file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        _file_handler.addFilter(RedactingFilter())
        handlers.append(_file_handler)
    root = min(h.level for h in handlers)
    logging.basicConfig(level=root, format="%(message)s", handlers=handlers, force=True)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root) if output.verbose < 2 else logging.DEBUG)
    set_enabled(not output.quiet)
    if output.quiet:
        quiet_third_party_bars()
    elif "transformers" in sys.modules:  # an earlier -q in this process turned them off
        from kgalign.runtime.quiet_loading import enable_progress_bar

        enable_progress_bar()


def update(**changes: Any) -> None:
    """Change some settings of this invocation (a command's own -v, -q or --log-file)."""
    configure(replace(_current, **changes))


def quiet_third_party_bars() -> None:
    """Silence the progress bars of Hugging Face libraries."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def file_only(lines: Iterable[str]) -> None:
    """Write ``lines`` to the log file alone (the summary the terminal already shows)."""
    if _file_handler is None:
        return
    for line in lines:
        _file_handler.handle(logging.LogRecord("kgalign", logging.INFO, __file__, 0, line, None, None))


def echo_summary(block: list[str], result: list[str]) -> None:
    """End a command: the summary ``block`` then the ``result`` lines on stdout (``-q``:
    the result lines alone); both to the log file too."""
    lines = result if _current.quiet else [*block, *result]
    click.echo("\n".join(lines))
    file_only([*block, *result])


# ----- the options -----


def _set(field: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if ctx.resilient_parsing or ctx.get_parameter_source(param.name or "") != click.core.ParameterSource.COMMANDLINE:
            return
        if field == "verbose":
            value = max(value, _current.verbose)
        update(**{field: value})

    return callback


VERBOSE_HELP = "Log more: -v the stage log (what each stage did, its time and memory), -vv debug records too."
QUIET_HELP = "Print only errors and the result line(s) at the end; no progress bars, no warnings."
LOG_FILE_HELP = "Also write the log, at the stage log's level or finer, and the summary to this file."


def output_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """``-v``, ``-q`` and ``--log-file`` on a command: they change this invocation's settings
    as they are parsed (the command's body sees nothing of them)."""
    options = [
        click.option("-v", "--verbose", count=True, expose_value=False, callback=_set("verbose"), help=VERBOSE_HELP),
        click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_set("quiet"), help=QUIET_HELP),
        click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), expose_value=False, callback=_set("log_file"), help=LOG_FILE_HELP),
    ]
    for option in reversed(options):
        function = option(function)
    return function
