"""Hive-style partition paths, and cutting a sorted batch stream into partitions.

A partition path is ``col=value/`` per partition column, the layout DuckDB
(``hive_partitioning``), pyarrow (``partitioning="hive"``), Spark, Hive, Trino
and Athena read. Values are rendered as text by Arrow's own casts (ISO dates and
timestamps, ``true``/``false``, shortest round-trip floats, exact decimals), then
escaped so that every reader decodes them back to the same text:

* ASCII characters other than letters, digits and ``-._~`` are percent-encoded
  (``a/b`` -> ``a%2Fb``, ``x=y`` -> ``x%3Dy``, space -> ``%20``). All these
  readers percent-decode partition values.
* Non-ASCII characters stay as they are (UTF-8 in the key). Spark and Hive
  decode ``%XX`` one byte to one character, so percent-encoded UTF-8 would come
  back garbled there; raw UTF-8 reads back unchanged everywhere.
* NULL is ``__HIVE_DEFAULT_PARTITION__``. The empty string would be ``col=``, a
  folder Spark, Hive, Athena and Trino refuse ("Empty partition column value"), so
  it is refused unless the export asks for ``col=`` (``empty_string_partitions:
  keep``: DuckDB, pyarrow and polars read it as the empty string) or for NULL
  (``null``: what Spark itself writes for an empty string).
* A string that spells ``__HIVE_DEFAULT_PARTITION__`` is written with its
  underscores encoded, so readers that compare before decoding (DuckDB, Spark)
  do not take it for NULL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import PartitionError, SourceError, TooManyPartitions
from .text import render_ahead

NULL_SEGMENT = "__HIVE_DEFAULT_PARTITION__"
ESCAPED_NULL_STRING = "%5F%5FHIVE_DEFAULT_PARTITION%5F%5F"
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# A fraction of zeros adds nothing; "12:00:00.000000" reads back the same as "12:00:00".
_ZERO_FRACTION = re.compile(r"\.0+(?=Z?$)")
_FRACTION_ZEROS = re.compile(r"(\.\d*?)0+(?=Z?$)")


def supported_type(typ: pa.DataType) -> bool:
    """Types whose values have a text form every Hive reader parses back exactly."""
    if pa.types.is_dictionary(typ):
        return supported_type(typ.value_type)
    return bool(
        pa.types.is_integer(typ)
        or pa.types.is_floating(typ)
        or pa.types.is_decimal(typ)
        or pa.types.is_boolean(typ)
        or pa.types.is_date(typ)
        or pa.types.is_time(typ)
        or pa.types.is_timestamp(typ)
        or pa.types.is_string(typ)
        or pa.types.is_large_string(typ)
        or pa.types.is_string_view(typ)
    )


def check_partition_columns_exist(schema: pa.Schema, columns: Sequence[str]) -> None:
    """Every partition column must be a column of the model."""
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise SourceError(
            f"partition column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} not in the model; its columns are: "
            f"{', '.join(schema.names)}. Fix 'partition_cols'"
        )


def check_partition_types(schema: pa.Schema, columns: Sequence[str]) -> None:
    """Refuse partition columns whose values have no faithful path form (lists, blobs...)."""
    for col in columns:
        typ = schema.field(col).type
        if not supported_type(typ):
            raise PartitionError(
                f"partition column '{col}' has type {typ}, which cannot be written "
                "into a Hive path and read back. Partition by a column of a scalar type "
                "(text, number, boolean, date, time, timestamp), for example "
                f"CAST(... AS VARCHAR) in the model, or drop '{col}' from 'partition_cols'"
            )


def value_text(array: pa.Array, index: int) -> str | None:
    """The text of one value as readers parse it back; None for NULL."""
    return values_text(array, [index])[0]


def values_text(array: pa.Array, rows: Sequence[int]) -> list[str | None]:
    """The text of the values at ``rows`` as readers parse them back; None for NULL.

    One cast for all of them: a batch's partitions are named together.
    """
    picked = array.take(pa.array(rows, pa.int64()))
    if pa.types.is_dictionary(picked.type):
        picked = picked.dictionary_decode()
    if pa.types.is_timestamp(picked.type) and picked.type.tz is not None:
        # Arrow renders zoned values in their zone ("+0100"); UTC ("Z") every reader parses.
        picked = picked.cast(pa.timestamp(picked.type.unit, tz="UTC"))
    texts: list[str | None] = pc.cast(picked, pa.string()).to_pylist()
    if pa.types.is_timestamp(picked.type) or pa.types.is_time(picked.type):
        texts = [
            None if text is None else _FRACTION_ZEROS.sub(r"\1", _ZERO_FRACTION.sub("", text))
            for text in texts
        ]
    return texts


def encode_segment(text: str) -> str:
    """Escape one name or value so that no reader splits it or decodes it differently."""
    if text == NULL_SEGMENT:
        return ESCAPED_NULL_STRING
    out = []
    for ch in text:
        if ch in _UNRESERVED or (ord(ch) > 0x7F and ch not in "\ufffe\uffff"):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode()))
    return "".join(out)


EmptyStrings = Literal["error", "keep", "null"]


def partition_path(
    columns: Sequence[str], texts: Sequence[str | None], empty: EmptyStrings = "keep"
) -> str:
    """``col=value/...`` for one partition, ending with ``/``."""
    parts = []
    for col, text in zip(columns, texts, strict=True):
        if text == "" and empty != "keep":
            if empty == "error":
                raise PartitionError(
                    f"partition column '{col}' holds the empty string, and Spark, Hive, Athena "
                    f"and Trino cannot read its folder '{col}='. Set empty_string_partitions: "
                    "null to write it as NULL (__HIVE_DEFAULT_PARTITION__, as Spark does), "
                    "keep to write it anyway (DuckDB, pyarrow and polars read it back as the "
                    f"empty string), or write nullif({col}, '') in the model"
                )
            text = None
        segment = NULL_SEGMENT if text is None else encode_segment(text)
        parts.append(f"{encode_segment(col)}={segment}/")
    return "".join(parts)


def longest_segment(path: str) -> tuple[str, int]:
    """The partition column whose ``col=value`` segment is longest, and its size in bytes."""
    segments = [s for s in path.split("/") if s]
    if not segments:
        return "", 0
    longest = max(segments, key=lambda s: len(s.encode()))
    return longest.split("=", 1)[0], len(longest.encode())


@dataclass(frozen=True)
class PartitionSlice:
    """A run of rows of one batch that all belong to the partition at ``path``."""

    path: str
    batch: pa.RecordBatch


def _comparable(arr: pa.Array) -> pa.Array:
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def key_boundaries(batch: pa.RecordBatch, columns: Sequence[str]) -> list[int]:
    """Row offsets where any partition column changes value (sorted input assumed)."""
    n = batch.num_rows
    if n <= 1:
        return []
    changed = None
    for col in columns:
        arr = _comparable(batch.column(col))
        head, tail = arr.slice(0, n - 1), arr.slice(1)
        diff = pc.fill_null(pc.not_equal(head, tail), False)
        if pa.types.is_floating(arr.type):  # NaN is one partition, not one per row
            both_nan = pc.fill_null(pc.and_(pc.is_nan(head), pc.is_nan(tail)), False)
            diff = pc.and_(diff, pc.invert(both_nan))
        null_diff = pc.not_equal(pc.is_null(head), pc.is_null(tail))
        col_changed = pc.or_(diff, null_diff)
        changed = col_changed if changed is None else pc.or_(changed, col_changed)
    if changed is None:
        return []
    return [int(i) + 1 for i in pc.indices_nonzero(changed).to_pylist()]


def split_by_partition(
    batches: Iterator[pa.RecordBatch],
    columns: Sequence[str],
    keep_columns: bool,
    empty: EmptyStrings = "keep",
    render: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None,
) -> Iterator[PartitionSlice]:
    """Cut a stream sorted by ``columns`` into per-partition slices.

    Rows of one partition must arrive together (the source groups them), so
    only one partition is open at any time. ``render`` (a text format's) turns each
    batch's data into what the files hold before it is cut, once per batch rather
    than once per file, on the encoders' pool ahead of the cutting.
    """
    drop = [] if keep_columns else list(columns)

    def keys_and_data(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.RecordBatch]:
        data = batch.drop_columns(drop) if drop else batch
        # Only the partition columns are kept beside the rendered rows (no copy).
        return batch.select(list(columns)), render(data) if render is not None else data

    batches = (b for b in batches if b.num_rows)
    # Nothing to render (Parquet): the columns are picked in line, with no hand-off.
    pairs = render_ahead(batches, keys_and_data) if render else map(keys_and_data, batches)
    for keys, data in pairs:
        starts = [0, *key_boundaries(keys, columns)]
        ends = [*starts[1:], keys.num_rows]
        texts = [values_text(keys.column(c), starts) for c in columns]
        for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
            path = partition_path(columns, [t[i] for t in texts], empty)
            yield PartitionSlice(path, data.slice(start, end - start))


# A stream over max_partitions is counted on to this many partitions, to tell how many.
_COUNT_ON_TO = 1_000_000


def too_many_partitions(
    found: int, limit: int, columns: Sequence[str], *, complete: bool = True
) -> TooManyPartitions:
    """The error for a model with more partitions than ``max_partitions``."""
    count = f"{found:,}" if complete else f"at least {found:,}"
    return TooManyPartitions(
        f"the model has {count} partitions by {', '.join(columns)}, more than "
        f"max_partitions ({limit:,}); each one is at least one file and an entry of the "
        "manifest. Partition by fewer or coarser columns (a month rather than a day, say), "
        f"or set max_partitions to {found:,} or more if so many are meant"
    )


def cap_partitions(
    pieces: Iterator[PartitionSlice], limit: int, columns: Sequence[str]
) -> Iterator[PartitionSlice]:
    """``pieces``, failing once they open partition ``limit + 1``.

    The failure counts the rest of the stream's partitions first (without writing
    them), up to _COUNT_ON_TO, so that the message tells how many there are.
    """
    count = 0
    path: str | None = None
    for piece in pieces:
        if piece.path != path:
            path = piece.path
            count += 1
            if count > limit:
                break
        yield piece
    else:
        return
    for piece in pieces:
        if piece.path != path:
            path = piece.path
            count += 1
            if count >= _COUNT_ON_TO:
                raise too_many_partitions(count, limit, columns, complete=False)
    raise too_many_partitions(count, limit, columns)
