"""Stage 1, load: read graphs and tables into entity tables, and write files atomically."""
