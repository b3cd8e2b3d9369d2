"""What a table holds, checked without a server: the types the writers give each format,
the years they refuse, and the pyiceberg behaviour that makes DOUBLE partitions refused."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export.errors import ColumnError
from dbt_s3_export.tables.common import check_table_partition_types, table_types
from dbt_s3_export.tables.delta_types import same_delta_type
from dbt_s3_export.tables.years import years_checked


def duckdb_schema(sql: str) -> pa.Schema:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")
    return con.sql(sql).to_arrow_table().schema


def test_table_types_are_what_both_formats_hold() -> None:
    schema = duckdb_schema(
        "SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' AS z, [1, 2]::INTEGER[2] AS a, "
        "'POINT (1 2)'::GEOMETRY AS g, 'a'::ENUM('a') AS e"
    )
    for fmt in ("iceberg", "delta"):
        got = table_types(schema, fmt)
        assert got.field("z").type == pa.timestamp("us", "UTC")  # not the session's zone
        assert pa.types.is_list(got.field("a").type)
        assert got.field("g").type == pa.binary()
        assert not any(k.startswith(b"ARROW:") for k in got.field("g").metadata or {})
        assert got.field("e").type == pa.string()


@pytest.mark.parametrize(
    ("sql", "fmt", "words"),
    [
        ("TIMESTAMP_NS '2024-01-01' AS x", "delta", "has nanosecond timestamps, and Delta"),
        ("TIME_NS '12:00:00' AS x", "iceberg", "has nanosecond times, and Iceberg"),
        ("TIME '12:00:00' AS x", "delta", "is a TIME, which Delta cannot hold"),
    ],
)
def test_types_a_format_cannot_hold_are_refused_by_name(sql: str, fmt: str, words: str) -> None:
    with pytest.raises(ColumnError, match=r"column 'x' .*Cast it in the model") as e:
        table_types(duckdb_schema(f"SELECT {sql}"), fmt)
    assert words in str(e.value)


@pytest.mark.parametrize(
    ("sql", "fmt", "shown"),
    [
        ("'infinity'::DATE", "delta", "infinity"),
        ("{'d': DATE '0044-03-15 (BC)'}", "delta", "0044-03-15 (BC)"),
        ("[TIMESTAMP '10000-01-01']", "iceberg", "10000-01-01 00:00:00"),
        ("MAP {1: TIMESTAMPTZ '-infinity'}", "iceberg", "-infinity"),
    ],
)
def test_years_past_what_a_table_holds_are_refused_at_any_depth(
    sql: str, fmt: str, shown: str
) -> None:
    data = duckdb.sql(f"SELECT {sql} AS x").to_arrow_table()
    schema = table_types(data.schema, fmt)
    batches = data.cast(schema).to_batches()
    with pytest.raises(ColumnError, match=r"column 'x' \(") as e:
        list(years_checked(batches, schema, fmt, "the table"))
    assert f"holds {shown}, and the table holds" in str(e.value)


def test_timestamps_of_any_year_go_into_delta() -> None:
    data = duckdb.sql("SELECT [TIMESTAMP '10000-01-01', 'infinity'] AS x").to_arrow_table()
    assert len(list(years_checked(data.to_batches(), data.schema, "delta", "t"))) == 1


def test_delta_compares_nested_types_as_it_stores_them() -> None:
    ours = pa.struct([("l", pa.list_(pa.field("l", pa.timestamp("us", "UTC"))))])
    delta = pa.struct([("l", pa.list_(pa.field("element", pa.timestamp("us", "Etc/UTC"))))])
    assert same_delta_type(ours, delta)
    assert not same_delta_type(ours, pa.struct([("l", pa.list_(pa.int32()))]))


@pytest.mark.parametrize(
    ("sql", "fmt"),
    [("[1]", "delta"), ("'x'::BLOB", "iceberg"), ("1.5::DOUBLE", "iceberg")],
)
def test_partition_columns_a_table_cannot_hold_exactly(sql: str, fmt: str) -> None:
    schema = table_types(duckdb_schema(f"SELECT {sql} AS k"), fmt)
    with pytest.raises(ColumnError, match=r"column 'k' \(.*\) is a partition column of t, and"):
        check_table_partition_types(schema, ["k"], "t", fmt)
    check_table_partition_types(schema, [], "t", fmt)


def test_pyiceberg_still_rounds_double_partition_values(tmp_path: Path) -> None:
    """Why Iceberg refuses DOUBLE identity partitions: when this fails, pyiceberg keeps
    them exactly, and the refusal (tables/common.py) can go."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.expressions import EqualTo
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema
    from pyiceberg.transforms import IdentityTransform
    from pyiceberg.types import DoubleType, NestedField

    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path / 'c.db'}", warehouse=f"file://{tmp_path}")
    catalog.create_namespace("n")
    schema = Schema(NestedField(1, "d", DoubleType(), required=False))
    spec = PartitionSpec(PartitionField(1, 1000, IdentityTransform(), "d"))
    table = catalog.create_table("n.t", schema, partition_spec=spec)
    table.append(pa.table({"d": pa.array([0.1, -math.inf], pa.float64())}))
    table = catalog.load_table("n.t")
    assert table.scan(row_filter=EqualTo("d", -math.inf)).to_arrow().num_rows == 1
    assert table.scan(row_filter=EqualTo("d", 0.1)).to_arrow().num_rows == 0  # lost
