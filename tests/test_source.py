"""Reading a relation ordered by partition columns, in bounded memory."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export import source
from dbt_s3_export.source import DuckDBSource, _name_parts


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
        for row in zip(*(batch.column(c).to_pylist() for c in cols), strict=True):
            if not keys or keys[-1] != row:
                keys.append(row)
    return keys, rows


def test_big_table_is_read_in_sorted_groups_each_partition_once(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source, "SORT_GROUP_BYTES", 100_000)
    src = DuckDBSource(con, '"memory"."main"."t"')
    assert src.sort_groups(["k", "j"]) > 1
    keys, rows = _runs(src.open(["k", "j"], 1024), ["k", "j"])
    assert rows == 20000
    # Every partition arrives as one run (NULL keys included), and all are there.
    assert len(keys) == len(set(keys))
    expected = con.sql("SELECT DISTINCT k, j FROM t").fetchall()
    assert set(keys) == set(expected)
    got = pa.Table.from_batches(list(src.open(["k", "j"], 1024)))
    assert sorted(got.column("id").to_pylist()) == list(range(20000))


def test_small_tables_views_and_unordered_reads_use_one_query(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DuckDBSource(con, "t").sort_groups(["k"]) == 1
    monkeypatch.setattr(source, "SORT_GROUP_BYTES", 100_000)
    # A view would run its query once per group, so it is sorted in one go.
    assert DuckDBSource(con, "v").sort_groups(["k"]) == 1
    assert DuckDBSource(con, "t").sort_groups([]) == 1
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
    for budget in (10**9, 100_000):  # one sorted query, then several groups
        monkeypatch.setattr(source, "SORT_GROUP_BYTES", budget)
        got = pa.Table.from_batches(list(DuckDBSource(con, "t").open(["j"], 1024)))
        for j in range(3):
            ids = [
                i
                for i, k in zip(got["id"].to_pylist(), got["j"].to_pylist(), strict=True)
                if k == j
            ]
            assert ids == sorted(ids) and len(ids) > 6000
