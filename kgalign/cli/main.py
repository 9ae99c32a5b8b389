"""The ``kgalign`` command: a thin Click layer over the library.

Exit codes: 0 success, 1 error (a one-line message), 2 usage error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from kgalign import __version__
from kgalign.errors import KgalignError, one_line
from kgalign.outputs import CACHE_FILE, KNOWN_OUTPUTS
from kgalign.runtime.device import resolve_device

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


def _check_outdir(outdir: Path, force: bool, inputs: list[Path] | None = None, known: frozenset[str] = KNOWN_OUTPUTS) -> None:
    """OUTDIR usable (created if missing) before any work: not a file, holding only ``known``
    files unless --force, writable; and LEFT and RIGHT (``inputs``) not the same file."""
    if outdir.exists() and not outdir.is_dir():
        raise KgalignError(f"{outdir}: exists and is not a directory")
    if outdir.is_dir() and not force:
        foreign = sorted(p.name for p in outdir.iterdir() if p.name not in known and not p.name.startswith("."))
        if foreign:
            raise KgalignError(
                f"{outdir}: directory holds other files ({', '.join(foreign[:3])}{'...' if len(foreign) > 3 else ''}); "
                "choose an empty directory or pass --force"
            )
    if inputs:
        resolved = {p.resolve() for p in inputs}
        if len(resolved) < len(inputs) or (all(p.is_file() for p in inputs) and os.path.samefile(*inputs[:2])):
            raise KgalignError(f"{inputs[0]}: the same file was given as LEFT and RIGHT")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KgalignError(f"{outdir}: cannot create the output directory ({exc.strerror or exc})") from None
    if not os.access(outdir, os.W_OK):
        raise KgalignError(f"{outdir}: the output directory is not writable")


class RunCommand(click.Command):
    """``kgalign run``: its options come from :data:`~kgalign.cli.run_options.RUN_OPTIONS` and
    the judge registry, read when the command runs (so a backend registered after import
    gets its flags); ``--help-all`` shows the expert ones too."""

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
            if isinstance(param, click.Option) and param.hidden:
                param = copy.copy(param)
                param.hidden = False
            shown.append(param)
        return shown


def _help_all(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    ctx.meta["kgalign.help_all"] = True
    click.echo(ctx.get_help())
    ctx.exit()


def _run_options(function):
    from kgalign.cli.run_options import click_options

    for option in reversed(click_options()):
        function = _attach(function, option)
    return function


def _attach(function, option: click.Option):
    if not hasattr(function, "__click_params__"):
        function.__click_params__ = []
    function.__click_params__.append(option)
    return function


@main.command(cls=RunCommand)
@click.argument("left", type=click.Path(path_type=Path))
@click.argument("right", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for fused.ttl, links.ttl, alignment.rdf, votes.jsonl, run.json (and metrics.json).")
@_run_options
@click.option("--help-all", is_flag=True, expose_value=False, is_eager=True, callback=_help_all, help="Show every option, the expert ones included, and exit.")
@click.pass_context
def run(ctx: click.Context, left: Path, right: Path, outdir: Path, **opts) -> None:
    """Align LEFT and RIGHT and write the fused graph, links, alignment and log to OUTDIR.

    LEFT and RIGHT are RDF files (Turtle, N-Triples, N-Quads, TriG, RDF/XML, JSON-LD,
    optionally gzipped), or CSV/TSV tables (.csv, .tsv, optionally gzipped; one entity
    per row, see --id-column). Settings can come from --config FILE; options given here
    override it. Outputs are written atomically: a failed run leaves no partial file.
    Rerunning the same command resumes from the judge cache. --help-all shows every option.
    """
    from kgalign.cli.run_options import config_from_command_line

    _quiet(opts["quiet"])
    config = config_from_command_line(ctx, opts)
    if not opts["no_cache"]:
        config = config.replace(cache_path=str(outdir / CACHE_FILE))
    _start(left, right, outdir, config, opts["force"])


@main.command()
@click.argument("olddir", metavar="OUTDIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for the new run's outputs (as `kgalign run` writes them).")
@click.option("--force", is_flag=True, help="Write into the new directory even if it holds other files.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def rerun(olddir: Path, outdir: Path, force: bool, quiet: bool) -> None:
    """Run again what OUTDIR/run.json describes: the same inputs and config, outputs into -o.

    The links and votes equal the first run's where the judge is deterministic (retrieval
    alone, the local judge on the same device). The judge cache starts empty, so every
    question is asked again.
    """
    from kgalign.replay import read_run, replay_config

    _quiet(quiet)
    saved = read_run(olddir)
    _start(saved.left, saved.right, outdir, replay_config(saved, outdir), force)


def _quiet(quiet: bool) -> None:
    from kgalign.runtime.progress import set_enabled

    set_enabled(not quiet)
    if quiet:
        _quiet_third_party_bars()


def _start(left: Path, right: Path, outdir: Path, config, force: bool) -> None:
    """Check everything that can fail before work starts, then run and write OUTDIR."""
    _check_judge_settings(config)
    created = not outdir.exists()
    _check_outdir(outdir, force, [left, right])
    try:
        _run(left, right, outdir, config)
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                outdir.rmdir()  # only if the failed run left it empty
        raise


def _check_judge_settings(config) -> None:
    """Fail in one line, before any work, on judge settings that cannot run (shared by run and pairs)."""
    if config.judge == "none" and (config.model or config.adapter or config.explain):
        raise KgalignError("--model, --adapter and --explain are for an LLM judge: add --judge local (or vllm, openai)")
    if config.judge == "openai" and not config.judge_options.get("base_url"):
        raise KgalignError("--judge openai needs --llm-url (the server's API root, e.g. http://127.0.0.1:8000/v1)")
    if config.judge != "none":
        from kgalign.judging.base import check_judge

        check_judge(config.judge, config.model, config.adapter)
    if config.device != "auto" or config.judge != "none":
        resolve_device(config.device)  # a missing GPU stops the run before OUTDIR is touched


def _quiet_third_party_bars() -> None:
    """Silence the progress bars of Hugging Face libraries (--quiet)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def _run(left: Path, right: Path, outdir: Path, config) -> None:
    """Align, write OUTDIR, print the summary line (and the metrics)."""
    from kgalign.io.importers.tables import check_table_inputs
    from kgalign.pipeline import align

    check_table_inputs(left, right)
    result = align(left, right, config)
    paths = result.save(outdir)
    counts = result.counts
    click.echo(
        f"{counts['links']} links from {counts['entities_left']} x {counts['entities_right']} entities "
        f"({counts['gated']} gated, {counts['judged']} judged, {counts['llm_questions']} LLM questions, "
        f"{counts['cache_hits']} cached) in {result.timer.total_seconds:.1f}s -> {outdir}"
    )
    if result.metrics is not None:
        _print_metrics(result.metrics)
    log.debug("wrote %s", ", ".join(str(p) for p in paths.values()))


def _print_metrics(metrics: dict) -> None:
    keys = ["precision", "recall", "f1", "hits@1", "hits@10", "mrr"]
    click.echo("  ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics))


#: The options of `kgalign run` that `kgalign pairs` takes too (by their config field), all shown in --help.
PAIRS_RUN_OPTIONS = (
    "judge", "model", "adapter", "vote.rounds", "vote.options", "seed", "device", "retrieval.dense_weight", "embedder",
    "embed_precision", "embed_engine", "embed_max_tokens", "vote.gate_margin", "vote.early_stop", "vote.plurality", "vote.datamark",
)


def _pairs_options(function):
    from dataclasses import replace

    from kgalign.cli.run_options import RUN_OPTIONS, click_options

    chosen = [o for o in RUN_OPTIONS if o.decls == ("--config",)]
    chosen += [replace(o, expert=False) for path in PAIRS_RUN_OPTIONS for o in RUN_OPTIONS if o.path == path]
    for option in reversed(click_options(tuple(chosen))):
        function = _attach(function, option)
    return function


@main.command(cls=RunCommand)
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--valid", type=click.Path(path_type=Path), help="Labelled pair file (same layouts as FILE) on which --judge none chooses its threshold: the one with the best F1 there. FILE's labels are never used to choose anything.")
@click.option("--threshold", type=click.FloatRange(-1, 1), help="Least retrieval score the best pair of a question needs to be a match without the judge (instead of choosing it on --valid). With a judge it applies to gated questions only.")
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), help="Directory for predictions.tsv (index, prediction, confidence per pair), votes.jsonl (one decision per question) and metrics.json, and the judge's answer cache. Default: print the scores only.")
@click.option("--gate/--no-gate", "pairs_gate", default=False, show_default=True, help="Accept a question's best pair without asking the judge when it is its right record's best left record too and leads the runner-up by --gate-margin (off: the judge is asked every question).")
@_pairs_options
@click.option("--no-cache", is_flag=True, help="Do not read or write the judge's answer cache (OUTDIR/judge-cache.sqlite).")
@click.option("--force", is_flag=True, help="Write into OUTDIR even if it holds other files.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--help-all", is_flag=True, expose_value=False, is_eager=True, callback=_help_all, help="Show every option, the judge backends' expert ones included, and exit.")
@click.pass_context
def pairs(ctx: click.Context, file: Path, valid: Path | None, threshold: float | None, outdir: Path | None, pairs_gate: bool, **opts) -> None:
    """Label the candidate pairs of FILE as matches or not, and score them (the DeepMatcher/Ditto protocol).

    FILE lists labelled candidate pairs of records: the Ditto/DeepMatcher text layout
    (`COL attr VAL value ...<TAB>COL attr VAL value ...<TAB>0|1` per line) or a DeepMatcher
    CSV (.csv: `label` and ltable_X/rtable_X columns, or ltable_id/rtable_id with
    tableA.csv and tableB.csv beside it). The pairs of one left record make one
    question: its right records, best retrieval score first, plus "none of these".
    A judge votes on it as `kgalign run` does; with --judge none, the best-scoring
    record wins when its score reaches the threshold (--valid or --threshold). A pair
    is predicted a match iff its right record won. Prints precision, recall and F1 of
    the match class on FILE's labels. See docs/pairs.md.
    """
    from kgalign.cli.run_options import config_from_command_line
    from kgalign.config import read_config_file
    from kgalign.pairs import match_pairs

    _quiet(opts["quiet"])
    config = config_from_command_line(ctx, opts)
    from_file = read_config_file(opts["config"]) if opts.get("config") else {}
    gate_given = ctx.get_parameter_source("pairs_gate") in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    if gate_given or "gate" not in (from_file.get("vote") or {}):
        config = config.replace(vote={"gate": pairs_gate})
    if outdir is not None and not opts["no_cache"]:
        config = config.replace(cache_path=str(outdir / CACHE_FILE))
    _check_judge_settings(config)
    if config.judge == "none" and valid is None and threshold is None:
        raise KgalignError("--judge none needs a threshold: give --valid FILE (a labelled pair file to choose it on) or --threshold X")
    if valid is not None and threshold is not None:
        raise click.UsageError("give --valid (to choose the threshold) or --threshold, not both")
    created = outdir is not None and not outdir.exists()
    if outdir is not None:
        _check_pairs_outdir(outdir, opts["force"])
    try:
        result = match_pairs(file, valid, config, threshold=threshold)
        if outdir is not None:
            result.save(outdir)
    except BaseException:
        if created and outdir is not None:
            with contextlib.suppress(OSError):
                outdir.rmdir()  # only if the failed run left it empty
        raise
    m = result.metrics
    if m["threshold"] is None:
        chosen = "threshold=none (the judge decides)"
    elif m["threshold_from"] == "valid":
        chosen = f"threshold={m['threshold']:.4f} (chosen on {valid}: F1 {m['valid_f1']:.4f} there)"
    else:
        chosen = f"threshold={m['threshold']:.4f} (given)"
    click.echo(f"precision={m['precision']:.4f}  recall={m['recall']:.4f}  f1={m['f1']:.4f}  {chosen}")
    click.echo(
        f"{m['pairs']} pairs, {m['questions']} questions, {m['positives']} labelled 1, {m['predicted']} predicted 1, "
        f"{m['true_positives']} correct; judge {m['judge']}: {m['asked']} asked, {m['gated']} gated, "
        f"{m['llm_questions']} LLM questions; {m['seconds']:.1f}s" + (f" -> {outdir}" if outdir is not None else "")
    )


def _check_pairs_outdir(outdir: Path, force: bool) -> None:
    from kgalign.pairs import PAIRS_OUTPUTS

    _check_outdir(outdir, force, known=frozenset({*PAIRS_OUTPUTS, CACHE_FILE, CACHE_FILE + "-wal", CACHE_FILE + "-shm"}))


@main.command()
@click.argument("left", type=click.Path(path_type=Path))
@click.argument("right", type=click.Path(path_type=Path))
@click.option("--format", "fmt", help="RDF format of both inputs; default: from the extension.")
@click.option("--class", "classes", multiple=True, help="Profile only subjects of this rdf:type; repeatable.")
@click.option("--top", type=int, default=15, show_default=True, help="Predicates shown per graph.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def profile(left: Path, right: Path, fmt: str | None, classes: tuple[str, ...], top: int, as_json: bool) -> None:
    """Rank each graph's predicates by coverage and distinctiveness, and suggest predicate pairs.

    The ranking decides which attributes and relations the embedder and the judge see;
    override it in `kgalign run` with --attributes and --relations.
    """
    from rich.console import Console
    from rich.table import Table

    from kgalign.io.entities import load_entities
    from kgalign.selection.predicates import predicate_stats, short_name, suggest_pairs

    tables = []
    for path in (left, right):
        _, table = load_entities(path, str(path), fmt, list(classes) or None)
        tables.append(table)
    stats = [predicate_stats(t) for t in tables]
    pairs = suggest_pairs(tables[0], tables[1])
    if as_json:
        click.echo(
            json.dumps(
                {
                    "left": [dict(s.__dict__, importance=s.importance) for s in stats[0][:top]],
                    "right": [dict(s.__dict__, importance=s.importance) for s in stats[1][:top]],
                    "pairs": [p.__dict__ for p in pairs],
                },
                indent=2,
            )
        )
        return
    console = Console()
    for path, table, ranked in zip((left, right), tables, stats):
        view = Table(title=f"{path} ({len(table)} entities)")
        for column in ("predicate", "kind", "coverage", "distinct", "importance"):
            view.add_column(column, justify="left" if column in ("predicate", "kind") else "right")
        for s in ranked[:top]:
            view.add_row(short_name(s.predicate), s.kind, f"{s.coverage:.3f}", f"{s.distinctiveness:.3f}", f"{s.importance:.3f}")
        console.print(view)
    view = Table(title="Suggested corresponding predicates (value overlap)")
    for column in ("left", "right", "overlap"):
        view.add_column(column)
    for p in pairs[:top]:
        view.add_row(short_name(p.left), short_name(p.right), f"{p.overlap:.3f}")
    console.print(view)


@main.command()
@click.argument("votes", type=click.Path(path_type=Path))
@click.option("--uncertain", is_flag=True, help="List only uncertain decisions.")
@click.option("--disagreements", is_flag=True, help="List only decisions whose rounds did not all agree.")
@click.option("--entity", help="Show the decision of this source IRI in full, every round included.")
@click.option("--limit", type=int, default=20, show_default=True, help="Rows listed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(votes: Path, uncertain: bool, disagreements: bool, entity: str | None, limit: int, as_json: bool) -> None:
    """Summarise a votes.jsonl log, list decisions by filter, or show one in full.

    The summary gives decisions by kind, agreement between rounds, and how often each
    option position (A, B, ...) won: a judge without position bias spreads its wins
    like the true matches are spread.
    """
    from kgalign.review.inspect import render_decision, render_list, render_summary
    from kgalign.review.votes import read_votes, summarise

    records = list(read_votes(votes))
    if entity:
        chosen = [r for r in records if r["source"] == entity]
        if not chosen:
            raise KgalignError(f"{votes}: no decision for entity {entity}")
        click.echo(json.dumps(chosen[0], indent=2, ensure_ascii=False) if as_json else render_decision(chosen[0]))
        return
    if uncertain or disagreements:
        rows = [
            r
            for r in records
            if (not uncertain or r["decision"] == "uncertain")
            and (not disagreements or len({x["target"] for x in r.get("rounds", [])}) > 1)
        ]
        click.echo(json.dumps(rows[:limit], indent=2) if as_json else render_list(rows[:limit], len(rows)))
        return
    summary = summarise(records)
    click.echo(json.dumps(summary, indent=2) if as_json else render_summary(summary))


@main.command()
@click.argument("outdir", metavar="OUTDIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="HTML file to write. Default: OUTDIR/report.html.")
@click.option("--gold", type=click.Path(path_type=Path), help="Gold links (any format of `kgalign eval`): marks each decision correct or wrong and draws precision and recall against a confidence threshold.")
@click.option("--png", "png_dir", type=click.Path(path_type=Path), help="Also write the charts as PNG files into this directory.")
@click.option("--title", help="Title of the page. Default: the name of OUTDIR.")
def report(outdir: Path, output: Path | None, gold: Path | None, png_dir: Path | None, title: str | None) -> None:
    """Write one self-contained HTML page about the run in OUTDIR, for reading and reviewing.

    The page (no network, everything inlined) shows summary numbers, charts (decisions,
    confidence, position bias, and with --gold precision/recall against a threshold) and
    a searchable, sortable table of decisions. A reviewer accepts, rejects or picks
    another candidate and downloads a corrections file for `kgalign run --corrections`.
    """
    from kgalign.review.report import write_report

    result = write_report(outdir, output, gold, png_dir, title)
    click.echo(f"{result.html} ({result.decisions} decisions)")
    for path in result.pngs:
        click.echo(str(path))


@main.command(name="eval")
@click.option("--gold", type=click.Path(path_type=Path), required=True, help="Gold links: OAEI alignment RDF/XML, owl:sameAs RDF, or two-column CSV/TSV.")
@click.argument("links", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def evaluate(gold: Path, links: Path, as_json: bool) -> None:
    """Score LINKS (any of the gold formats) against GOLD: precision, recall, F1."""
    from dataclasses import asdict

    from kgalign.evaluation.metrics import link_metrics, read_pairs

    metrics = asdict(link_metrics(read_pairs(links), read_pairs(gold)))
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
    else:
        click.echo(
            f"precision={metrics['precision']:.4f}  recall={metrics['recall']:.4f}  f1={metrics['f1']:.4f}  "
            f"({metrics['true_positives']} correct of {metrics['predicted']} links, {metrics['gold']} gold)"
        )


@main.group()
def convert() -> None:
    """Convert other benchmark layouts into files that `kgalign run` reads.

    Each subcommand writes OUTDIR/left.ttl, OUTDIR/right.ttl and gold pairs as
    two-column TSV files of IRIs (for --gold of `kgalign run` and `kgalign eval`).
    """


@convert.command(name="dbp15k")
@click.argument("indir", metavar="DIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for left.ttl (ent_ids_1, triples_1), right.ttl (ent_ids_2, triples_2), gold_train.tsv, gold_test.tsv and gold.tsv; created if missing, those files overwritten.")
@click.option("--train-share", type=click.FloatRange(0, 1, max_open=True), default=0.3, show_default=True, help="Share of ref_ent_ids, taken from the top, that becomes gold_train.tsv when DIR has no sup_ent_ids (the DBP15K protocol); the rest becomes gold_test.tsv. With sup_ent_ids (SRPRS), sup_ent_ids is the train split and ref_ent_ids the test split.")
def convert_dbp15k(indir: Path, outdir: Path, train_share: float) -> None:
    """Convert a DBP15K / SRPRS folder (DIR) into two Turtle graphs and gold TSV files.

    DIR holds ent_ids_1/2 (id, IRI), triples_1/2 (head, relation, tail ids), ref_ent_ids
    and optionally sup_ent_ids (gold id pairs), rel_ids_1/2 (relation id, IRI; without
    them relations are urn:kgalign:relation:<id>) and translated_names.json (English
    names of every entity, written as rdfs:label with language "en").
    """
    from kgalign.io.importers import convert_dbp15k as run_conversion

    click.echo(run_conversion(indir, outdir, train_share).summary())


@convert.command(name="tables")
@click.argument("left_table", metavar="A", type=click.Path(path_type=Path))
@click.argument("right_table", metavar="B", type=click.Path(path_type=Path))
@click.option("--mapping", type=click.Path(path_type=Path), help="Gold mapping table (CSV/TSV) whose first two columns are ids of A and B; a header row is skipped. Written as OUTDIR/gold.tsv of IRIs. Without it no gold file is written.")
@click.option("--id-column", help="Name of the id column in both tables. Default: each table's first column.")
@click.option("-o", "--output", "outdir", type=click.Path(path_type=Path), required=True, help="Directory for left.ttl (A), right.ttl (B) and gold.tsv; created if missing, those files overwritten.")
def convert_tables(left_table: Path, right_table: Path, mapping: Path | None, id_column: str | None, outdir: Path) -> None:
    """Convert two CSV/TSV tables A and B, such as Leipzig Abt-Buy, into Turtle graphs.

    Each row becomes the entity urn:kgalign:table:<file name>:<id>, each other non-empty
    cell a literal of urn:kgalign:table:<file name>#<column>. The encoding is detected
    (UTF-8, else cp1252/latin-1). `kgalign run` also reads such tables directly.
    """
    from kgalign.io.importers import convert_tables as run_conversion

    click.echo(run_conversion(left_table, right_table, outdir, mapping, id_column).summary())


@main.command()
@click.argument("left", required=False, type=click.Path(path_type=Path))
@click.argument("right", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", "adapter_dir", type=click.Path(path_type=Path), required=True, help="Adapter directory: the best adapter (for `kgalign run --adapter`), kgalign-finetune.json, best/ and the last checkpoint-N/ folders.")
@click.option("--links", type=click.Path(path_type=Path), help="Gold recipe: gold links of LEFT and RIGHT (any format of `kgalign eval`); the questions show each source's real retrieval candidates.")
@click.option("--from-votes", "votes", type=click.Path(path_type=Path), help="Teacher recipe: the votes.jsonl of an earlier run, whose confident decisions become the labels. The graphs are those named in the run.json beside it, unless LEFT and RIGHT are given.")
@click.option("--min-confidence", type=click.FloatRange(0, 1), default=0.8, show_default=True, help="Teacher recipe: decisions below this confidence are not used (human decisions always are).")
@click.option("--include-none", is_flag=True, help="Teacher recipe: also learn the teacher's confident 'none' decisions (answer 'none of these').")
@click.option("--corrections", type=click.Path(path_type=Path), help="A reviewer's corrections file (from `kgalign report`): its verdicts are extra gold labels that override the recipe's.")
@click.option("--model", type=click.Path(path_type=Path), help="Base model folder (any local transformers causal LM). Default: SmolLM2-135M-Instruct, as the local judge.")
@click.option("--options", "n_options", type=click.IntRange(1, 20), help="Candidates shown per question (plus 'none of these'); use the --options of the runs that will load the adapter. Default: 5, or the teacher run's.")
@click.option("-k", "--top-k", type=click.IntRange(1, 100), default=10, show_default=True, help="Gold recipe: candidates retrieved per source entity.")
@click.option("--attributes", multiple=True, help="Gold recipe: attribute predicates to show, as `kgalign run --attributes` (pass the same to the runs).")
@click.option("--format", "fmt", help="Gold recipe: RDF format of both inputs; default: from the extension.")
@click.option("--id-column", help="Id column of CSV/TSV inputs, as `kgalign run --id-column`.")
@click.option("--embedder", help="Gold recipe: sentence-transformers model folder for retrieval, as `kgalign run --embedder`.")
@click.option("--permutations", type=click.IntRange(1, 24), default=4, show_default=True, help="Candidate orders per question (by score, reversed, then seeded shuffles), so the answer is seen at every position.")
@click.option("--none-share", type=click.FloatRange(0, 1), default=0.2, show_default=True, help="Share of the sources with a match whose match is removed from the candidates (answer 'none of these').")
@click.option("--val-share", type=click.FloatRange(0, 0.9), default=0.2, show_default=True, help="Share of the labelled sources held out for validation (split by source).")
@click.option("--max-train", type=click.IntRange(1, None), help="Use at most this many training questions (a quick trial).")
@click.option("--max-val", type=click.IntRange(0, None), default=256, show_default=True, help="Validation questions evaluated (the first of the held-out ones).")
@click.option("--max-steps", type=click.IntRange(0, None), default=300, show_default=True, help="Optimizer steps in all (a resumed run counts the steps already done).")
@click.option("--minutes", type=click.FloatRange(0, None, min_open=True), help="Stop training after this many minutes (then evaluate and save).")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=8, show_default=True, help="Questions per optimizer step.")
@click.option("--lr", type=click.FloatRange(0, 1, min_open=True), default=2e-4, show_default=True, help="Learning rate (AdamW, after a linear warm-up).")
@click.option("--warmup-steps", type=click.IntRange(0, None), default=10, show_default=True, help="Steps of linear learning-rate warm-up.")
@click.option("--lora-r", type=click.IntRange(1, 256), default=8, show_default=True, help="LoRA rank (vLLM loads ranks up to 512; keep it small).")
@click.option("--lora-alpha", type=click.IntRange(1, 1024), default=16, show_default=True, help="LoRA scaling numerator (the update is scaled by alpha / r).")
@click.option("--lora-layers", type=click.IntRange(0, None), default=0, show_default=True, help="Put adapters in the top N transformer layers only (0: all). Fewer layers train faster and in less memory (on a CPU, top 8 of SmolLM2's 30 halve the time of a step); vLLM loads either.")
@click.option("--eval-every", type=click.IntRange(0, None), default=50, show_default=True, help="Evaluate on the validation questions every N steps (0: only before and after).")
@click.option("--patience", type=click.IntRange(0, None), default=3, show_default=True, help="Stop after this many evaluations without a better validation accuracy (0: never stop early).")
@click.option("--save-every", type=click.IntRange(0, None), default=50, show_default=True, help="Write ADAPTER_DIR/checkpoint-N every N steps (0: only at the end); the last two are kept.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in ADAPTER_DIR (adapter, optimizer and scheduler state, step count); needs the same data options.")
@click.option("--force", is_flag=True, help="Start over in an ADAPTER_DIR that holds an earlier adapter or checkpoints.")
@click.option("--datamark", is_flag=True, help="Build the training questions as `kgalign run --datamark` asks them (words of data values joined by '^'): give both or neither.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the validation split, the 'none' examples, the candidate orders, the batches and LoRA's initial weights.")
@click.option("--device", default="auto", show_default=True, metavar="DEVICE", help="Where training (and the gold recipe's embedder) runs: auto (the first CUDA GPU when torch sees one, else the CPU), cpu, cuda, cuda:N or mps.")
@click.option("--threads", type=click.IntRange(1, 1024), help="CPU threads of torch. Default: torch's (one per core); 1 is faster on a machine busy with other work.")
@click.option("--dtype", type=click.Choice(["auto", "bfloat16", "float32"]), default="auto", show_default=True, help="Arithmetic of training. auto: float32 weights under bfloat16 autocast where the CPU or GPU computes bfloat16 natively (about twice as fast), float32 otherwise. bfloat16: bfloat16 weights too (half the memory; auto's float32 weights are what was measured on a GPU).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def finetune(left: Path | None, right: Path | None, adapter_dir: Path, **opts) -> None:
    """Fine-tune the judge model with LoRA on questions asked exactly as a run asks them.

    \b
    Gold recipe:    kgalign finetune LEFT RIGHT --links GOLD -o ADAPTER_DIR
    Teacher recipe: kgalign finetune --from-votes OUTDIR/votes.jsonl -o ADAPTER_DIR

    Prints validation accuracy and where the answers fall (position bias) before and
    after training, and writes them to ADAPTER_DIR/kgalign-finetune.json. Runs on the
    GPU when torch sees one (see --device). Use the result with `kgalign run --adapter ADAPTER_DIR`.
    """
    from dataclasses import replace

    from kgalign.config import AlignConfig, RetrievalConfig
    from kgalign.finetune import DataConfig, TrainConfig, gold_data, teacher_data
    from kgalign.finetune import finetune as train_adapter
    from kgalign.finetune.train import check_output, summary_lines
    from kgalign.runtime.progress import set_enabled

    set_enabled(not opts["quiet"])
    if opts["quiet"]:
        _quiet_third_party_bars()
    if (left is None) != (right is None):
        raise click.UsageError("give both LEFT and RIGHT, or neither (with --from-votes)")
    if opts["votes"] and opts["links"]:
        raise click.UsageError("--links (gold recipe) and --from-votes (teacher recipe) exclude each other")
    if not opts["votes"] and left is None:
        raise click.UsageError("give LEFT RIGHT --links GOLD (gold recipe) or --from-votes VOTES (teacher recipe)")
    if not opts["votes"] and not opts["links"] and not opts["corrections"]:
        raise click.UsageError("the gold recipe needs --links GOLD (or --corrections FILE)")
    check_output(adapter_dir, opts["resume"], opts["force"])
    device = resolve_device(opts["device"])
    data_config = DataConfig(
        options=opts["n_options"] or (0 if opts["votes"] else 5),
        permutations=opts["permutations"],
        none_share=opts["none_share"],
        val_share=opts["val_share"],
        seed=opts["seed"],
        datamark=opts["datamark"],
    )
    if opts["votes"]:
        data = teacher_data(
            opts["votes"], data_config, left, right, opts["min_confidence"], opts["include_none"], opts["corrections"],
            id_column=opts["id_column"],
        )
    else:
        assert left is not None and right is not None  # the gold recipe needs both (checked above)
        align_config = AlignConfig(
            judge="none",
            embedder=opts["embedder"],
            device=device,
            left_format=opts["fmt"],
            right_format=opts["fmt"],
            id_column=opts["id_column"],
            attributes=tuple(opts["attributes"]),
            retrieval=RetrievalConfig(k=opts["top_k"]),
            seed=opts["seed"],
        )
        data = gold_data(left, right, opts["links"], data_config, align_config, opts["corrections"])
    if opts["max_train"]:
        data = replace(data, train=data.train[: opts["max_train"]])
    train_config = TrainConfig(
        model=str(opts["model"]) if opts["model"] else None,
        max_steps=opts["max_steps"],
        batch_size=opts["batch_size"],
        lr=opts["lr"],
        warmup_steps=opts["warmup_steps"],
        lora_r=opts["lora_r"],
        lora_alpha=opts["lora_alpha"],
        lora_layers=opts["lora_layers"],
        eval_every=opts["eval_every"],
        save_every=opts["save_every"],
        patience=opts["patience"],
        max_val=opts["max_val"],
        minutes=opts["minutes"],
        seed=opts["seed"],
        resume=opts["resume"],
        force=opts["force"],
        threads=opts["threads"],
        device=device,
        dtype=opts["dtype"],
    )
    result = train_adapter(data, train_config, adapter_dir)
    click.echo("\n".join(summary_lines(result)))


if __name__ == "__main__":  # pragma: no cover
    main()
