"""The type matrix through Iceberg and Delta tables, with real ``dbt run``s.

Every type of the contract (tests/type_matrix.py, plus ``IN_RANGE``) is a column of one
wide model per format; pyiceberg or deltalake, and polars, read each value back, and it
must equal the model's. Each type a format refuses is a model of its own, which must
fail naming the model, the column, its type and the fix, with no table made.

Then every type that can be a partition column is one, in ``replace`` and in
``overwrite_partitions``: two runs, the second writing again to every other partition,
read back exactly. The suite partitions one table per format and mode by all those
columns at once (each row its own partition); ``scripts/table-type-matrix``
(``DBT_S3_EXPORT_TABLE_MATRIX=full``) gives each type a table of its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pytest

from .support import DbtProject, S3Server
from .table_matrix import (
    FIXES,
    FORMATS,
    PARTITION_REFUSED,
    PARTITION_REFUSED_VALUES,
    PARTITIONS,
    REFUSED,
    column_type,
    columns_sql,
    kept,
    partition_columns,
    partition_rows,
    partition_sql,
)
from .test_tables import Reader, delta_options, meta, model, storage, tables_project
from .type_matrix import canonical, decoded

pytestmark = pytest.mark.dbt

__all__ = ["tables_project"]  # the fixture, used by name below

FULL = os.environ.get("DBT_S3_EXPORT_TABLE_MATRIX") == "full"
# The refusals the suite runs (one of each kind and format); the full matrix runs all.
SAMPLED = {
    ("iceberg", "ts"),
    ("delta", "nest"),
    ("delta", "tstz_ns"),
    ("iceberg", "tns"),
    ("delta", "t"),
    ("iceberg", "f64"),
    ("delta", "bl"),
    ("iceberg", "lst"),
    ("delta", "s"),
}


def refused() -> dict[tuple[str, str], str]:
    return {k: v for k, v in REFUSED.items() if FULL or k in SAMPLED}


def refused_partitions() -> dict[tuple[str, str], tuple[str, str]]:
    return {k: v for k, v in PARTITION_REFUSED.items() if FULL or k in SAMPLED}


MODES = ("replace", "overwrite_partitions")
# polars reads TIME 24:00:00 as null (docs/types.md, readers' own limits).
POLARS_LIMITS = ("t",)


def polars_arrow(reader: Reader, fmt: str, name: str) -> pa.Table:
    """The table as polars reads it: ``scan_iceberg`` on pyiceberg's table, ``read_delta``."""
    if fmt == "iceberg":
        frame = pl.scan_iceberg(reader.iceberg(name), storage_options=storage(reader.endpoint))
        return frame.collect().to_arrow()
    uri = f"s3://{reader.bucket}/lake/{name}"
    return pl.read_delta(uri, storage_options=delta_options(reader.endpoint)).to_arrow()


def delta_version(reader: Reader, name: str) -> int | None:
    from deltalake.exceptions import TableNotFoundError

    try:
        return int(reader.delta(name).version())
    except TableNotFoundError:
        return None


def assert_values(
    got: pa.Table, model_sql: str, columns: list[str], types: dict[str, str], what: str
) -> None:
    """Every value of ``got`` decodes (docs/types.md, Parquet's rules) to the model's."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")  # not UTC: zoned values must not care
    con.execute(f"CREATE TABLE model AS {model_sql}")
    con.register("got", got)
    assert (
        con.sql("SELECT count(*) FROM got").fetchall()
        == con.sql("SELECT count(*) FROM model").fetchall()
    ), what
    for name in columns:
        typ = types[name]
        got_sql = f"SELECT {canonical(decoded(name, typ, 'typed'), typ)} FROM got ORDER BY id"
        want_sql = f"SELECT {canonical(chr(34) + name + chr(34), typ)} FROM model ORDER BY id"
        try:
            got_values = con.sql(got_sql).fetchall()
        except duckdb.Error as e:
            raise AssertionError(f"{what} {name} ({typ}): cannot decode: {e}") from e
        assert got_values == con.sql(want_sql).fetchall(), f"{what} {name} ({typ})"


def models_of_columns(project: DbtProject, bucket: str) -> dict[str, tuple[str, list[str]]]:
    """The wide model of each format and a model per refused column: name -> (sql, columns)."""
    made: dict[str, tuple[str, list[str]]] = {}
    for fmt in FORMATS:
        names = kept(fmt)
        made[f"{fmt}_types"] = (columns_sql(names), names)
    for fmt, column in refused():
        made[f"{fmt}_refused_{column}"] = (columns_sql([column]), [column])
    for name, (sql, _) in made.items():
        model(project, name, meta(name.split("_")[0], bucket, name), sql)
    for (fmt, column), (typ, _) in refused_partitions().items():
        name = f"{fmt}_refpart_{column}"
        value = PARTITION_REFUSED_VALUES[column]
        sql = f'SELECT 1 AS id, CAST({value} AS {typ}) AS "{column}"'
        model(project, name, meta(fmt, bucket, name, partition_cols=[column]), sql)
    return made


def models_of_partitions(project: DbtProject, bucket: str, run: int) -> dict[str, list[str]]:
    """Partitioned models: name -> partition columns (one per table in the full matrix)."""
    made: dict[str, list[str]] = {}
    for fmt in FORMATS:
        groups = [[c] for c in partition_columns(fmt)] if FULL else [partition_columns(fmt)]
        for mode in MODES:
            for columns in groups:
                suffix = columns[0] if FULL else "all"
                name = f"{fmt}_{'over' if mode != 'replace' else 'repl'}_{suffix}"
                entry = meta(fmt, bucket, name, mode=mode, partition_cols=columns)
                model(project, name, entry, partition_sql(fmt, columns, run))
                made[name] = columns
    return made


def expected_partition_rows(fmt: str, mode: str, columns: list[str]) -> str:
    """The SQL of the rows the table holds after both runs."""
    second = partition_sql(fmt, columns, 2)
    if mode == "replace":
        return second
    rewritten = {row_id - 100 for row_id, _ in partition_rows(fmt, columns, 2)}
    kept_ids = ", ".join(str(i) for i in rewritten)
    first = partition_sql(fmt, columns, 1)
    return f"SELECT * FROM ({first}) WHERE id NOT IN ({kept_ids}) UNION ALL {second}"


def test_every_type_through_iceberg_and_delta(
    tables_project: DbtProject, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    project = tables_project
    project.threads = 4
    project.write_profile()
    reader = Reader(s3_server.endpoint, bucket, f"sqlite:///{tmp_path / 'catalog.db'}")
    columns = models_of_columns(project, bucket)
    partitioned = models_of_partitions(project, bucket, 1)
    first = project.dbt("run", check=False)
    output = first.output
    # Each refused column: its model failed naming the column, its type and the fix.
    for (fmt, column), words in refused().items():
        name = f"{fmt}_refused_{column}"
        assert f"model '{name}'" in output, name
        assert f"column '{column}' (" in output and words in output, (name, words)
        assert FIXES[words.split()[0]] in output, name
        if fmt == "iceberg":
            assert not reader.catalog.table_exists(("analytics", name)), name
        else:  # not made, or made empty (version 0, with its owner) and no rows committed
            assert delta_version(reader, name) in (None, 0), name
    for (fmt, column), (typ, words) in refused_partitions().items():
        name = f"{fmt}_refpart_{column}"
        line = next(x for x in output.splitlines() if f"model '{name}'" in x)
        assert f"column '{column}' ({typ}) " in line and words in line, line
        assert "Partition by a " in line or "Cast it in the model" in line, line
    failed = {line for line in output.splitlines() if "ERROR creating" in line}
    errors = [line for line in output.splitlines() if "s3_export failed" in line]
    unexpected = "\n".join(e for e in errors if "refused" not in e and "refpart" not in e)
    assert len(failed) == len(refused()) + len(refused_partitions()), unexpected
    types = {name: column_type(name) for fmt in FORMATS for name in kept(fmt)}
    for fmt in FORMATS:
        sql, names = columns[f"{fmt}_types"]
        table = reader.arrow(fmt, f"{fmt}_types")
        assert_values(
            table, sql, names, types, f"{fmt} ({'pyiceberg' if fmt == 'iceberg' else 'deltalake'})"
        )
        polars_names = [n for n in names if n not in POLARS_LIMITS]
        got = polars_arrow(reader, fmt, f"{fmt}_types")
        assert_values(got, sql, polars_names, types, f"{fmt} (polars)")
    # The second run writes again to every other partition.
    models_of_partitions(project, bucket, 2)
    project.dbt("run", "--select", *partitioned)
    types = {c: PARTITIONS[c][0] for c in PARTITIONS}
    for name, cols in partitioned.items():
        fmt = name.split("_")[0]
        mode = "replace" if "_repl_" in name else "overwrite_partitions"
        want = expected_partition_rows(fmt, mode, cols)
        for read in (reader.arrow, lambda f, n: polars_arrow(reader, f, n)):
            got: Any = read(fmt, name)
            assert_values(
                got,
                want,
                ["id", "run", *cols],
                {"id": "INTEGER", "run": "INTEGER", **types},
                name,
            )
