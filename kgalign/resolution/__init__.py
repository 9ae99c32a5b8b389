"""Stage 5, resolve: how many counterparts an entity has, and the links that follows.

- :mod:`~kgalign.resolution.cardinality`: 1:1, 1:n, n:1 or n:m detected from the data (``--resolve auto``);
- :mod:`~kgalign.resolution.resolve`: the resolve modes, found by name;
- :mod:`~kgalign.resolution.clusters`: the cluster graph (networkx), chains of weak links split.
"""
