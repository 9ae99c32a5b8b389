"""The kgalign RDF vocabulary (defined in ontologies/kgalign.ttl)."""

from rdflib import Namespace

KGA = Namespace("https://w3id.org/kgalign/ns#")
