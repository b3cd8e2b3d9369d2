"""What every source shares: the ``BatchSource`` seam, the size of a batch, and the
simplest source, an Arrow table in memory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow as pa

# Batches hold about BATCH_BYTES of Arrow data whatever the width of a row: a
# batch of batch_size rows of 1 MiB strings would be 128 GiB. The row count is
# set from the average width of the first rows; where DuckDB knows the widest
# value (string statistics of base tables), no batch can pass MAX_BATCH_BYTES
# either, even when the wide rows come together.
BATCH_BYTES = 16 * 1024 * 1024
MAX_BATCH_BYTES = 128 * 1024 * 1024
SAMPLE_ROWS = 1024


class BatchSource(Protocol):
    def schema(self, order_by: Sequence[str] = ()) -> pa.Schema: ...

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader: ...

    def distinct(self, columns: Sequence[str]) -> pa.Table:
        """The distinct values of ``columns`` (as ``open`` yields them), without a full read."""
        ...


def batch_rows(batch_size: int, row_bytes: float | None, widest_row: int | None = None) -> int:
    """Rows per batch: at most batch_size, and about BATCH_BYTES of Arrow data."""
    rows = batch_size
    if row_bytes:
        rows = min(rows, int(BATCH_BYTES // row_bytes))
    if widest_row:
        rows = min(rows, MAX_BATCH_BYTES // widest_row)
    return max(rows, 1)


def fixed_width(typ: pa.DataType) -> int | None:
    try:
        return max(int(typ.bit_width) // 8, 1)
    except ValueError:
        return None


def widest(stats: Any, typ: pa.DataType) -> int | None:
    """An upper bound of one value's Arrow bytes from DuckDB's statistics, if they give one."""
    fixed = fixed_width(typ)
    if fixed is not None:
        return fixed
    if not isinstance(stats, dict):
        return None
    if pa.types.is_struct(typ):
        children = stats.get("child_stats") or {}
        total = 0
        for field in typ:
            width = widest(children.get(field.name), field.type)
            if width is None:
                return None
            total += width
        return total
    length = stats.get("max_string_length")
    return int(length) + 8 if isinstance(length, int) else None


class ArrowSource:
    """An in-memory Arrow table as a source (tests and ad-hoc use)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def schema(self, order_by: Sequence[str] = ()) -> pa.Schema:
        return self._table.schema

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        table = self._table
        if order_by:
            table = table.sort_by([(c, "ascending") for c in order_by])
        rows = batch_rows(batch_size, table.nbytes / table.num_rows if table.num_rows else None)
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(rows))

    def distinct(self, columns: Sequence[str]) -> pa.Table:
        return self._table.select(list(columns)).group_by(list(columns)).aggregate([])
