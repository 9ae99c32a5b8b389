"""The ``kgalign`` command: a thin Click layer over the library.

Exit codes: 0 success, 1 error (a one-line message), 2 usage error.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from kgalign import __version__
from kgalign.cli.console import LOG_FILE_HELP, QUIET_HELP, VERBOSE_HELP, Output, configure
from kgalign.errors import KgalignError, error_filename, one_line

log = logging.getLogger("kgalign")


def _fail(message: str) -> NoReturn:
    from kgalign.runtime.redact import redact_text

    click.echo(f"kgalign: error: {one_line(redact_text(message))}", err=True)
    sys.exit(1)


def _interrupted(message: str = "kgalign: interrupted") -> NoReturn:
    click.echo(message, err=True)
    sys.exit(130)


def os_error_line(exc: OSError) -> str:
    """An OSError no command turned into a message, as one line naming its file (see
    :func:`~kgalign.errors.error_filename`)."""
    name = error_filename(exc)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{name}: {reason}" if name is not None else reason


#: The commands whose judge keeps its answers in a cache (an interrupt says so).
JUDGING_COMMANDS = frozenset({"run", "rerun", "dedup", "pairs"})


class KgalignGroup(click.Group):
    """Turns library errors into one line on stderr and exit code 1, and an interrupt
    (Ctrl-C) into exit code 130, without a traceback."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt:  # while the group's options are parsed
            _interrupted()

    def invoke(self, ctx: click.Context):
        from kgalign.runtime.gctune import relaxed_gc

        try:
            with relaxed_gc():  # every command builds large graphs or tables
                return super().invoke(ctx)
        except KgalignError as exc:
            _fail(str(exc))
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # click quiets a closed stdout (kgalign ... | head)
            # A safety net: a reader or writer that let an OSError through.
            log.debug("unhandled OSError", exc_info=True)
            _fail(os_error_line(exc))
        except KeyboardInterrupt:
            if ctx.invoked_subcommand in JUDGING_COMMANDS:
                _interrupted("kgalign: interrupted; answered questions are kept in the judge cache")
            _interrupted()


@click.group(cls=KgalignGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kgalign")
@click.option("-v", "--verbose", count=True, help=VERBOSE_HELP)
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), help=LOG_FILE_HELP)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="The least level of the records logged on stderr (default: warning, -q error); -v overrides it.",
)
def main(verbose: int, quiet: bool, log_file: Path | None, log_level: str | None) -> None:
    """Align the entities of two knowledge graphs and fuse them into one.

    The main job is `kgalign run LEFT RIGHT -o OUTDIR`; `kgalign pairs FILE` labels the
    candidate pairs of an entity-matching benchmark (DeepMatcher, Ditto). Everything runs
    offline, on the CPU by default. A command shows progress bars, warnings and a closing
    summary; -v adds the stage log, -q leaves errors and the result line only.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from kgalign.runtime.torch_env import cpu_kernel_defaults

    cpu_kernel_defaults()  # before any stage loads torch
    configure(Output(verbose=verbose, quiet=quiet, log_level=log_level, log_file=log_file))


# The group above must exist first. Building the commands' options takes a moment:
# Ctrl-C then is no traceback either.
try:
    from kgalign.cli.convert import convert
    from kgalign.cli.finetune import extract_adapter, finetune
    from kgalign.cli.pairs import pairs
    from kgalign.cli.review import evaluate, inspect, profile, report
    from kgalign.cli.run import dedup, rerun, run
except KeyboardInterrupt:
    _interrupted()

for _command in (run, rerun, dedup, pairs, finetune, extract_adapter, profile, inspect, report, evaluate, convert):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
