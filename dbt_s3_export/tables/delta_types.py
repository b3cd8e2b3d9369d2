"""What a Delta table holds: the types it declares and takes, the partition values it can
hold and read back, and partition predicates in the column's own type."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..encoding.typemap import DUCKDB_TYPE, column_error
from ..errors import S3ExportError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

else:
    S3Client = Any


# How many of the newest commits are searched for the export id an earlier version of
# this package wrote (before tables had an owner record).


def creatable(typ: pa.DataType) -> pa.DataType:
    """The type Delta declares the column with (the write casts the rows to it).

    delta-rs converts the rows' types when a write creates the table, but not when a table
    is created empty: timestamps are microseconds, with the zone named UTC if they have one.
    """
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", "UTC" if typ.tz else None)
    if pa.types.is_fixed_size_binary(typ):
        return pa.binary()
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.list_(typ.value_field.with_type(creatable(typ.value_type)))
    if pa.types.is_struct(typ):
        return pa.struct([f.with_type(creatable(f.type)) for f in typ])
    if pa.types.is_map(typ):
        return pa.map_(creatable(typ.key_type), creatable(typ.item_type))
    return typ


# Partition values delta-rs 1.6 writes wrongly or cannot read back: negative decimals
# (it stores -12.5 as "-12.-50"), and dates and timestamps outside the years 1 to 9999.
FIRST_DAY, LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, days since 1970


HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def check_partition_types(schema: pa.Schema, cols: list[str], uri: str) -> None:
    """Refuse partition columns of a type delta-rs cannot hold exactly, before any write.

    delta-rs 1.6 stores a BLOB partition value as escaped text and reads it back as the
    bytes of that text (``ab`` comes back as ``\\u0061\\u0062``).
    """
    for name in cols:
        field = schema.field(name)
        typ = field.type
        if (
            pa.types.is_binary(typ)
            or pa.types.is_large_binary(typ)
            or pa.types.is_fixed_size_binary(typ)
            or pa.types.is_binary_view(typ)
        ):
            duckdb_type = (field.metadata or {}).get(DUCKDB_TYPE, b"").decode() or "BLOB"
            raise column_error(
                name,
                duckdb_type,
                f"is a partition column of Delta table {uri}, and delta-rs cannot hold binary "
                "partition values exactly (it reads them back as escaped text). Nothing was "
                "written",
                f"Partition by a text form of it instead, e.g. hex({name}) AS {name}_hex, or "
                "by another column",
            )


def partition_values_checked(
    batches: Iterator[pa.RecordBatch], schema: pa.Schema, cols: list[str], uri: str
) -> Iterator[pa.RecordBatch]:
    """The batches, refused at the first partition value the Delta table could not hold."""
    import pyarrow.compute as pc

    checked = [
        schema.field(c)
        for c in cols
        if pa.types.is_decimal(schema.field(c).type)
        or pa.types.is_string(schema.field(c).type)
        or pa.types.is_large_string(schema.field(c).type)
        or pa.types.is_date32(schema.field(c).type)
        or pa.types.is_timestamp(schema.field(c).type)
    ]
    for batch in batches:
        for field in checked:
            values = batch.column(field.name)
            if not (pa.types.is_decimal(field.type) or pa.types.is_temporal(field.type)):
                # delta-rs reads Hive's name for NULL back as NULL.
                if pc.any(pc.equal(values, HIVE_NULL)).as_py():
                    raise partition_value_error(uri, field, HIVE_NULL, "reads back as NULL")
                continue
            if pa.types.is_decimal(field.type):
                low = pc.min(values)
                if low.is_valid and low.as_py() < 0:
                    raise partition_value_error(uri, field, str(low.as_py()), "writes wrongly")
                continue
            if pa.types.is_date32(field.type):
                first, last = FIRST_DAY, LAST_DAY
                ints = values.view(pa.int32())
            else:
                per_day = 86_400 * PER_SECOND[field.type.unit]
                first, last = FIRST_DAY * per_day, (LAST_DAY + 1) * per_day - 1
                ints = values.view(pa.int64())
            low, high = pc.min_max(ints).values()
            if low.is_valid and (low.as_py() < first or high.as_py() > last):
                bad = low.as_py() if low.as_py() < first else high.as_py()
                raise partition_value_error(
                    uri,
                    field,
                    duckdb_text(pa.array([bad], ints.type).view(field.type)),
                    "cannot read back",
                )
        yield batch


def duckdb_text(value: pa.Array) -> str:
    """A date or timestamp as DuckDB writes it (Arrow has no text for BC instants)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("v", pa.table({"v": value}))
        return str(con.execute("SELECT CAST(v AS VARCHAR) FROM v").fetchall()[0][0])
    finally:
        con.close()


def partition_value_error(uri: str, field: pa.Field, value: str, problem: str) -> Exception:
    duckdb_type = (field.metadata or {}).get(DUCKDB_TYPE, b"").decode() or str(field.type)
    return column_error(
        field.name,
        duckdb_type,
        f"holds {value}, a partition value of Delta table {uri} that delta-rs {problem} "
        f"(negative decimals, dates and timestamps outside the years 1 to 9999, the text "
        f"{HIVE_NULL})",
        f"Partition by a text or integer form of it instead, e.g. CAST({field.name} AS VARCHAR) "
        f"AS {field.name}_key, or by another column",
    )


def kept_errors(
    batches: Iterator[pa.RecordBatch], refused: list[S3ExportError]
) -> Iterator[pa.RecordBatch]:
    """The batches; an error of ours that stops them is also kept in ``refused``.

    delta-rs reads the stream in Rust and reports a Python error in it as its own,
    wrapped in Arrow's C interface text: the export raises the kept one instead.
    """
    try:
        yield from batches
    except S3ExportError as e:
        refused.append(e)
        raise


def sql_equals(column: str, literal: str | None) -> str:
    name = '"' + column.replace('"', '""') + '"'
    return f"{name} IS NULL" if literal is None else f"{name} = {literal}"


ARROW_UNITS = {"s": "Second", "ms": "Millisecond", "us": "Microsecond", "ns": "Nanosecond"}


ARROW_NAMES = {
    pa.int8(): "Int8",
    pa.int16(): "Int16",
    pa.int32(): "Int32",
    pa.int64(): "Int64",
    pa.float32(): "Float32",
    pa.float64(): "Float64",
}


def sql_literals(values: Any, typ: pa.DataType) -> list[str | None]:
    """Each value as a DataFusion SQL literal of ``typ`` exactly (None for NULL).

    Dates and timestamps go as their integers, so every instant Arrow holds (BC, past
    9999, nanoseconds) is named exactly; floats as text (``NaN``, ``inf``, ``-0.0``).
    """
    values = values.combine_chunks().cast(typ)
    present = values.is_valid().to_pylist()
    if pa.types.is_timestamp(typ):
        zone = "None" if typ.tz is None else 'Some("' + typ.tz.replace('"', "") + '")'
        target = f"Timestamp({ARROW_UNITS[typ.unit]}, {zone})"
        ints = values.view(pa.int64()).to_pylist()
        texts = [f"arrow_cast(arrow_cast({n}, 'Int64'), '{target}')" for n in ints]
    elif pa.types.is_date32(typ):
        ints = values.view(pa.int32()).to_pylist()
        texts = [f"arrow_cast(arrow_cast({n}, 'Int32'), 'Date32')" for n in ints]
    elif typ in ARROW_NAMES:
        name = ARROW_NAMES[typ]
        texts = [
            f"arrow_cast({n}, '{name}')"
            if pa.types.is_integer(typ)
            else f"arrow_cast('{float_text(n)}', '{name}')"
            for n in values.to_pylist()
        ]
    elif pa.types.is_decimal(typ):
        name = f"Decimal{typ.bit_width}({typ.precision}, {typ.scale})"
        texts = [f"arrow_cast('{d:f}', '{name}')" for d in values.to_pylist()]
    elif pa.types.is_boolean(typ):
        texts = ["true" if b else "false" for b in values.to_pylist()]
    else:
        texts = ["'" + str(v).replace("'", "''") + "'" for v in values.to_pylist()]
    return [t if ok else None for t, ok in zip(texts, present, strict=True)]


def float_text(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def into_column(field: pa.Field, column: pa.Field) -> pa.Field:
    """The model's field written into the table's column: the column's type, and the
    model's metadata (its DuckDB type) where the column records none of its own.

    delta-rs refuses to merge two values of one metadata key, so an INTEGER written
    into a BIGINT column, or a VARCHAR into an ENUM, JSON or UUID one, keeps the
    column's record: the column still holds that type.
    """
    meta = {**(field.metadata or {}), **(column.metadata or {})}
    return field.with_type(column.type).with_metadata(meta or None)


def refuse_case_only_rename(uri: str, name: str, columns: list[str]) -> None:
    """Delta names are case-insensitive: ``V`` in the model beside ``v`` in the table
    failed in delta-rs as a duplicate field."""
    from .common import SchemaMismatch

    same = [c for c in columns if c.lower() == name.lower()]
    if same:
        raise SchemaMismatch(
            f"column '{name}' in the model is '{same[0]}' in Delta table {uri}: the names "
            "differ only in case, and Delta takes them for one column. Name it as the "
            f'table does in the model ({name} AS "{same[0]}"), or rewrite the table with '
            "mode replace and a new key"
        )


def same_delta_type(a: pa.DataType, b: pa.DataType) -> bool:
    """Whether Delta stores both alike, at any depth (string views and large strings are
    strings, a list's item may have any name, a zoned timestamp any zone)."""
    return bool(delta_shape(a).equals(delta_shape(b)))


def delta_shape(typ: pa.DataType) -> pa.DataType:
    """``typ`` as Delta stores it: what two types that Delta stores alike have in common."""
    if typ in (pa.large_string(), pa.string_view()):
        return pa.string()
    if typ in (pa.large_binary(), pa.binary_view()):
        return pa.binary()
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", "UTC" if typ.tz else None)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return pa.list_(pa.field("element", delta_shape(typ.value_type)))
    if pa.types.is_struct(typ):
        return pa.struct([pa.field(f.name, delta_shape(f.type)) for f in typ])
    if pa.types.is_map(typ):
        return pa.map_(delta_shape(typ.key_type), delta_shape(typ.item_type))
    return typ


def widens(model: pa.DataType, table: pa.DataType) -> bool:
    """Whether every value of the model's type fits the table's column type exactly."""
    ints = [pa.int8(), pa.int16(), pa.int32(), pa.int64()]
    if model in ints and table in ints:
        return ints.index(model) <= ints.index(table)
    if model == pa.float32() and table == pa.float64():
        return True
    if pa.types.is_decimal(model) and pa.types.is_decimal(table):
        return bool(
            model.scale <= table.scale
            and model.precision - model.scale <= table.precision - table.scale
        )
    return False
