"""kgalign.io.importers.convert_cached: an importer's folder reused until its inputs or options change."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kgalign.errors import InputError
from kgalign.evaluation.metrics import read_pairs
from kgalign.io.importers import convert_cached, convert_dbp15k, current_conversion

DATA = Path(__file__).resolve().parent / "data"
DBP = DATA / "dbp15k_mini" / "dbp_fr_en"
ABT = DATA / "abt_buy_mini"


def test_dbp15k_conversion_is_made_once_and_redone_when_needed(tmp_path: Path) -> None:
    src = tmp_path / "dbp"
    shutil.copytree(DBP, src)
    out = tmp_path / "out"
    first = convert_cached("dbp15k", [src], out)
    assert not first.cached and first.seconds is not None
    assert set(first.files) == {"left.ttl", "right.ttl", "gold.tsv", "gold_train.tsv", "gold_test.tsv"}
    plain = tmp_path / "plain"
    convert_dbp15k(src, plain)  # the importer itself writes the same files
    for name in first.files:
        assert (out / name).read_bytes() == (plain / name).read_bytes(), name

    again = convert_cached("dbp15k", [src], out)
    assert again.cached and again.files == first.files and again.summary == first.summary
    assert again.record() == {"cached": True, "seconds": first.seconds, "dir": str(out), "summary": first.summary}

    # Other options, a missing output, a changed input: converted again.
    assert current_conversion("dbp15k", [src], out, train_share=0.5) is None
    half = convert_cached("dbp15k", [src], out, train_share=0.5)
    assert not half.cached and len(read_pairs(out / "gold_train.tsv")) > len(read_pairs(plain / "gold_train.tsv"))
    assert convert_cached("dbp15k", [src], out, train_share=0.5).cached
    (out / "gold_test.tsv").unlink()
    assert current_conversion("dbp15k", [src], out, train_share=0.5) is None
    assert not convert_cached("dbp15k", [src], out, train_share=0.5).cached
    names = src / "translated_names.json"
    stat = names.stat()
    names.write_text(names.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    os.utime(names, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # a new size is enough
    assert current_conversion("dbp15k", [src], out, train_share=0.5) is None


def test_tables_conversion_with_its_mapping(tmp_path: Path) -> None:
    inputs = [ABT / "Abt.csv", ABT / "Buy.csv", ABT / "abt_buy_perfectMapping.csv"]
    made = convert_cached("tables", inputs, tmp_path)
    assert set(made.files) == {"left.ttl", "right.ttl", "gold.tsv"} and not made.cached
    assert convert_cached("tables", inputs, tmp_path).cached
    assert current_conversion("tables", inputs[:2], tmp_path) is None  # without the mapping: another conversion


def test_bad_kind_and_missing_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown importer 'csv'"):
        convert_cached("csv", [ABT / "Abt.csv"], tmp_path)
    with pytest.raises(InputError, match="nope: not found"):
        convert_cached("dbp15k", [tmp_path / "nope"], tmp_path / "out")
