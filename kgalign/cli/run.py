"""`kgalign run` and `kgalign rerun`: align two inputs under one config, or replay a saved run."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import click

from kgalign.cli.common import INPUT, RunCommand, check_outdir, help_all, metrics_line, run_options
from kgalign.cli.console import echo_summary, output_options
from kgalign.cli.summary import dedup_block, run_block
from kgalign.errors import KgalignError
from kgalign.io.inputs import is_endpoint
from kgalign.outputs import ADAPTER_DIR, CACHE_FILE, SOURCES_DIR
from kgalign.runtime.device import resolve_device

log = logging.getLogger("kgalign")


@click.command(cls=RunCommand)
@click.argument("left", type=INPUT)
@click.argument("right", type=INPUT)
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for fused.ttl, links.ttl, alignment.rdf, votes.jsonl, run.json (and metrics.json).")
@run_options
@output_options
@click.option("--help-all", is_flag=True, expose_value=False, is_eager=True, callback=help_all, help="Show every option, the expert ones included, and exit.")
@click.pass_context
def run(ctx: click.Context, left: str | Path, right: str | Path, outdir: Path, **opts) -> None:
    """Align LEFT and RIGHT and write the fused graph, links, alignment and log to OUTDIR.

    LEFT and RIGHT are RDF files (Turtle, N-Triples, N-Quads, TriG, RDF/XML, JSON-LD,
    optionally gzipped), folders of such files (read as one graph: an entity's triples
    may sit in several files), CSV/TSV tables (.csv, .tsv, optionally gzipped; one entity
    per row, see --id-column), or SPARQL endpoint URLs (http(s)://.../sparql, with --class;
    read once into OUTDIR/sources). Settings can come from --config FILE; options given
    here override it. Outputs are written atomically: a failed run leaves no partial file.
    Rerunning the same command resumes from the judge cache. --help-all shows every option.
    """
    from kgalign.cli.run_options import config_from_command_line

    if opts["keep_earlier"] is not None and opts["since"] is None:
        raise click.UsageError("--keep-earlier keeps decisions of an earlier run: it needs --since OLD")
    config = _with_cache(config_from_command_line(ctx, opts), outdir, opts["no_cache"])
    if is_endpoint(left) or is_endpoint(right):
        config = config.replace(sparql={"cache_dir": str(outdir / SOURCES_DIR)})
    _start(left, right, outdir, config, opts["force"], since=opts["since"], config_file=opts["config"])


#: Options of `kgalign run` that mean nothing to `kgalign dedup` (one graph file, no
#: earlier run, no second side, the local engine): given, they stop it in one line, and
#: its --help does not list them. (--resolve has its own message in kgalign.dedup.)
DEDUP_REFUSES = (
    "--since", "--keep-earlier", "--dedup", "--seed-links", "--corrections", "--explain", "--only-gold-entities", "--engine", "--ray-address", "--ray-actors",
    "--ray-gpus", "--ray-partitions", "--ray-shards", "--ray-shard-folder", "--ray-single-files-limit", "--graph", "--where", "--refresh", "--sparql-page-size", "--sparql-batch-size", "--sparql-concurrency", "--sparql-timeout",
    "--sparql-retries", "--push", "--push-graph", "--push-fused", "--push-protocol", "--adapt", "--adapt-steps", "--adapt-minutes",
    "--adapt-sources", "--adapt-method",
)  # fmt: skip


@click.command(cls=RunCommand, refused=(*DEDUP_REFUSES, "--resolve"))
@click.argument("graph", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for fused.ttl, links.ttl, votes.jsonl, run.json (and metrics.json).")
@run_options
@output_options
@click.option("--help-all", is_flag=True, expose_value=False, is_eager=True, callback=help_all, help="Show every option, the expert ones included, and exit.")
@click.pass_context
def dedup(ctx: click.Context, graph: Path, outdir: Path, **opts) -> None:
    """Find the records of one graph that describe the same thing, and merge them.

    GRAPH is read as LEFT is by `kgalign run` (RDF file, folder of RDF files, or CSV/TSV table). Each entity is
    retrieved among the others and judged as in a run; the duplicates form clusters
    (a cluster grown through a weak link is split). links.ttl holds every pair of
    records within a cluster (owl:sameAs), fused.ttl the graph with each cluster under
    one IRI and owl:sameAs to the others; run.json the cluster sizes and the splits.
    --gold FILE scores the pairs (pairwise precision, recall, F1). The options are those
    of `kgalign run`, less those for two graphs, an earlier run, an endpoint or a cluster.
    """
    from kgalign.cli.run_options import config_from_command_line

    _refuse_run_only(ctx)
    _dedup(graph, outdir, _with_cache(config_from_command_line(ctx, opts), outdir, opts["no_cache"]), opts["force"], opts["config"])


def _refuse_run_only(ctx: click.Context) -> None:
    from click.core import ParameterSource

    from kgalign.cli.run_options import RUN_OPTIONS

    for option in RUN_OPTIONS:
        flag = option.decls[0].split("/")[0]
        if flag in DEDUP_REFUSES and ctx.get_parameter_source(option.name) == ParameterSource.COMMANDLINE:
            raise KgalignError(f"kgalign dedup: {flag} is an option of `kgalign run` only (dedup reads one graph file, on this machine)")


def _with_cache(config, outdir: Path, no_cache: bool):
    """``config`` with the judge's answer cache in OUTDIR (unless --no-cache), and with
    --adapt the adapter it trains there."""
    if config.adapt.enabled:
        config = config.replace(adapt={"folder": str(outdir / ADAPTER_DIR)})
    return config if no_cache else config.replace(cache_path=str(outdir / CACHE_FILE))


def _dedup(graph: Path, outdir: Path, config, force: bool, config_file: Path | None = None) -> None:
    """Check, deduplicate ``graph``, write OUTDIR, print the summary line (and the metrics)."""
    from kgalign.dedup import deduplicate

    check_judge_settings(config)
    with _output_folder(outdir, force, [graph], input_files(config, GRAPH=graph, **{"--config": config_file})):
        result = deduplicate(graph, config)
        result.save(outdir)
    clusters = result.clusters or {}
    lines = [
        f"{result.counts['links']} duplicate pairs in {result.counts['clusters']} clusters among {result.counts['entities_left']} entities "
        f"({clusters.get('split', 0)} clusters split at a weak link, {len(clusters.get('flagged', []))} flagged) "
        f"in {result.timer.total_seconds:.1f}s -> {outdir}"
    ]
    if result.metrics is not None:
        lines.append(metrics_line(result.metrics))
    echo_summary(dedup_block(result, outdir), lines)


@click.command()
@click.argument("olddir", metavar="OUTDIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for the new run's outputs (as `kgalign run` writes them).")
@click.option("--force", is_flag=True, help="Write into the new directory even if it holds other files.")
@output_options
def rerun(olddir: Path, outdir: Path, force: bool) -> None:
    """Run again what OUTDIR/run.json describes: the same inputs and config, outputs into -o.

    The links and votes equal the first run's where the judge is deterministic (retrieval
    alone, the local judge on the same device). The judge cache starts empty, so every
    question is asked again.
    """
    from kgalign.replay import read_run, replay_config

    if outdir.exists() and olddir.exists() and (outdir.resolve() == olddir.resolve() or os.path.samefile(outdir, olddir)):
        raise click.UsageError(f"{outdir}: -o names the folder of the run to reproduce, whose outputs it would replace; write into another folder")
    saved = read_run(olddir)  # its inputs and files found from this working directory too
    if saved.command == "dedup":
        _dedup(Path(saved.left), outdir, replay_config(saved, outdir), force)
        return
    _start(saved.left, saved.right, outdir, replay_config(saved, outdir), force, olddir, command="rerun")


def _start(
    left: str | Path,
    right: str | Path,
    outdir: Path,
    config,
    force: bool,
    olddir: Path | None = None,
    since: Path | None = None,
    config_file: Path | None = None,
    command: str = "run",
) -> None:
    """Check everything that can fail before work starts, then run and write OUTDIR."""
    from kgalign.io.sparql.source import check_endpoint_inputs

    check_judge_settings(config)
    check_endpoint_inputs(left, right, config)
    old = None
    if since is not None:
        from kgalign.incremental.keep import keeps_earlier
        from kgalign.incremental.since import read_old

        if outdir.exists() and since.resolve() == outdir.resolve():
            raise KgalignError(f"{outdir}: --since names the output folder itself; write the new run into another folder")
        old = read_old(since)  # a corrupt or foreign OLD stops here, before OUTDIR is touched
        if keeps_earlier(config, config.judge != "none"):
            old.judged_before()  # and so does a decision log that cannot be kept from
        olddir = olddir or since
    files = input_files(config, LEFT=left, RIGHT=right, **{"--config": config_file})
    with _output_folder(outdir, force, [p for p in (left, right) if isinstance(p, Path)], files):
        if olddir is not None:
            from kgalign.replay import carry_adapter, carry_sources

            carry_sources(olddir, outdir)
            carry_adapter(olddir, outdir)  # --adapt takes it as it is where it was trained on the same questions
        _run(left, right, outdir, config, old, command)


@contextlib.contextmanager
def _output_folder(outdir: Path, force: bool, inputs: list[Path], files: Mapping[str, str | Path | None]) -> Iterator[None]:
    """OUTDIR checked (and created) before the work; on failure, a folder this run created
    is removed unless it holds finished work: answers this run's judge gave (the judge
    cache). Endpoint copies do not count (a run that failed while reading an endpoint
    writes nothing), nor do the answers a --since run copied from the earlier run."""
    import shutil
    import time

    from kgalign.judging.cache import answered_since

    created = not outdir.exists()
    started = time.time()
    check_outdir(outdir, force, inputs, files=files)
    try:
        yield
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                # The shards' staging folder goes anyway (kgalign.fusion.shards).
                names = {p.name for p in outdir.iterdir() if not p.name.startswith(".kgalign-shards-")}
                cache = {CACHE_FILE, CACHE_FILE + "-wal", CACHE_FILE + "-shm"}
                if names <= {SOURCES_DIR, *cache} and not answered_since(outdir / CACHE_FILE, started):
                    shutil.rmtree(outdir)
        raise


def input_files(config, **named: str | Path | None) -> dict[str, str | Path | None]:
    """Every input file of a run, by the argument or option that names it: ``named``
    (LEFT, RIGHT, --config: an endpoint URL is no file) and the config's gold, test gold,
    seed links and corrections files."""
    files = {name: value for name, value in named.items() if not (isinstance(value, str) and is_endpoint(value))}
    files.update({"--gold": config.gold, "--test-gold": config.test_gold, "--corrections": config.corrections})
    if isinstance(config.seed_links, str):  # else the pairs themselves
        files["--seed-links"] = config.seed_links
    return files


def check_judge_settings(config) -> None:
    """Fail in one line, before any work, on judge settings that cannot run (shared by run and pairs)."""
    if config.judge == "none" and (config.model or config.adapter or config.explain):
        raise KgalignError("--model, --adapter and --explain are for an LLM judge: add --judge local (or vllm, openai)")
    if config.judge == "openai" and not config.judge_options.get("base_url"):
        raise KgalignError("--judge openai needs --llm-url (the server's API root, e.g. http://127.0.0.1:8000/v1)")
    if config.judge != "none":
        from kgalign.judging.base import check_judge

        check_judge(*config.judge_choice)
    if config.device != "auto" or config.judge != "none":
        resolve_device(config.device)  # a missing GPU stops the run before OUTDIR is touched


def _run(left: str | Path, right: str | Path, outdir: Path, config, old=None, command: str = "run") -> None:
    """Align, write OUTDIR, print the summary line (and the metrics)."""
    from kgalign.fusion.shards import STAGING
    from kgalign.io.importers.tables import check_table_inputs
    from kgalign.pipeline import align
    from kgalign.runtime.hooks import hooked

    check_table_inputs(left, right)
    with hooked(STAGING, outdir):  # shards are staged in OUTDIR, so that they move in by a rename
        result = align(left, right, config, since=old)
    paths = result.save(outdir)
    counts = result.counts
    lines = [
        f"{counts['links']} links from {counts['entities_left']} x {counts['entities_right']} entities "
        f"({counts['gated']} gated, {counts['judged']} judged, {counts['llm_questions']} LLM questions, "
        f"{counts['cache_hits']} cached) in {result.timer.total_seconds:.1f}s -> {outdir}"
    ]
    if result.metrics is not None:
        lines.append(metrics_line(result.metrics))
    echo_summary(run_block(result, outdir, command), lines)
    log.debug("wrote %s", ", ".join(str(p) for p in paths.values()))
    if config.push.url:
        from kgalign.io.sparql.push import push_outputs

        try:
            pushed = push_outputs(outdir, config.push, config.sparql)
        except KgalignError as exc:
            raise KgalignError(f"{exc} (the outputs in {outdir} are complete; only the push failed)") from None
        click.echo("pushed " + ", ".join(f"{p.triples} triples to <{p.graph}>" for p in pushed))
