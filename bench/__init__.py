"""kgalign's benchmark scripts: run each from the repository root as ``python -m bench.NAME``
(``python -m bench.table --help``). They are not part of the installed package."""
