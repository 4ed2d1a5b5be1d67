"""FMA's features.csv layout: header checks, import, and export read back by FMA's loader."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fmagenre.audio.names import feature_index, flat_names
from fmagenre.extraction.driver import run_extraction
from fmagenre.platform.config import ExtractConfig
from fmagenre.tables.feature_table import read_features
from fmagenre.tables.fma_csv import FMA_VERSION, FmaCsvError, parse_header

ROOT = Path(__file__).resolve().parent.parent


def _job(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fma_loader(path: Path) -> pd.DataFrame:
    """FMA's own ``utils.load`` for features.csv."""
    return pd.read_csv(path, index_col=0, header=[0, 1, 2])


def _header(triples=None) -> list[str]:
    """FMA's four header lines, written by hand."""
    triples = list(feature_index()) if triples is None else triples
    return [
        "feature," + ",".join(t[0] for t in triples),
        "statistics," + ",".join(t[1] for t in triples),
        "number," + ",".join(t[2] for t in triples),
        "track_id" + "," * len(triples),
    ]


def _hand_written(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([*_header(), *rows]) + "\n")
    return path


def _data_row(track_id: int, rng: np.random.Generator, *, blanks=()) -> str:
    values = [f"{v:.10e}" for v in rng.standard_normal(518) * 10.0 ** rng.integers(-3, 4, 518)]
    for i in blanks:
        values[i] = ""
    return f"{track_id}," + ",".join(values)


def test_parse_header_maps_columns_in_any_order():
    assert parse_header(_header()) == list(range(1, 519))
    shuffled = list(feature_index())
    np.random.default_rng(1).shuffle(shuffled)
    positions = parse_header(_header(shuffled))
    assert [shuffled[p - 1] for p in positions] == list(feature_index())


def _broken(kind: str) -> list[str]:
    lines = _header()
    triples = list(feature_index())
    if kind == "three_lines":
        return lines[:3]
    if kind == "flat_header":
        return ["track_id," + ",".join(flat_names()), "2," + "0," * 517 + "0", *lines[2:]]
    if kind == "swapped":
        return [lines[0], lines[2], lines[1], lines[3]]
    if kind == "index_row":
        return [*lines[:3], "track_id,x" + "," * 517]
    if kind == "unpadded":
        return _header([(t[0], t[1], t[2].lstrip("0")) for t in triples])
    if kind == "repeated":
        return _header([*triples[:-1], triples[0]])
    if kind == "missing":
        return _header(triples[:-1])
    assert kind == "ragged"
    return [lines[0], lines[1].rsplit(",", 1)[0], *lines[2:]]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("three_lines", "3 line(s); FMA's features.csv starts with 4 header lines"),
        ("flat_header", "line 1 should start with 'feature', found 'track_id'"),
        ("swapped", "line 2 should start with 'statistics', found 'number'"),
        ("index_row", "line 4 should be 'track_id' followed by empty fields"),
        ("unpadded", "column 2 is ('chroma_cens', 'kurtosis', '1'), not one of FMA's 518"),
        ("repeated", "column 519 repeats ('chroma_cens', 'kurtosis', '01')"),
        ("missing", "1 of the 518 features missing, e.g. ('zcr', 'std', '01')"),
        ("ragged", "line 2 has 518 fields but line 1 has 519"),
    ],
)
def test_parse_header_names_what_is_wrong(kind, message):
    with pytest.raises(FmaCsvError) as caught:
        parse_header(_broken(kind), source="f.csv")
    assert str(caught.value).startswith("f.csv: ") and message in str(caught.value)


@pytest.mark.slow
def test_import_hand_written_features_csv(spark, tmp_path, capsys):
    rng = np.random.default_rng(0)
    csv = _hand_written(
        tmp_path / "features.csv",
        [_data_row(2, rng), _data_row(3, rng, blanks=(0, 517)), _data_row(140, rng)],
    )
    output = tmp_path / "fma_features"
    job = _job("import_fma_features")
    assert job.main(["--csv", str(csv), "--output", str(output)], spark=spark) == 0
    assert f"imported 3 tracks from {csv}" in capsys.readouterr().out

    expected = _fma_loader(csv).astype(np.float32)
    assert list(expected.columns) == list(feature_index())
    rows = read_features(spark, str(output)).orderBy("track_id").collect()
    assert [row.track_id for row in rows] == [2, 3, 140]
    for row in rows:
        assert (row.status, row.error, row.path, row.extractor_version) == (
            "ok",
            None,
            None,
            FMA_VERSION,
        )
        flat = np.array([row[name] for name in flat_names()], dtype=np.float32)
        np.testing.assert_array_equal(flat, expected.loc[row.track_id].to_numpy())
        np.testing.assert_array_equal(np.array(row.features, dtype=np.float32), flat)
    blank = rows[1]
    assert np.isnan(blank[flat_names()[0]]) and np.isnan(blank[flat_names()[517]])

    # Imported again: the newer run replaces the rows, one per track id.
    assert job.main(["--csv", str(csv), "--output", str(output)], spark=spark) == 0
    assert read_features(spark, str(output)).count() == 3


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("7,1.0,2.0", "1 malformed data row(s), e.g. 3 fields (expected 519)"),
        ("x7" + ",1.0" * 518, "a track_id that is not an integer"),
        ("7" + ",1.0" * 517 + ",abc", "a value that is not a number"),
        ("2" + ",1.0" * 518, "track_id 2 appears 2 times"),
    ],
)
def test_import_rejects_malformed_rows(spark, tmp_path, capsys, row, message):
    csv = _hand_written(tmp_path / "f.csv", [_data_row(2, np.random.default_rng(0)), row])
    output = tmp_path / "out"
    job = _job("import_fma_features")
    assert job.main(["--csv", str(csv), "--output", str(output)], spark=spark) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error
    assert not output.exists()


def test_import_rejects_a_file_not_in_fma_layout(spark, tmp_path, capsys):
    csv = tmp_path / "flat.csv"
    csv.write_text("track_id,mfcc_mean_01\n2,1.0\n")
    job = _job("import_fma_features")
    assert job.main(["--csv", str(csv), "--output", str(tmp_path / "o")], spark=spark) == 2
    assert "2 line(s); FMA's features.csv starts with 4 header lines" in capsys.readouterr().err


@pytest.mark.slow
def test_export_reads_back_with_fmas_loader_and_imports_equal(
    spark, sample_corpus, tmp_path, capsys
):
    corpus = tmp_path / "corpus"
    for source, target in [
        (sample_corpus.tracks[0].path, "000/000100.mp3"),
        (sample_corpus.tracks[1].path, "000/000007.mp3"),
        (sample_corpus.bad_files["short"], "000/000050.mp3"),  # NaN statistics
        (sample_corpus.tracks[2].path, "copy/000100.mp3"),  # the same id twice
        (sample_corpus.tracks[3].path, "extra/intro.mp3"),  # no track id
        (sample_corpus.bad_files["not_audio"], "000/000060.mp3"),
    ]:
        (corpus / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, corpus / target)
    table = str(tmp_path / "features")
    run_extraction(spark, inputs=[str(corpus)], output=table, config=ExtractConfig())

    csv = tmp_path / "export" / "features.csv"
    job = _job("export_fma_csv")
    assert job.main(["--input", table, "--csv", str(csv)], spark=spark) == 0
    printed = capsys.readouterr().out
    assert f"wrote 3 tracks to {csv}; left out 1 error rows, 1 rows without a track id" in printed
    assert "1 duplicate track ids" in printed

    lines = csv.read_text().splitlines()
    assert lines[0].startswith("feature,chroma_cens,chroma_cens,")
    assert lines[1].startswith("statistics,kurtosis,kurtosis,")
    assert lines[2].startswith("number,01,02,") and lines[3] == "track_id" + "," * 518
    assert re.fullmatch(r"-?\d\.\d{10}e[+-]\d\d", lines[4].split(",")[1])

    loaded = _fma_loader(csv)
    assert loaded.index.name == "track_id" and list(loaded.index) == [7, 50, 100]
    assert list(loaded.columns) == list(feature_index())
    assert loaded.columns.names == ["feature", "statistics", "number"]
    rows = (
        read_features(spark, table)
        .where("status = 'ok' AND track_id IS NOT NULL")
        .orderBy("track_id", "path")
        .dropDuplicates(["track_id"])
        .toPandas()
        .set_index("track_id")
        .sort_index()
    )
    ours = rows[list(flat_names())].to_numpy(dtype=np.float32)
    assert np.isnan(ours).any()
    np.testing.assert_array_equal(loaded.to_numpy().astype(np.float32), ours)
    assert rows.loc[100, "path"].endswith("/000/000100.mp3")

    again = tmp_path / "reimported"
    assert (
        _job("import_fma_features").main(["--csv", str(csv), "--output", str(again)], spark=spark)
        == 0
    )
    back = read_features(spark, str(again)).toPandas().set_index("track_id").sort_index()
    np.testing.assert_array_equal(back[list(flat_names())].to_numpy(dtype=np.float32), ours)

    assert job.main(["--input", table, "--csv", str(csv)], spark=spark) == 2
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    assert job.main(["--input", table, "--csv", str(csv), "--overwrite"], spark=spark) == 0
