"""Hive-style partition paths, and cutting a sorted batch stream into partitions.

A partition path is ``col=value/`` per partition column. Values are rendered as
text and percent-encoded the way DuckDB's and pyarrow's Hive readers decode them,
so that every value, including ``/``, ``=``, ``%``, non-ASCII text and the empty
string, reads back as itself. NULL becomes ``__HIVE_DEFAULT_PARTITION__``; a
string that happens to spell that sentinel is encoded so it does not read back
as NULL.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc

NULL_SEGMENT = "__HIVE_DEFAULT_PARTITION__"
# Characters left as they are; everything else is percent-encoded (RFC 3986 unreserved).
_SAFE = "-._~"


def render_value(value: Any) -> str:
    """Render one partition value as the text a Hive reader parses back."""
    if value is None:
        return NULL_SEGMENT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def encode_segment(text: str) -> str:
    """Percent-encode one path segment so that no reader splits or misreads it."""
    if text == NULL_SEGMENT:
        # Keep the literal string distinct from the NULL sentinel after decoding.
        return "%5F%5FHIVE_DEFAULT_PARTITION%5F%5F"
    return quote(text, safe=_SAFE)


def partition_path(columns: Sequence[str], values: Sequence[Any]) -> str:
    """``col=value/...`` for one partition, ending with ``/``."""
    parts = []
    for col, value in zip(columns, values, strict=True):
        segment = NULL_SEGMENT if value is None else encode_segment(render_value(value))
        parts.append(f"{encode_segment(col)}={segment}/")
    return "".join(parts)


@dataclass(frozen=True)
class PartitionSlice:
    """A run of rows of one batch that all belong to the partition at ``path``."""

    path: str
    batch: pa.RecordBatch


def _boundaries(batch: pa.RecordBatch, columns: Sequence[str]) -> list[int]:
    """Row offsets where any partition column changes value (sorted input assumed)."""
    n = batch.num_rows
    if n <= 1:
        return []
    changed = None
    for col in columns:
        arr = batch.column(col)
        head, tail = arr.slice(0, n - 1), arr.slice(1)
        diff = pc.fill_null(pc.not_equal(head, tail), False)
        null_diff = pc.not_equal(pc.is_null(head), pc.is_null(tail))
        col_changed = pc.or_(diff, null_diff)
        changed = col_changed if changed is None else pc.or_(changed, col_changed)
    assert changed is not None
    return [int(i) + 1 for i in pc.indices_nonzero(changed).to_pylist()]


def split_by_partition(
    batches: Iterator[pa.RecordBatch], columns: Sequence[str], keep_columns: bool
) -> Iterator[PartitionSlice]:
    """Cut a stream sorted by ``columns`` into per-partition slices.

    Rows of one partition must arrive together (the source orders by the
    partition columns), so only one partition is open at any time.
    """
    for batch in batches:
        if batch.num_rows == 0:
            continue
        starts = [0, *_boundaries(batch, columns)]
        ends = [*starts[1:], batch.num_rows]
        data = batch if keep_columns else batch.drop_columns(list(columns))
        for start, end in zip(starts, ends, strict=True):
            values = [batch.column(c)[start].as_py() for c in columns]
            yield PartitionSlice(partition_path(columns, values), data.slice(start, end - start))
