"""Importers that turn other benchmark layouts into RDF files ``kgalign run`` reads.

- :func:`convert_dbp15k`: the DBP15K / SRPRS id-file layout -> ``left.ttl``, ``right.ttl``
  and gold TSV files (``kgalign convert dbp15k``);
- :func:`convert_tables`: two CSV/TSV tables and a mapping -> ``left.ttl``, ``right.ttl``
  and ``gold.tsv`` (``kgalign convert tables``); :func:`table_graph` reads one table
  straight into an rdflib graph, which is how ``kgalign run`` accepts CSV/TSV inputs.
"""

from __future__ import annotations

from kgalign.io.importers.common import ConversionReport
from kgalign.io.importers.dbp15k import convert_dbp15k
from kgalign.io.importers.tables import Table, convert_tables, is_table_path, read_table, table_graph, table_name

__all__ = [
    "ConversionReport",
    "Table",
    "convert_dbp15k",
    "convert_tables",
    "is_table_path",
    "read_table",
    "table_graph",
    "table_name",
]
