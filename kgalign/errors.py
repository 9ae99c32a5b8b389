"""Errors that reach the user as one clear line."""

from __future__ import annotations


class KgalignError(Exception):
    """A problem with the user's input or environment, shown as one line, exit code 1."""


class InputError(KgalignError):
    """An input file cannot be read or parsed. The message names the file (and line)."""


class MissingDependencyError(KgalignError, ImportError):
    """An optional backend was asked for, but its package is not installed."""

    def __init__(self, feature: str, package: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the '{package}' package: install it with "
            f"pip install 'kgalign[{extra}]'"
        )
