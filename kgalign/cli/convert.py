"""`kgalign convert`: benchmark layouts to files that `kgalign run` reads."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger("kgalign")


@click.group()
def convert() -> None:
    """Convert other benchmark layouts into files that `kgalign run` reads.

    Each subcommand writes OUTDIR/left.ttl, OUTDIR/right.ttl and gold pairs as
    two-column TSV files of IRIs (for --gold of `kgalign run` and `kgalign eval`).
    Every input is read and checked first; the files then appear together, or none.
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
@click.option("--mapping", type=click.Path(path_type=Path), help="Gold mapping table (CSV/TSV) whose first two columns are ids of A and B; a header row is skipped. Written as OUTDIR/gold.tsv of IRIs. Without it no gold file is written (and one an earlier conversion left in OUTDIR is removed).")
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
