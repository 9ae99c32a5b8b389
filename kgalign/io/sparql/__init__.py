"""SPARQL endpoints as inputs and as the target of a push.

- :mod:`~kgalign.io.sparql.http`: requests with timeouts, retries and backoff, credentials from the environment;
- :mod:`~kgalign.io.sparql.queries`: the query text (entity pages by key, descriptions, graph replacement);
- :mod:`~kgalign.io.sparql.fetch`: an endpoint's entities and folded nodes into a sorted N-Triples copy;
- :mod:`~kgalign.io.sparql.source`: an endpoint input turned into the file a run loads;
- :mod:`~kgalign.io.sparql.push`: links and fused graph written back, one named graph each.
"""
