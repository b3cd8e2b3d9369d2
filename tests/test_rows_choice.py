"""Which rows an export reads (source/rows.py), on DuckDB alone: no S3, no dbt.

The temporary table dbt-duckdb stages a batch in is made here by hand, named as
dbt-duckdb names it; the dbt runs are in test_incremental_defaults.py.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from dbt_s3_export.source.rows import Rows, choose_rows, export_source


@pytest.mark.parametrize(
    ("rows", "mode", "incremental", "expected"),
    [
        ("auto", "append", True, Rows("batch", defaulted=True)),
        ("auto", "overwrite_partitions", True, Rows("partitions", defaulted=True)),
        ("auto", "replace", True, Rows("all")),
        ("auto", "append", False, Rows("all")),
        ("auto", "overwrite_partitions", False, Rows("all")),
        ("batch", "append", True, Rows("batch")),
        ("batch", "overwrite_partitions", True, Rows("partitions")),
        ("batch", "replace", True, Rows("batch")),
        ("all", "append", True, Rows("all")),
        ("all", "overwrite_partitions", True, Rows("all")),
    ],
)
def test_the_default_follows_the_model(
    rows: Any, mode: str, incremental: bool, expected: Rows
) -> None:
    assert choose_rows(rows, mode, incremental, partitioned=True) == expected


def _read(con: duckdb.DuckDBPyConnection, **options: Any) -> tuple[list[tuple[Any, ...]], str]:
    source = export_source(con, '"events"', "events", None, incremental=True, **options)
    reader = source.open(["p"] if options.get("partition_cols") else [], 1024)
    table = reader.read_all()
    found = sorted(zip(*(c.to_pylist() for c in table.columns), strict=True), key=str)
    return found, source.note


def test_touched_partitions_are_read_whole_null_nan_and_zones_included() -> None:
    con = duckdb.connect()
    # The model's typed columns; the batch's differ (DOUBLE vs FLOAT, text vs zone).
    con.execute("create table events (id integer, p double, t timestamptz)")
    con.execute("set timezone = 'UTC'")
    con.execute(
        "insert into events values (1, 'nan', '2024-01-01 00:00:00+00'), (2, null, null), "
        "(3, 1.5, '2024-01-02 00:00:00+00'), (4, 2.5, null), (5, 'nan', null), (6, null, null)"
    )
    con.execute(
        "create temp table events__dbt_tmp20240101 as select * from (values "
        "(5, 'nan'::float), (6, null::float)) v(id, p)"
    )
    found, note = _read(con, rows="auto", mode="overwrite_partitions", partition_cols=["p"])
    # The NaN partition and the NULL partition, each with its earlier rows too.
    assert [row[0] for row in found] == [1, 2, 5, 6]
    assert note.startswith("the model is incremental, so its overwrite_partitions export")
    assert note.endswith("Set rows: all to export the whole model every run")

    # The same by timestamps with zones: one instant written in two zones is one partition.
    con.execute("drop table events__dbt_tmp20240101")
    con.execute(
        "create temp table events__dbt_tmp20240102 as "
        "select 7 as id, timestamptz '2024-01-02 01:00:00+01' as t"
    )
    source = export_source(
        con,
        '"events"',
        "events",
        None,
        "batch",
        mode="overwrite_partitions",
        partition_cols=["t"],
        incremental=True,
    )
    ids = source.open(["t"], 1024).read_all().column("id").to_pylist()
    assert ids == [3]
    assert source.note.startswith("overwrite_partitions with rows: batch rewrites only")

    # rows: all reads the model; append reads the batch; nothing staged reads the model.
    found, note = _read(con, rows="all", mode="overwrite_partitions", partition_cols=["p"])
    assert len(found) == 6 and note == ""
    found, note = _read(con, rows="auto", mode="append")
    assert [row[0] for row in found] == [7] and "append export exports this run's" in note
    con.execute("drop table events__dbt_tmp20240102")
    found, note = _read(con, rows="auto", mode="append")
    assert len(found) == 6 and note == ""
