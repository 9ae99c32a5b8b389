"""Errors that reach the user as one clear line."""

from __future__ import annotations

import os
import re


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


class ConfigError(KgalignError, ValueError):
    """A setting of a run is unknown, of the wrong type or out of range. The message names it.

    ``field``: the setting a value was refused for ("vote.gate_margin"), where one was;
    ``reason``: what is wrong with it, without the name ("5.0 is out of range ..."). The
    command line names its option instead of the field from them.
    """

    def __init__(self, message: str, field: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.reason = reason

    @classmethod
    def about(cls, field: str, reason: str) -> ConfigError:
        """``field: reason``, both kept."""
        return cls(f"{field}: {reason}", field, reason)


def error_filename(exc: OSError, default: object = None) -> str | None:
    """The file an OSError is about: the destination of a rename or link (``filename2``),
    else ``filename``, else ``default`` (as text; None if that is None too)."""
    for name in (exc.filename2, exc.filename, default):
        if name is not None:
            return os.fsdecode(name) if isinstance(name, (str, bytes, os.PathLike)) else str(name)
    return None


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def first_line(exc: BaseException, named: bool = False) -> str:
    """The first non-blank line of an exception's text (a Ray error's holds a traceback),
    its type's name where it has none; ``named``: after its type's name."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    if named:
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text or type(exc).__name__


def one_line(text: str) -> str:
    """``text`` as one line: runs of whitespace made one space, control characters escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group(0)):02x}", " ".join(text.split()))
