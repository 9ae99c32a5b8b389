"""Stage 6, fuse: one canonical IRI per cluster, conflicts by policy, provenance; the RDF writers."""
