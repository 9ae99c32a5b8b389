"""Importers that turn other benchmark layouts into RDF files ``kgalign run`` reads.

- :func:`convert_dbp15k`: the DBP15K / SRPRS id-file layout -> ``left.ttl``, ``right.ttl``
  and gold TSV files (``kgalign convert dbp15k``);
- :func:`convert_tables`: two CSV/TSV tables and a mapping -> ``left.ttl``, ``right.ttl``
  and ``gold.tsv`` (``kgalign convert tables``); :func:`table_graph` reads one table
  straight into an rdflib graph, which is how ``kgalign run`` accepts CSV/TSV inputs;
- :func:`convert_cached`: either importer, reusing its output folder while the inputs
  are unchanged (a stamp of their sizes and times); :func:`current_conversion` checks.
"""

from __future__ import annotations

from kgalign.io.importers.cached import CachedConversion, convert_cached, current_conversion
from kgalign.io.importers.common import ConversionReport
from kgalign.io.importers.dbp15k import convert_dbp15k
from kgalign.io.importers.tables import Table, convert_tables, read_table, table_graph, table_name

__all__ = [
    "CachedConversion",
    "ConversionReport",
    "Table",
    "convert_cached",
    "convert_dbp15k",
    "convert_tables",
    "current_conversion",
    "read_table",
    "table_graph",
    "table_name",
]
