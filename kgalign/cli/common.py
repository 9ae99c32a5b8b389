"""What the commands share: output-folder checks, option tables, --help-all."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from kgalign.errors import KgalignError
from kgalign.io.formats import FORMATS_TEXT, READ_FORMATS
from kgalign.outputs import KNOWN_OUTPUTS, SHARD_DIRS, SOURCES_DIR, is_shard_folder

log = logging.getLogger("kgalign")


class InputType(click.ParamType):
    """LEFT or RIGHT: a file path, or a SPARQL endpoint URL (kept as text)."""

    name = "input"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str | Path:
        from kgalign.io.inputs import is_endpoint

        if isinstance(value, Path):
            return value
        return str(value) if is_endpoint(str(value)) else Path(str(value))


INPUT = InputType()

#: ``--format``: the formats kgalign reads, checked before any work (in any letter case).
FORMAT = click.Choice(READ_FORMATS, case_sensitive=False)
FORMAT_HELP = f"Format of both inputs: {FORMATS_TEXT}. Default: from the extension."


def check_outdir(
    outdir: Path,
    force: bool,
    inputs: list[Path] | None = None,
    known: frozenset[str] = KNOWN_OUTPUTS,
    files: Mapping[str, str | Path | None] | None = None,
) -> None:
    """OUTDIR usable (created if missing) before any work: not a file, holding only ``known``
    files unless --force, writable; LEFT and RIGHT (``inputs``) not the same file, OUTDIR
    not inside an input folder, and no input file (``files``: every one, by the argument
    or option that names it) in OUTDIR (:func:`check_inputs_outside`)."""
    if outdir.exists() and not outdir.is_dir():
        raise KgalignError(f"{outdir}: exists and is not a directory")
    if outdir.is_dir() and not force:
        foreign = sorted(
            p.name
            for p in outdir.iterdir()
            if (p.name not in known and not p.name.startswith(".")) or (p.name in SHARD_DIRS and p.is_dir() and not is_shard_folder(p))
        )
        if foreign:
            raise KgalignError(
                f"{outdir}: directory holds other files ({', '.join(foreign[:3])}{'...' if len(foreign) > 3 else ''}); "
                "choose an empty directory or pass --force"
            )
    for folder in (p for p in inputs or [] if p.is_dir()):
        if outdir.resolve().is_relative_to(folder.resolve()):
            raise KgalignError(f"{outdir}: the output directory is inside the input folder {folder}; its files would be read as input next time")
    check_inputs_outside(outdir, files or {})
    if inputs and len(inputs) == 2:
        first, second = (p.resolve() for p in inputs)
        if first != second and (first.is_relative_to(second) or second.is_relative_to(first)):
            inner, outer = (inputs[0], inputs[1]) if first.is_relative_to(second) else (inputs[1], inputs[0])
            raise KgalignError(f"{inner}: is inside the other input, the folder {outer}; its entities would be on both sides")
        if first == second or (all(p.is_file() for p in inputs) and os.path.samefile(*inputs)):
            raise KgalignError(f"{inputs[0]}: the same file was given as LEFT and RIGHT")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KgalignError(f"{outdir}: cannot create the output directory ({exc.strerror or exc})") from None
    if not os.access(outdir, os.W_OK):
        raise KgalignError(f"{outdir}: the output directory is not writable")


def check_inputs_outside(outdir: Path, inputs: Mapping[str, str | Path | None]) -> None:
    """A usage error where an input file or folder (``inputs``: by the argument or option
    that names it) lies in OUTDIR, where the run replaces its own files and reads none:
    ``run A o/links.ttl -o o`` would overwrite its input with the links. OUTDIR/sources,
    the endpoint copies the run itself keeps there, aside."""
    folder = outdir.resolve()
    sources = folder / SOURCES_DIR
    for name, given in inputs.items():
        if given is None or given == "" or not isinstance(given, (str, Path)):
            continue
        path = Path(given)
        # The path as named (its folders' links followed), and what it is a link to.
        for place in {Path(os.path.realpath(path.parent)) / path.name, path.resolve()}:
            if place.is_relative_to(folder) and not place.is_relative_to(sources):
                raise click.UsageError(
                    f"{given}: {name} lies in the output directory {outdir}, whose files the run replaces; "
                    "move it out, or write into another directory"
                )


class RunCommand(click.Command):
    """``kgalign run``: its options come from :data:`~kgalign.cli.run_options.RUN_OPTIONS` and
    the judge registry, read when the command runs (so a backend registered after import
    gets its flags); ``--help-all`` shows the expert ones too.

    ``refused``: flags of the table this command takes only to refuse them (``kgalign
    dedup``'s ``--since``): parsed, so the command can say why in one line, but shown by
    neither ``--help`` nor ``--help-all``."""

    def __init__(self, *args: Any, refused: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused = frozenset(refused)
        for param in self.params:
            if isinstance(param, click.Option) and self.is_refused(param):
                param.hidden = True

    def is_refused(self, param: click.Parameter) -> bool:
        return any(flag in self.refused for flag in (*param.opts, *param.secondary_opts))

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        import copy

        from kgalign.cli.run_options import judge_click_options

        params = ctx.meta.get("kgalign.run_params")
        if params is None:
            params = super().get_params(ctx)
            params = params + judge_click_options({p.name for p in params if p.name})
            ctx.meta["kgalign.run_params"] = params
        if not ctx.meta.get("kgalign.help_all"):
            return params
        shown = []
        for param in params:
            if isinstance(param, click.Option) and param.hidden and not self.is_refused(param):
                param = copy.copy(param)
                param.hidden = False
            shown.append(param)
        return shown


def help_all(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    ctx.meta["kgalign.help_all"] = True
    click.echo(ctx.get_help())
    ctx.exit()


def run_options(function):
    from kgalign.cli.run_options import click_options

    for option in reversed(click_options()):
        function = attach(function, option)
    return function


def attach(function, option: click.Option):
    if not hasattr(function, "__click_params__"):
        function.__click_params__ = []
    function.__click_params__.append(option)
    return function


def metrics_line(metrics: dict) -> str:
    """The metrics of a run with --gold, as one line scripts read (``f1=0.9804``)."""
    keys = ["precision", "recall", "f1", "hits@1", "hits@10", "mrr"]
    return "  ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)
