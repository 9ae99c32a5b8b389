"""Components found by name, as rdflib finds its parsers: one registration line each.

A :class:`Registry` maps a name to a component, given as the object itself or as
``"package.module:attribute"`` (imported on first use, so registering costs nothing).
Third-party packages add components through the entry-point group named by the
registry (``kgalign.resolvers``, ...), read the first time the names are listed.
Config validation (:mod:`kgalign.config`) and the command line's choices read the
names from here, so a component registered once is usable everywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from kgalign.errors import KgalignError

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    target: T | str  # "package.module:attribute" until first imported
    description: str


class Registry(Generic[T]):
    """Named components of one kind (``kind`` names it in errors, e.g. "resolve mode")."""

    def __init__(self, kind: str, entry_points: str | None = None) -> None:
        self.kind = kind
        self.entry_points = entry_points
        self._entries: dict[str, _Entry[T]] = {}
        self._loaded_entry_points = entry_points is None

    def register(self, name: str, target: T | str, description: str = "") -> None:
        """Add (or replace) ``name``: the component, or ``"module:attribute"`` to import when first used."""
        if not name or any(c.isspace() for c in name):
            raise ValueError(f"a {self.kind} name must be a non-empty word, not {name!r}")
        self._entries[name] = _Entry(target, description)

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        self._load_entry_points()
        return list(self._entries)

    def describe(self, name: str) -> str:
        return self._entry(name).description

    def get(self, name: str) -> T:
        """The component registered as ``name`` (imported now if it was given as a string)."""
        entry = self._entry(name)
        target = entry.target
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = entry.target = getattr(importlib.import_module(module), attribute)
        return target

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _entry(self, name: str) -> _Entry[T]:
        self._load_entry_points()
        if name not in self._entries:
            raise KgalignError(f"unknown {self.kind} '{name}'; choose one of: {', '.join(self._entries)}")
        return self._entries[name]

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points:
            return
        self._loaded_entry_points = True
        from importlib.metadata import entry_points

        for point in entry_points(group=self.entry_points or ""):
            if point.name not in self._entries:
                self._entries[point.name] = _Entry(point.value, f"from {point.value}")
