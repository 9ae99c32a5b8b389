"""Commands that read and review what a run wrote: profile, inspect, report, eval."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from kgalign.cli.common import FORMAT, FORMAT_HELP
from kgalign.errors import KgalignError

log = logging.getLogger("kgalign")


def class_name(key: str) -> str:
    """A class as a table shows it: its local name; an IRI pattern by its last two path parts."""
    from kgalign.model import local_name

    if key.endswith("*"):
        parts = key[:-1].rstrip("/#").split("/")
        return "/".join(parts[-2:]) + "/*" if len(parts) > 3 else key
    return local_name(key)


@click.command()
@click.argument("left", type=click.Path(path_type=Path))
@click.argument("right", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=FORMAT, metavar="FORMAT", help=FORMAT_HELP)
@click.option("--class", "classes", multiple=True, help="Profile only subjects of this rdf:type; repeatable.")
@click.option("--keep-class", "keep", multiple=True, metavar="IRI", help="A class (IRI, or IRI pattern ending in *) whose instances are entities whatever the data says; repeatable.")
@click.option("--fold-class", "fold", multiple=True, metavar="IRI", help="A class whose instances are folded into their owners; repeatable.")
@click.option("--class-map", "class_map", multiple=True, metavar="LEFT=RIGHT", help="A class correspondence to use instead of the ones found; repeatable.")
@click.option("--top", type=click.IntRange(min=0), default=15, show_default=True, help="Predicates shown per graph.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def profile(
    left: Path, right: Path, fmt: str | None, classes: tuple[str, ...], keep: tuple[str, ...], fold: tuple[str, ...], class_map: tuple[str, ...], top: int, as_json: bool
) -> None:
    """Show how each graph is read: its classes (kept as entities or folded into their
    owners, and why), which classes correspond across the graphs, each predicate's
    coverage, distinctiveness and alignability (how many of its values can agree with
    the other graph's) and the importance they give, and suggested predicate pairs.

    The ranking decides which attributes and relations the embedder and the judge see;
    override it in `kgalign run` with --attributes and --relations, and the classes
    with --class, --keep-class, --fold-class and --class-map (expert options:
    `kgalign run --help-all` lists them).
    """
    from rich.console import Console
    from rich.table import Table

    from kgalign.config import AlignConfig
    from kgalign.io.entities import load_entities
    from kgalign.selection.alignability import vocabulary
    from kgalign.selection.classes import align_classes
    from kgalign.selection.predicates import predicate_stats, short_name, suggest_pairs

    try:
        AlignConfig(class_map=class_map)
    except KgalignError as exc:
        raise click.UsageError(f"--class-map: {exc}") from None
    tables = []
    for path in (left, right):
        _, table = load_entities(path, str(path), fmt, list(classes) or None, keep=keep, fold=fold)
        tables.append(table)
    words = [vocabulary(t) for t in tables]
    stats = [predicate_stats(tables[0], words[1]), predicate_stats(tables[1], words[0])]
    pairs = suggest_pairs(tables[0], tables[1])
    aligned = None if classes else align_classes(tables[0], tables[1], class_map)
    if as_json:
        found: dict = {"given": list(classes)}
        for side, table in (("left", tables[0]), ("right", tables[1])):
            if table.kinds is not None:
                found[side] = table.kinds.to_dict()
        if aligned is not None:
            found.update(aligned.to_dict())
        click.echo(
            json.dumps(
                {
                    "classes": found,
                    "left": [dict(s.__dict__, importance=s.importance) for s in stats[0][:top]],
                    "right": [dict(s.__dict__, importance=s.importance) for s in stats[1][:top]],
                    "pairs": [p.__dict__ for p in pairs],
                },
                indent=2,
            )
        )
        return
    console = Console()
    console.print("Classes are shown by local name (IRI patterns of untyped nodes by their last path parts); --json gives the IRIs.")
    for path, table in zip((left, right), tables):
        if table.kinds is None:
            continue
        view = Table(title=f"Classes of {path}: instances kept as entities or folded into their owners")
        for column in ("class", "instances", "kept", "why"):
            view.add_column(column, justify="right" if column == "instances" else "left")
        for c in table.kinds.classes[: max(top, 1) * 2]:
            view.add_row(class_name(c.key), str(c.instances), "kept" if c.kept else "folded", c.reason)
        console.print(view)
    if aligned is not None:
        view = Table(title=f"Class correspondences ({len(aligned.blocks)} blocks of entities are aligned)")
        for column in ("left class", "right class", "found by", "support"):
            view.add_column(column)
        for pair in aligned.correspondences[: max(top, 1) * 4]:
            view.add_row(class_name(pair.left), class_name(pair.right), pair.how, "" if pair.support is None else f"{pair.support:.3f}")
        console.print(view)
        for side, unaligned in aligned.unaligned.items():
            if unaligned:
                console.print(f"{side} classes that correspond to nothing (not aligned unless their instances hold another class): {', '.join(map(class_name, unaligned))}")
    for path, table, ranked in zip((left, right), tables, stats):
        view = Table(title=f"{path} ({len(table)} entities)")
        for column in ("predicate", "kind", "coverage", "distinct", "alignability", "importance"):
            view.add_column(column, justify="left" if column in ("predicate", "kind") else "right")
        for s in ranked[:top]:
            aligned_share = "" if s.alignability is None else f"{s.alignability:.3f}"
            view.add_row(short_name(s.predicate) + (" (long text)" if s.long_text else ""), s.kind, f"{s.coverage:.3f}", f"{s.distinctiveness:.3f}", aligned_share, f"{s.importance:.3f}")
        console.print(view)
    view = Table(title="Suggested corresponding predicates (value overlap)")
    for column in ("left", "right", "overlap"):
        view.add_column(column)
    for p in pairs[:top]:
        view.add_row(short_name(p.left), short_name(p.right), f"{p.overlap:.3f}")
    console.print(view)


@click.command()
@click.argument("votes", type=click.Path(path_type=Path))
@click.option("--uncertain", is_flag=True, help="List only uncertain decisions.")
@click.option("--disagreements", is_flag=True, help="List only decisions whose rounds did not all agree.")
@click.option("--entity", help="Show the decision of this source IRI in full, every round included.")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True, help="Rows listed (0: only the count).")
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
    if not records:
        raise KgalignError(f"{votes}: the file is empty (no decision records)")
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
            and (not disagreements or len({x["target"] for x in r.get("rounds", []) if not x.get("step")}) > 1)
        ]
        click.echo(json.dumps(rows[:limit], indent=2) if as_json else render_list(rows[:limit], len(rows)))
        return
    summary = summarise(records)
    run_json = votes.parent / "run.json"
    if run_json.is_file():
        try:
            info = json.loads(run_json.read_text(encoding="utf-8"))
        except ValueError:
            info = {}
        summary["run"] = {key: info.get(key) for key in ("cardinality", "clusters", "classes", "guard", "warnings") if isinstance(info, dict) and info.get(key)}
    click.echo(json.dumps(summary, indent=2) if as_json else render_summary(summary))


@click.command()
@click.argument("outdir", metavar="OUTDIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(), help="HTML file to write; a folder (existing, or named with a trailing slash): its report.html. Default: OUTDIR/report.html.")
@click.option("--gold", type=click.Path(path_type=Path), help="Gold links (any format of `kgalign eval`): marks each decision correct or wrong and draws precision and recall against a confidence threshold.")
@click.option("--png", "png_dir", type=click.Path(path_type=Path), help="Also write the charts as PNG files into this directory.")
@click.option("--title", help="Title of the page. Default: the name of OUTDIR.")
def report(outdir: Path, output: str | None, gold: Path | None, png_dir: Path | None, title: str | None) -> None:
    """Write one self-contained HTML page about the run in OUTDIR, for reading and reviewing.

    The page (no network, everything inlined) shows summary numbers, charts (decisions,
    confidence, position bias, and with --gold precision/recall against a threshold) and
    a searchable, sortable table of decisions. A reviewer accepts, rejects or picks
    another candidate and downloads a corrections file for `kgalign run --corrections`
    (an expert option: `kgalign run --help-all` lists it).
    """
    from kgalign.review.report import write_report

    result = write_report(outdir, output, gold, png_dir, title)
    click.echo(f"{result.html} ({result.decisions} decisions)")
    for path in result.pngs:
        click.echo(str(path))


@click.command(name="eval")
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
