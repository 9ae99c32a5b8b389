"""kgalign.io.atomic: files written through a temporary file get the permissions of any
new file (the umask's), errors name the file asked for, and paths are checked before work."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from kgalign.errors import KgalignError
from kgalign.io.atomic import atomic_open, check_output_path, current_umask, deferred_renames, make_output_dir, write_text_atomic


@pytest.fixture
def umask() -> Iterator[object]:
    """``umask(mask)`` sets the process's umask for the test; the earlier one comes back after."""
    before = os.umask(0o022)
    os.umask(before)
    try:
        yield os.umask
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_files_and_folders_get_the_umask_permissions(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    assert current_umask() == mask
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what any new file gets
    written = tmp_path / "written.txt"
    write_text_atomic(written, "x")
    assert _mode(written) == _mode(plain) == 0o666 & ~mask
    with deferred_renames():
        with atomic_open(tmp_path / "together.bin", "wb") as handle:
            handle.write(b"x")
    assert _mode(tmp_path / "together.bin") == 0o666 & ~mask
    folder = make_output_dir(".out-", tmp_path)
    (tmp_path / "made").mkdir()
    assert _mode(folder) == _mode(tmp_path / "made") == 0o777 & ~mask


def test_overwriting_a_file_leaves_it_as_readable_as_before(tmp_path: Path, umask) -> None:
    umask(0o022)
    path = tmp_path / "links.ttl"
    path.write_text("old")
    assert _mode(path) == 0o644
    write_text_atomic(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o644


def test_errors_name_the_file_asked_for_not_a_temporary_one(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(NotADirectoryError) as raised:
        write_text_atomic(tmp_path / "run.json" / "x.html", "x")
    assert raised.value.filename == str(tmp_path / "run.json")
    if Path("/proc/self").is_dir():  # no file can be made in /proc, by root either
        with pytest.raises(OSError) as raised:
            write_text_atomic("/proc/x.html", "x")
        assert raised.value.filename == "/proc/x.html"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_output_paths_are_checked_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "folder").mkdir()
    assert check_output_path(tmp_path / "new" / "deeper" / "report.html") == tmp_path / "new" / "deeper" / "report.html"
    assert check_output_path(tmp_path / "folder", folder=True) == tmp_path / "folder"
    with pytest.raises(KgalignError, match=r"run\.json: not a directory, so .*run\.json/q\.jsonl\.gz cannot be written \(--save-questions\)"):
        check_output_path(tmp_path / "run.json" / "q.jsonl.gz", what="--save-questions")
    with pytest.raises(KgalignError, match=r"run\.json: exists and is not a directory \(--png\)"):
        check_output_path(tmp_path / "run.json", folder=True, what="--png")
    with pytest.raises(KgalignError, match=r"folder: is a directory; name a file to write"):
        check_output_path(tmp_path / "folder")
    assert not (tmp_path / "new").exists()  # nothing made
