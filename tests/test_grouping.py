"""Regrouping a batch stream by key in one pass, spilling to temporary files past a budget."""

from __future__ import annotations

import math
import os

import pyarrow as pa

from dbt_s3_export.encoding.partitioning import key_boundaries
from dbt_s3_export.source.grouping import GroupedBatches


def _reader(table: pa.Table, rows_per_batch: int) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(rows_per_batch))


def _table(n: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "k": pa.array([None if i % 11 == 0 else f"k{i % 7}" for i in range(n)]),
            "j": pa.array([i % 3 for i in range(n)], pa.int64()),
            "f": pa.array([math.nan if i % 5 == 0 else 1.5 for i in range(n)]),
        }
    )


def _runs(batches: list[pa.RecordBatch], keys: list[str]) -> list[tuple[object, ...]]:
    """The sequence of keys along the stream (repr, so that NaN equals NaN)."""
    runs: list[tuple[object, ...]] = []
    for batch in batches:
        for row in zip(*(batch.column(k).to_pylist() for k in keys), strict=True):
            if not runs or repr(runs[-1]) != repr(row):
                runs.append(row)
    return runs


def test_rows_of_a_key_come_together_in_read_order_with_and_without_spilling() -> None:
    table = _table(20_000)
    for budget in (10**9, 20_000):  # all in memory; then most rows through spill files
        grouped = GroupedBatches(_reader(table, 333), ["k", "j"], 200, memory_budget=budget)
        out = list(grouped)
        runs = _runs(out, ["k", "j"])
        # 7 values and NULL for k, 3 for j: every key once, NULLs last.
        assert len(runs) == len({repr(r) for r in runs}) == 24
        assert [r[0] for r in runs[-3:]] == [None] * 3
        got = pa.Table.from_batches(out)
        assert sorted(got.column("id").to_pylist()) == list(range(20_000))
        ids = got.column("id").to_pylist()
        start = 0
        for batch_keys in runs:  # within a key, read order
            n = sum(1 for i in ids if (f"k{i % 7}" if i % 11 else None, i % 3) == batch_keys)
            assert ids[start : start + n] == sorted(ids[start : start + n])
            start += n
        if budget < 10**9:
            assert grouped.spilled_bytes > 0 and grouped.spill_dir is not None
            assert not os.path.exists(grouped.spill_dir)
            # Spilled rows come back as batches of about the requested size (200), not
            # as slivers: each key's ~850 rows in at most 5 spilled batches plus 1 held.
            assert len(out) <= 24 * 6
        else:
            assert grouped.spilled_bytes == 0 and grouped.spill_dir is None


def test_nan_keys_make_one_group_cut_in_one_piece_per_batch() -> None:
    out = list(GroupedBatches(_reader(_table(1_000), 64), ["f"], 1_000))
    assert len(_runs(out, ["f"])) == 2
    assert key_boundaries(pa.record_batch({"f": [math.nan, math.nan, 1.0, 1.0]}), ["f"]) == [2]


def test_stopping_early_removes_the_spill_files() -> None:
    grouped = GroupedBatches(_reader(_table(20_000), 333), ["k"], 500, memory_budget=20_000)
    stream = iter(grouped)
    next(stream)
    assert grouped.spill_dir is not None and os.path.isdir(grouped.spill_dir)
    stream.close()  # what a failed export does
    assert not os.path.exists(grouped.spill_dir)


def test_an_empty_stream_gives_no_batches() -> None:
    empty = _table(0)
    assert list(GroupedBatches(_reader(empty, 10), ["k"], 10)) == []
