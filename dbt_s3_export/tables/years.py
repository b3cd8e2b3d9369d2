"""Dates and timestamps a table can hold: the years 1 to 9999 (see ``years_checked``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa

from ..encoding.typemap import column_error, type_name

# Dates and timestamps pyiceberg (and, for dates, deltalake's reader) can hold: Python's
# years 1 to 9999. DuckDB has BC dates, later years and infinities.
FIRST_DAY, LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, days since 1970
PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _temporal_leaves(values: pa.Array, typ: pa.DataType, dates_only: bool) -> Iterator[pa.Array]:
    """The date (and timestamp) values inside ``values``, at any depth."""
    if isinstance(values, pa.ChunkedArray):
        for chunk in values.chunks:
            yield from _temporal_leaves(chunk, typ, dates_only)
        return
    if pa.types.is_date32(typ) or (pa.types.is_timestamp(typ) and not dates_only):
        yield values
    elif pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        yield from _temporal_leaves(values.flatten(), typ.value_type, dates_only)
    elif pa.types.is_map(typ):
        yield from _temporal_leaves(values.keys, typ.key_type, dates_only)
        yield from _temporal_leaves(values.items, typ.item_type, dates_only)
    elif pa.types.is_struct(typ):
        for i, f in enumerate(typ):
            yield from _temporal_leaves(values.field(i), f.type, dates_only)


def _has_temporal(typ: pa.DataType, dates_only: bool) -> bool:
    if pa.types.is_date32(typ) or (pa.types.is_timestamp(typ) and not dates_only):
        return True
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return _has_temporal(typ.value_type, dates_only)
    if pa.types.is_map(typ):
        return _has_temporal(typ.key_type, dates_only) or _has_temporal(typ.item_type, dates_only)
    if pa.types.is_struct(typ):
        return any(_has_temporal(f.type, dates_only) for f in typ)
    return False


def outside_years(values: pa.Array) -> int | None:
    """The integer of a date or timestamp in ``values`` outside the years 1 to 9999, if any."""
    import pyarrow.compute as pc

    typ = values.type
    if pa.types.is_date32(typ):
        first, last = FIRST_DAY, LAST_DAY
        ints = values.view(pa.int32())
    else:
        per_day = 86_400 * PER_SECOND[typ.unit]
        first, last = FIRST_DAY * per_day, (LAST_DAY + 1) * per_day - 1
        ints = values.view(pa.int64())
    low, high = pc.min_max(ints).values()
    if not low.is_valid or (first <= low.as_py() and high.as_py() <= last):
        return None
    return int(low.as_py() if low.as_py() < first else high.as_py())


def temporal_text(typ: pa.DataType, value: int) -> str:
    """A date or timestamp integer as DuckDB writes it (Arrow has no text for BC instants)."""
    import duckdb

    ints = pa.array([value], pa.int32() if pa.types.is_date32(typ) else pa.int64())
    con = duckdb.connect()
    try:
        con.register("v", pa.table({"v": ints.view(typ)}))
        return str(con.execute("SELECT CAST(v AS VARCHAR) FROM v").fetchall()[0][0])
    finally:
        con.close()


def years_checked(
    batches: Iterable[pa.RecordBatch], schema: pa.Schema, file_format: str, what: str
) -> Iterator[pa.RecordBatch]:
    """The batches, refused at the first date (or, for Iceberg, timestamp) outside the
    years 1 to 9999, at any depth.

    pyiceberg keeps each column's bounds as Python dates and datetimes, which stop at
    those years (it failed with ``OverflowError``); delta-rs writes such dates, but
    panics on DuckDB's infinite dates, and deltalake cannot read a table whose
    statistics hold the others back. (delta-rs keeps timestamps of any year.)
    """
    dates_only = file_format == "delta"
    checked = [f for f in schema if _has_temporal(f.type, dates_only)]
    for batch in batches:
        for field in checked:
            for leaf in _temporal_leaves(batch.column(field.name), field.type, dates_only):
                bad = outside_years(leaf)
                if bad is None:
                    continue
                kinds = "dates" if dates_only else "dates and timestamps"
                library = "pyiceberg" if file_format == "iceberg" else "delta-rs"
                raise column_error(
                    field.name,
                    type_name(field),
                    f"holds {temporal_text(leaf.type, bad)}, and {what} holds {kinds} of the "
                    f"years 1 to 9999 only ({library} cannot write or read back others)",
                    f"Map such values to NULL in the model (CASE WHEN year({field.name}) "
                    f"BETWEEN 1 AND 9999 THEN {field.name} END), or cast the column to VARCHAR",
                )
        yield batch
