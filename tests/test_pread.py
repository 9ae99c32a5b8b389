"""Arrays read from and written to files at offsets (kgalign/io/pread.py): the items numpy
gives for the same index, in the order asked, however the spans are merged into reads."""

from __future__ import annotations

import tempfile

import numpy as np
import pytest

from kgalign.io import pread
from kgalign.io.pread import Spans, over_map, read_range, read_rows, read_spans, row_numbers, write_at, write_rows


@pytest.fixture()
def stored():
    """A file of 10,000 float32 items 0..9999 and that array."""
    items = np.arange(10_000, dtype=np.float32)
    with tempfile.TemporaryFile() as handle:
        write_at(handle.fileno(), items, 0)
        yield handle.fileno(), items


def _expected(items: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    parts = [items[s : s + n] for s, n in zip(starts.tolist(), lengths.tolist())]
    return np.concatenate(parts) if parts else np.empty(0, dtype=items.dtype)


@pytest.mark.parametrize("gap", [0, 64, 4096, 1 << 20])
def test_spans_are_the_items_in_the_order_asked(stored, monkeypatch, gap) -> None:
    """Repeats, overlaps, empty spans, far and near spans: the same items whatever spans are read together."""
    fd, items = stored
    monkeypatch.setattr(pread, "MERGE_GAP_BYTES", gap)
    rng = np.random.default_rng(gap)
    cases = [
        (np.array([9_000, 5, 5, 3]), np.array([3, 10, 10, 4])),  # repeats and an overlap
        (np.array([100, 104, 0, 9_990]), np.array([8, 0, 1, 10])),  # an overlap, an empty span, the file's end
        (rng.integers(0, 9_900, 500), rng.integers(0, 100, 500)),
        (np.array([42]), np.array([7])),
        (np.array([], dtype=np.int64), np.array([], dtype=np.int64)),
        (np.array([3, 4]), np.array([0, 0])),
    ]
    for starts, lengths in cases:
        got = read_spans(fd, np.float32, starts, lengths)
        assert got.dtype == np.float32 and np.array_equal(got, _expected(items, starts, lengths))


def test_near_spans_are_one_read_far_ones_several(monkeypatch) -> None:
    monkeypatch.setattr(pread, "MERGE_GAP_BYTES", 40)  # 10 float32 items
    spans = Spans(np.array([500, 0, 15, 27]), np.array([5, 5, 5, 5]), 4)
    # 0-5 and 15-20 are 10 items apart (merged), 27 is 7 after 20 (merged), 500 is far.
    assert spans.begin[spans.firsts].tolist() == [0, 500]
    assert Spans(np.array([0, 100]), np.array([5, 5]), 4).firsts.tolist() == [0, 1]


def test_ranges_rows_and_writes(stored, monkeypatch) -> None:
    fd, items = stored
    assert np.array_equal(read_range(fd, np.float32, 17, 42), items[17:42])
    assert read_range(fd, np.float32, 5, 5).shape == (0,)
    matrix = items.reshape(1_000, 10)
    many = np.random.default_rng(3).integers(0, 1_000, 300)  # repeats; one range with the gap below
    for rows in (np.array([3, 4, 5]), np.array([999, 0, 7, 7]), np.array([], dtype=np.int64), many):
        assert np.array_equal(read_rows(fd, np.float32, 10, rows), matrix[rows])
        with monkeypatch.context() as patch:
            patch.setattr(pread, "MERGE_GAP_BYTES", 1 << 20)
            assert np.array_equal(read_rows(fd, np.float32, 10, rows), matrix[rows])
    # Rows that begin after a header of 3 items, consecutive and scattered.
    after = items[3:9_993].reshape(999, 10)
    for rows in (np.array([0, 1, 2]), np.array([998, 4, 4])):
        assert np.array_equal(read_rows(fd, np.float32, 10, rows, offset=3), after[rows])
    # Writes at rows, runs of consecutive rows and single ones, then read back.
    new = -np.arange(40, dtype=np.float32).reshape(4, 10)
    write_rows(fd, new, 10, np.array([10, 11, 12, 500]))
    expected = matrix.copy()
    expected[[10, 11, 12, 500]] = new
    assert np.array_equal(read_rows(fd, np.float32, 10, np.arange(1_000)), expected)


def test_a_read_past_the_end_of_the_file_fails(stored, monkeypatch) -> None:
    fd, items = stored
    with pytest.raises(OSError, match="short"):
        read_range(fd, np.float32, 9_990, 10_010)
    with pytest.raises(OSError, match="short"):
        read_spans(fd, np.float32, np.array([5, 9_995]), np.array([2, 10]))
    with pytest.raises(OSError, match="ends at byte 40000"):
        over_map(fd, np.float32, 9_995, 10_005, np.sum)
    monkeypatch.delattr(pread.os, "preadv")  # the fallback of a system without preadv
    assert np.array_equal(read_range(fd, np.float32, 9_000, 10_000), items[9_000:])
    with pytest.raises(OSError, match="short"):
        read_range(fd, np.float32, 9_990, 10_010)


def test_row_numbers_index_as_numpy_does() -> None:
    n = 6
    base = np.arange(n)
    for key in (slice(1, 5, 2), slice(None, None, -1), np.array([5, -1, 0]), np.array([True, False, True, False, False, True]), 3):
        assert np.array_equal(row_numbers(key, n), np.atleast_1d(base[key]))
    with pytest.raises(IndexError):
        row_numbers(np.array([6]), n)
    with pytest.raises(IndexError):
        row_numbers(np.array([True]), n)


def test_threads_read_at_once(stored) -> None:
    from concurrent.futures import ThreadPoolExecutor

    fd, items = stored
    rng = np.random.default_rng(5)
    asks = [rng.integers(0, 9_000, 200) for _ in range(32)]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda starts: read_spans(fd, np.float32, starts, np.full(len(starts), 9)), asks))
    assert all(np.array_equal(g, _expected(items, s, np.full(len(s), 9))) for g, s in zip(got, asks))


def test_a_view_still_referenced_leaves_the_map_to_go_with_it(stored) -> None:
    """A map whose view is still referenced when the read ends (kept by the caller, or
    by the traceback of an error inside) is let go with the view, not an error then."""
    fd, items = stored
    kept: list[np.ndarray] = []
    got = over_map(fd, np.float32, 10, 20, lambda view: (kept.append(view), view.copy())[1])
    assert np.array_equal(got, items[10:20]) and np.array_equal(kept[0], items[10:20])

    def fails(view: np.ndarray) -> None:
        raise ValueError(f"inside, {len(view)} items")

    with pytest.raises(ValueError, match="inside, 10 items"):
        over_map(fd, np.float32, 10, 20, fails)
