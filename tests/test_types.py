"""The type contract (docs/types.md), value by value, in every format and with every reader.

One model holds a column of every DuckDB type, with NULLs and extremes. It is
exported through the engine (``DuckDBSource``, as the plugin reads models) in
each format, flat and partitioned, to the S3 server; DuckDB, pyarrow and polars
read the files back, and every value, turned back into the model's type by the
contract's rules, must equal the model's. A real ``dbt run`` of the same model
is in test_types_dbt.py; Spark reads the partitioned files in test_readers_spark.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.json as pajson
import pyarrow.parquet as pq
import pytest

from dbt_s3_export import DuckDBSource, ExportConfig, run_export
from dbt_s3_export.errors import ExportFailed


from .support import S3Server, list_keys, read_object, s3_client
from .type_matrix import COLUMNS, canonical, decoded, json_reading_type, model_sql

FORMATS = ("parquet", "csv", "json", "jsonl")
# JSON numbers past 64 bits: pyarrow's and polars' JSON readers fail or round them.
BIG_JSON_NUMBERS = {"i128", "u128", "u64", "bn", "js", "nest"}


@pytest.fixture(scope="module")
def model() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")  # not UTC: zoned values must not care
    con.execute(model_sql())
    return con


@pytest.fixture(scope="module")
def exported(
    model: duckdb.DuckDBPyConnection,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, bool], Path]:
    """Every format, flat and partitioned by ``part``, downloaded to local folders."""
    client = s3_client(s3_server.endpoint)
    bucket = "type-matrix"
    client.create_bucket(Bucket=bucket)
    root = tmp_path_factory.mktemp("types")
    out = {}
    for fmt in FORMATS:
        for partitioned in (False, True):
            key = f"{fmt}/{'parts' if partitioned else 'flat'}/"
            options: dict[str, Any] = {"bucket": bucket, "key": key, "file_format": fmt}
            if partitioned:
                options["partition_cols"] = ["part"]
            cfg = ExportConfig.parse(options)
            run_export(cfg, DuckDBSource(model, "model", file_format=fmt), client, model="m")
            folder = root / fmt / ("parts" if partitioned else "flat")
            for obj in list_keys(client, bucket, key):
                if not obj.endswith("_manifest.json"):
                    path = folder / obj[len(key) :]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(read_object(client, bucket, obj))
            out[fmt, partitioned] = folder
    return out


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def kind_of(kinds: dict[str, str] | str, name: str) -> str:
    return kinds if isinstance(kinds, str) else kinds[name]


def _compare(
    model: duckdb.DuckDBPyConnection,
    got: pa.Table,
    fmt: str,
    kinds: dict[str, str] | str,
    skip: frozenset[str] = frozenset(),
) -> None:
    """Every value of ``got`` (a reader's Arrow table) decodes to the model's value.

    ``kinds`` says, per column or for all, what the reader gave (see decoded()).
    """
    con = model.cursor()
    con.register("got", got)
    assert con.sql("SELECT count(*) FROM got").fetchall() == [(4,)]
    for name, typ, _ in COLUMNS:
        if name in skip:
            continue
        quoted = f'"{name}"'
        got_sql = (
            f"SELECT {canonical(decoded(name, typ, kind_of(kinds, name)), typ)} FROM got "
            "ORDER BY CAST(id AS INTEGER)"
        )
        want_sql = f"SELECT {canonical(quoted, typ)} FROM model ORDER BY id"
        try:
            got_values = con.sql(got_sql).fetchall()
        except duckdb.Error as e:
            raise AssertionError(f"{fmt} {name} ({typ}): cannot decode: {e}") from e
        assert got_values == con.sql(want_sql).fetchall(), f"{fmt} {name} ({typ})"


def _listing(files: list[str]) -> str:
    return "[" + ", ".join(f"'{f}'" for f in files) + "]"


def _json_reading() -> tuple[str, dict[str, str]]:
    """read_json's columns (the model's types where JSON has the value) and their kinds."""
    reading = {"id": "INTEGER", **{n: json_reading_type(t) for n, t, _ in COLUMNS}}
    quoted = {n: t.replace("'", "''") for n, t in reading.items()}
    columns = "{" + ", ".join(f"'{n}': '{t}'" for n, t in quoted.items()) + "}"
    kinds = {n: "json" if t == "JSON" else "text" if t == "VARCHAR" else "typed" for n, t in reading.items()}
    return columns, kinds


@pytest.mark.parametrize("partitioned", [False, True], ids=["flat", "partitioned"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_duckdb_reads_back_every_value(
    model: duckdb.DuckDBPyConnection,
    exported: dict[tuple[str, bool], Path],
    fmt: str,
    partitioned: bool,
) -> None:
    files = _files(exported[fmt, partitioned])
    hive = ", hive_partitioning = true, hive_types = {'part': 'VARCHAR'}" if partitioned else ""
    con = model.cursor()
    if fmt == "parquet":
        got = con.sql(f"SELECT * FROM read_parquet({_listing(files)}{hive})").to_arrow_table()
        _compare(model, got, fmt, "typed")
    elif fmt == "csv":
        got = con.sql(
            f"SELECT * FROM read_csv({_listing(files)}, all_varchar = true, header = true, "
            f"allow_quoted_nulls = false{hive})"
        ).to_arrow_table()
        _compare(model, got, fmt, "text")
    else:
        columns, kinds = _json_reading()
        layout = "array" if fmt == "json" else "newline_delimited"
        got = con.sql(
            f"SELECT * FROM read_json({_listing(files)}, format = '{layout}', "
            f"columns = {columns}{hive})"
        ).to_arrow_table()
        _compare(model, got, fmt, kinds)
    if partitioned:
        parts = con.sql("SELECT id, part FROM got ORDER BY id") if False else None
        assert parts is None
