"""Write files so that readers never see a partial one: temp file, then rename.

:func:`atomic_open` writes one file that way. Inside a :func:`deferred_renames` block
the renames wait until the whole block has succeeded, so a set of files (the outputs of
one run) appears together or not at all: if anything in the block fails, every
temporary file is removed and no file of the set replaces an earlier one.
:func:`replace_later` adds a finished folder (or file) to such a set, and
:func:`remove_later` the removal of an earlier run's file or folder.

Files and folders made here get the permissions any file the process creates gets
(0666 and 0777 less the umask), not the owner-only ones of :mod:`tempfile`:
:func:`make_output_dir` makes a temporary folder that will become an output.
:func:`check_output_path` checks, before any work, that a file or folder can be
written where the user named it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kgalign.errors import KgalignError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Step:
    """A step waiting for the end of a deferred_renames block: ``tmp`` moved onto
    ``path`` (``tmp`` None: ``path`` removed); ``keep``: ``tmp`` is left where it is if
    the block fails (not a temporary file: the only copy of something)."""

    tmp: str | None
    path: Path
    keep: bool = False


_PENDING: ContextVar[list[_Step] | None] = ContextVar("kgalign_pending_renames", default=None)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only on success.

    Inside :func:`deferred_renames` the rename waits for the end of that block.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from None
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            _set_mode(tmp, output_mode())  # mkstemp's 0600 would stay with the file
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        pending = _PENDING.get()
        if pending is None:
            os.replace(tmp, path)
        else:
            pending.append(_Step(tmp, path))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def deferred_renames() -> Iterator[None]:
    """Files written with :func:`atomic_open` in this block appear together at its end.

    On success every temporary file is renamed onto its path, in the order written; on
    any exception (a crash in a later writer, KeyboardInterrupt) all of them are
    removed and the exception goes on. Blocks nest: an inner block hands its files to
    the outer one.
    """
    outer = _PENDING.get()
    pending: list[_Step] = []
    token = _PENDING.set(pending)
    try:
        yield
    except BaseException:
        _PENDING.reset(token)
        for step in pending:
            _discard(step)
        raise
    _PENDING.reset(token)
    if outer is not None:
        outer.extend(pending)
        return
    done = 0
    try:
        for step in pending:
            _carry_out(step)
            done += 1
    except BaseException:
        for step in pending[done:]:
            _discard(step)
        raise
    log.debug("wrote %d files together", len(pending))


def in_deferred_block() -> bool:
    """Whether a :func:`deferred_renames` block is open here."""
    return _PENDING.get() is not None


def replace_later(tmp: str | Path, path: str | Path, keep: bool = False) -> None:
    """Move the finished ``tmp`` (a file, or a folder) onto ``path`` at the end of the
    enclosing :func:`deferred_renames` block, with the files written in it (now, outside
    one). A folder replaces a folder ``path`` whole; ``tmp`` must be on ``path``'s
    filesystem. If the block fails, ``tmp`` is removed, unless ``keep``."""
    _later(_Step(str(tmp), Path(path), keep))


def remove_later(path: str | Path) -> None:
    """Remove the file or folder ``path`` (if there) at the end of the enclosing
    :func:`deferred_renames` block, with its renames (now, outside one)."""
    _later(_Step(None, Path(path)))


def _later(step: _Step) -> None:
    pending = _PENDING.get()
    if pending is None:
        _carry_out(step)
    else:
        pending.append(step)


def _carry_out(step: _Step) -> None:
    if step.tmp is not None:
        _replace(step.tmp, step.path)
    elif step.path.is_dir() and not step.path.is_symlink():
        shutil.rmtree(step.path)
    else:
        with contextlib.suppress(FileNotFoundError):
            step.path.unlink()


def _replace(tmp: str, path: Path) -> None:
    """``os.replace``, and for a folder onto an existing one: the old one moved aside
    first, then removed."""
    if not os.path.isdir(tmp) or not path.is_dir():
        os.replace(tmp, path)
        return
    aside = tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent)
    os.replace(path, os.path.join(aside, path.name))
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(os.path.join(aside, path.name), path)  # the old one back
        os.rmdir(aside)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _discard(step: _Step) -> None:
    """Undo a step that will not be carried out: remove its temporary file or folder."""
    tmp = step.tmp
    if tmp is None or step.keep:
        return
    if os.path.isdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def current_umask() -> int:
    """The process's umask: read from /proc where there is one (reading it with
    ``os.umask`` sets it for a moment, to every thread), else with ``os.umask``."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_mode(folder: bool = False) -> int:
    """The permissions of a new output file (0666) or folder (0777) under the umask."""
    return (0o777 if folder else 0o666) & ~current_umask()


def make_output_dir(prefix: str, directory: str | Path) -> Path:
    """A new temporary folder in ``directory`` that will become an output (renamed into
    place): :func:`tempfile.mkdtemp`'s, with the permissions of a folder made by ``mkdir``."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
    _set_mode(folder, output_mode(folder=True))
    return folder


def _set_mode(path: str | Path, mode: int) -> None:
    """chmod, where the file system allows it (some, FAT or SMB mounts, refuse any)."""
    try:
        os.chmod(path, mode)
    except OSError as exc:
        log.debug("%s: cannot set its permissions (%s)", path, exc.strerror or exc)


def check_output_path(path: str | Path, folder: bool = False, what: str = "") -> Path:
    """Fail in one line (:class:`KgalignError`), before any work, where ``path`` cannot be
    written: a file named where a folder is (or a folder, with ``folder``, where a file
    is), a file where one of its parent folders should be, or a parent folder that is
    not writable. Creates nothing; ``what`` (e.g. "--png") names the option in the
    message."""
    path = Path(path)
    label = f" ({what})" if what else ""
    if folder and path.exists() and not path.is_dir():
        raise KgalignError(f"{path}: exists and is not a directory{label}")
    if not folder and path.is_dir():
        raise KgalignError(f"{path}: is a directory; name a file to write{label}")
    ancestor = path.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise KgalignError(f"{ancestor}: not a directory, so {path} cannot be written{label}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise KgalignError(f"{ancestor}: not writable, so {path} cannot be written{label}")
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` (making ``path``'s folder or its temporary file) as the same error about
    ``path`` itself, or about the parent that is a file: not about a temporary name."""
    for ancestor in path.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                return NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(ancestor))
            break
    return type(exc)(exc.errno, exc.strerror, str(path))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_open`."""
    with atomic_open(path) as handle:
        handle.write(text)
