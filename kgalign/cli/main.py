"""The ``kgalign`` command: a thin Click layer over the library.

Exit codes: 0 success, 1 error (a one-line message), 2 usage error.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from kgalign import __version__
from kgalign.errors import KgalignError, one_line

log = logging.getLogger("kgalign")


def _setup_logging(level: str) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    from kgalign.runtime.redact import RedactingFilter

    # Log records go to stderr: stdout carries only the command's result. Every record,
    # third-party ones too (openai's debug lines show request URLs), loses its credentials.
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False)
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=getattr(logging, level.upper()), format="%(message)s", handlers=[handler], force=True)
    for noisy in ("sentence_transformers", "transformers", "httpx", "faiss", "filelock"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, getattr(logging, level.upper())))


class KgalignGroup(click.Group):
    """Turns library errors into one line on stderr and exit code 1."""

    def invoke(self, ctx: click.Context):
        from kgalign.runtime.gctune import relaxed_gc

        try:
            with relaxed_gc():  # every command builds large graphs or tables
                return super().invoke(ctx)
        except KgalignError as exc:
            from kgalign.runtime.redact import redact_text

            click.echo(f"kgalign: error: {one_line(redact_text(str(exc)))}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("kgalign: interrupted; answered questions are kept in the judge cache", err=True)
            sys.exit(130)


@click.group(cls=KgalignGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kgalign")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
    help="How much to log on stderr.",
)
def main(log_level: str) -> None:
    """Align the entities of two knowledge graphs and fuse them into one.

    The main job is `kgalign run LEFT RIGHT -o OUTDIR`; `kgalign pairs FILE` labels the
    candidate pairs of an entity-matching benchmark (DeepMatcher, Ditto). Everything runs
    offline, on the CPU by default.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _setup_logging(log_level)


from kgalign.cli.convert import convert  # noqa: E402  (the group above must exist first)
from kgalign.cli.finetune import finetune  # noqa: E402
from kgalign.cli.pairs import pairs  # noqa: E402
from kgalign.cli.review import evaluate, inspect, profile, report  # noqa: E402
from kgalign.cli.run import dedup, rerun, run  # noqa: E402

for _command in (run, rerun, dedup, pairs, finetune, profile, inspect, report, evaluate, convert):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
