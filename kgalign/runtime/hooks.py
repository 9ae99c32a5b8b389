"""Hooks an engine sets for the stages it runs elsewhere (``--engine ray``'s searches and
solver): a context variable holding the hook for the code run inside a ``with`` block."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def hooked(variable: ContextVar[T], value: T) -> Iterator[None]:
    """``variable`` set to ``value`` inside the block (of this thread), as it was after."""
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)
