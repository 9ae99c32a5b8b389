"""The `kgalign` command line: a thin layer over the library."""
