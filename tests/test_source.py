"""Reading a relation ordered by partition columns, in bounded memory."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export.errors import TooManyPartitions
from dbt_s3_export.source import batches as source
from dbt_s3_export.source.batches import DuckDBSource, _name_parts


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute(
        "CREATE TABLE t AS SELECT range AS id, CASE WHEN range % 7 = 0 THEN NULL "
        "ELSE 'k' || (range % 13) END AS k, range % 3 AS j FROM range(20000)"
    )
    con.execute("CREATE VIEW v AS SELECT * FROM t")
    return con


def _runs(reader: pa.RecordBatchReader, cols: list[str]) -> tuple[list[tuple[object, ...]], int]:
    """The sequence of partition keys as they change along the stream, and the row count."""
    keys: list[tuple[object, ...]] = []
    rows = 0
    for batch in reader:
        rows += batch.num_rows
        columns = [batch.column(c) for c in cols]
        columns = [a.cast(pa.int64()) if pa.types.is_timestamp(a.type) else a for a in columns]
        for row in zip(*(a.to_pylist() for a in columns), strict=True):
            if not keys or repr(keys[-1]) != repr(row):  # repr: NaN equals NaN
                keys.append(row)
    return keys, rows


def test_big_table_is_read_in_sorted_groups_each_partition_once(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "SORT_GROUP_BYTES", 100_000)
    monkeypatch.setattr(source, "MAX_GROUPED_PARTITIONS", 40)
    monkeypatch.setattr(source, "MEMORY_BUDGET", 0)  # else the small table is not counted
    src = DuckDBSource(con, '"memory"."main"."t"')
    plan = src.read_plan(["k", "j"])
    assert plan.kind == "sorted" and plan.groups > 1  # 42 partitions: over the limit
    keys, rows = _runs(src.open(["k", "j"], 1024), ["k", "j"])
    assert rows == 20000
    # Every partition arrives as one run (NULL keys included), and all are there.
    assert len(keys) == len(set(keys))
    expected = con.sql("SELECT DISTINCT k, j FROM t").fetchall()
    assert set(keys) == set(expected)
    got = pa.Table.from_batches(list(src.open(["k", "j"], 1024)))
    assert sorted(got.column("id").to_pylist()) == list(range(20000))


def test_views_and_unordered_reads_use_one_query(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "SORT_GROUP_BYTES", 100_000)
    # A view would run its query once per scan, so it is sorted in one go.
    assert DuckDBSource(con, "v").read_plan(["k"]).kind == "query"
    assert DuckDBSource(con, "t").read_plan([]).kind == "query"
    keys, rows = _runs(DuckDBSource(con, "v").open(["k"], 1024), ["k"])
    assert rows == 20000 and len(keys) == len(set(keys)) == 14


def test_relation_names_are_split_into_parts() -> None:
    assert _name_parts('"db"."main"."a.b"') == ["db", "main", "a.b"]
    assert _name_parts('main."we""ird"') == ["main", 'we"ird']
    assert _name_parts("t") == ["t"]
    assert _name_parts('"a"x') is None
    assert _name_parts("a.b.c.d") is None


def test_rows_of_a_partition_keep_table_order(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "MEMORY_BUDGET", 0)  # else the small table is not counted
    for budget, limit in ((10**9, 0), (100_000, 0), (10**9, 256)):
        # one sorted query, then several sorted groups, then one regrouped scan
        monkeypatch.setattr(source, "SORT_GROUP_BYTES", budget)
        monkeypatch.setattr(source, "MAX_GROUPED_PARTITIONS", limit)
        got = pa.Table.from_batches(list(DuckDBSource(con, "t").open(["j"], 1024)))
        for j in range(3):
            ids = [
                i
                for i, k in zip(got["id"].to_pylist(), got["j"].to_pylist(), strict=True)
                if k == j
            ]
            assert ids == sorted(ids) and len(ids) > 6000


def test_a_table_with_few_partitions_is_read_once_and_regrouped_whatever_their_type() -> None:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'Europe/Paris'")
    con.execute("CREATE TYPE mood AS ENUM ('sad', 'happy')")
    # Keys whose text must round-trip exactly: NaN, -0.0, decimals, instants in a
    # zone, nanoseconds, enums, quotes, NULLs; three keys per column.
    con.execute(
        """CREATE TABLE odd AS SELECT range AS id,
        [1.5, 'nan'::DOUBLE, -0.0][range % 3 + 1] AS f,
        [12.345, -0.001, NULL][range % 3 + 1]::DECIMAL(18, 3) AS d,
        [TIMESTAMPTZ '2024-03-31 02:30:00+02', TIMESTAMPTZ '1999-12-31 23:59:59.999999+00',
         NULL][range % 3 + 1] AS tz,
        [TIMESTAMP_NS '2024-01-01 00:00:00.123456789', NULL,
         TIMESTAMP_NS '1970-01-01'][range % 3 + 1] AS ns,
        ['happy', 'sad', NULL][range % 3 + 1]::mood AS m,
        ['it''s', '', NULL][range % 3 + 1] AS s
        FROM range(3000)"""
    )
    for col in ("f", "d", "tz", "ns", "m", "s"):
        src = DuckDBSource(con, "odd")
        assert src.read_plan([col]).kind == "grouped"
        keys, rows = _runs(src.open([col], 256), [col])
        got = pa.Table.from_batches(list(src.open([col], 256)))
        assert rows == 3000 and len(keys) == 3, col
        ids = got.column("id").to_pylist()
        assert sorted(ids) == list(range(3000)), col
        # Within a partition, rows keep table order.
        assert ids[:1000] == sorted(ids[:1000]), col


def test_an_empty_selection_gives_the_schema_and_no_rows(con: duckdb.DuckDBPyConnection) -> None:
    reader = DuckDBSource(con, "t", where="id < 0").open(["j"], 1024)
    assert reader.schema.names == ["id", "k", "j"]
    assert sum(b.num_rows for b in reader) == 0


def test_a_table_that_fits_the_grouping_memory_is_not_counted(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its partitions cannot outnumber its rows, and none of them goes to a file."""
    counted: list[str] = []
    count = DuckDBSource._partition_count

    def counting(self: DuckDBSource, order_by: list[str]) -> int:
        counted.append(self.relation)
        return count(self, order_by)

    monkeypatch.setattr(DuckDBSource, "_partition_count", counting)
    # 20,000 rows in 20,000 partitions: more than MAX_GROUPED_PARTITIONS, all in memory.
    keys, rows = _runs(DuckDBSource(con, "t").open(["id"], 1024), ["id"])
    assert rows == 20000 and len(keys) == len(set(keys)) == 20000
    assert counted == []
    # More rows than max_partitions: counted, and refused before any row is read.
    with pytest.raises(TooManyPartitions, match="has 14 partitions by k"):
        DuckDBSource(con, "t", max_partitions=12).open(["k"], 1024)
    assert counted == ["t"]
    # Past the grouping's memory: counted.
    monkeypatch.setattr(source, "MEMORY_BUDGET", 100_000)
    _runs(DuckDBSource(con, "t").open(["j"], 1024), ["j"])
    assert counted == ["t", "t"]
