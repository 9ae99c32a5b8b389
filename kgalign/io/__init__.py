"""Stage 1, load: read graphs and tables into entity tables, and write files atomically.

- :mod:`~kgalign.io.formats`: which format a file is in (by extension or name), RDF or table;
- :mod:`~kgalign.io.reading`: its bytes (gzip looked through) and the checks before parsing;
- :mod:`~kgalign.io.parsers`: its triples (:func:`~kgalign.io.parsers.read_triples`);
- :mod:`~kgalign.io.diagnostics`: one-line errors naming file and line, IRI checks;
- :mod:`~kgalign.io.entities`: the entity table (:func:`~kgalign.io.entities.load_entities`);
- :mod:`~kgalign.io.turtle`, :mod:`~kgalign.io.atomic`: writing Turtle/TriG, atomically;
- :mod:`~kgalign.io.importers`: other benchmark layouts and CSV/TSV tables;
- :mod:`~kgalign.io.inputs`: an input is a file or a SPARQL endpoint URL, and how outputs name it;
- :mod:`~kgalign.io.sparql`: reading endpoints into a local copy, pushing links back.
"""
