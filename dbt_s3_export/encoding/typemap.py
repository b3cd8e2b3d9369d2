"""How each DuckDB type is written in each format: the source's half of the type contract.

DuckDB hands rows to the writers as Arrow. For most types Arrow carries the
value exactly and the writers render it (see encoding/writers.py and docs/types.md).
For the others the source selects a different expression for the column, in
DuckDB, where the real type is still known:

* ``UHUGEINT`` reaches Arrow as a signed decimal(38, 0): values from 2**127 up
  came back negative. ``HUGEINT`` values past 38 digits made a decimal(38) that
  no reader accepts (and that crashed DuckDB's ``to_json`` in the JSON writer,
  invalidating its private database). Parquet gets decimal(38, 0) with the range
  checked; text formats get every digit.
* ``TIMETZ`` loses its offset in Arrow, ``BIT`` and ``BIGNUM`` arrive as DuckDB's
  internal bytes, and no Parquet writer takes ``INTERVAL`` (Parquet's own interval
  has no negative parts or microseconds) or Arrow unions: they become text, and
  unions a struct of their tag and members.
* Text formats get ``BLOB`` as base64 and nested values as JSON built here, with
  the same rules at every depth: ISO 8601 dates and times, base64, every digit of
  big integers, and no NaN or infinity (JSON has none).

A JSON export embeds the columns tagged ``RAW_JSON`` as JSON values rather than
strings. Values a format cannot hold fail the export with a ``ColumnError``: a
range check runs before anything is uploaded, and the same rule inside the query
stops the stream if a value slips through (a view that changes between reads).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..errors import ColumnError
from ..options.formats import is_typed

# Field metadata the source puts on the schema for the writers.
RAW_JSON = b"dbt_s3_export.raw_json"
DUCKDB_TYPE = b"dbt_s3_export.duckdb_type"
# Marks our own messages inside DuckDB's error() so the source can re-raise them cleanly.
ERROR_MARK = "[s3_export column] "
DECIMAL_LIMIT = 10**38 - 1  # the largest whole number a decimal(38, 0) holds


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class RangeCheck:
    """Values of a whole-number column must lie within [low, high] for the format."""

    low: int
    high: int


@dataclass(frozen=True)
class Column:
    """One column as the source selects it for one export."""

    name: str
    type_name: str
    expr: str
    raw_json: bool = False
    range_check: RangeCheck | None = None

    @property
    def changed(self) -> bool:
        return self.expr != quote_identifier(self.name)


def column_error(column: str, type_name: str, problem: str, fix: str) -> ColumnError:
    return ColumnError(f"column '{column}' ({type_name}) {problem}. {fix}")


def huge_int_error(column: str, type_name: str, value: str, *, nested: bool = False) -> ColumnError:
    target = f"the {'HUGEINT' if 'HUGEINT' in type_name else 'big integer'} values inside it"
    fix = (
        f"Cast {target} to VARCHAR (every digit, as text) or DOUBLE (about 16 significant "
        "digits) in the model"
        if nested
        else f"Cast it in the model: CAST({column} AS VARCHAR) keeps every digit as text, "
        f"CAST({column} AS DOUBLE) about 16 significant digits"
    )
    return column_error(
        column,
        type_name,
        f"holds {value}, which has more than 38 digits: the Parquet decimals that DuckDB, "
        "Spark and pyarrow read hold at most 38",
        fix + "; or export csv or json, which write every digit",
    )


def non_finite_error(column: str, type_name: str, nested: bool) -> ColumnError:
    where = " inside its values" if nested else ""
    fix = (
        f"Write null instead in the model, e.g. list_transform({column}, lambda x: "
        "CASE WHEN isfinite(x) THEN x END) for a list"
        if nested
        else f"Write null instead in the model: CASE WHEN isfinite({column}) THEN {column} END"
    )
    return column_error(
        column,
        type_name,
        f"holds NaN or an infinity{where}, which JSON has no value for",
        fix + "; or export parquet or csv, which keep them",
    )


def _error_sql(error: ColumnError) -> str:
    return f"error({sql_string(ERROR_MARK + str(error))})"


class _Converter:
    """Builds the SQL that turns one column's values into what a format writes.

    Each method returns None when DuckDB's own Arrow form is already right, so
    that only the columns that need it pay for a projection.
    """

    def __init__(self, column: str, type_name: str) -> None:
        self.column = column
        self.type_name = type_name

    def typed(self, x: str, t: Any) -> str | None:
        """For Parquet (and partition values): Arrow types every reader takes."""
        kind = t.id
        if kind in ("hugeint", "uhugeint"):
            low = 0 if kind == "uhugeint" else -DECIMAL_LIMIT
            nested = x != quote_identifier(self.column)
            error = huge_int_error(self.column, self.type_name, "a value", nested=nested)
            return (
                f"CASE WHEN {x} < {low} OR {x} > {DECIMAL_LIMIT} THEN {_error_sql(error)} "
                f"ELSE CAST({x} AS DECIMAL(38, 0)) END"
            )
        if kind in ("bit", "bignum", "time with time zone", "interval"):
            return f"CAST({x} AS VARCHAR)"
        if kind == "variant":
            return f"CAST(CAST({x} AS JSON) AS VARCHAR)"
        if kind == "union":
            return self._union_struct(x, t)
        return self._nested(x, t, self.typed)

    def _union_struct(self, x: str, t: Any) -> str:
        members = [(name, child) for name, child in t.children if name]
        if any(name == "tag" for name, _ in members):
            raise column_error(
                self.column,
                self.type_name,
                "is a union with a member named 'tag', which clashes with the struct of "
                "tag and members it is written as",
                "Rename the member in the model",
            )
        fields = [f"tag := CAST(union_tag({x}) AS VARCHAR)"]
        for name, child in members:
            value = f"union_extract({x}, {sql_string(name)})"
            fields.append(f"{quote_identifier(name)} := {self.typed(value, child) or value}")
        return f"CASE WHEN {x} IS NULL THEN NULL ELSE struct_pack({', '.join(fields)}) END"

    def _nested(self, x: str, t: Any, convert: Any) -> str | None:
        """Apply ``convert`` to the children of a list, array, struct or map."""
        kind = t.id
        if kind in ("list", "array"):
            inner = convert("e", dict(t.children)["child"])
            return None if inner is None else f"list_transform({x}, lambda e: {inner})"
        if kind == "struct":
            parts = [(name, convert(f"{x}.{quote_identifier(name)}", c)) for name, c in t.children]
            if all(p is None for _, p in parts):
                return None
            fields = ", ".join(
                f"{quote_identifier(name)} := {p or f'{x}.{quote_identifier(name)}'}"
                for name, p in parts
            )
            return f"CASE WHEN {x} IS NULL THEN NULL ELSE struct_pack({fields}) END"
        if kind == "map":
            children = dict(t.children)
            key = convert("e.key", children["key"])
            value = convert("e.value", children["value"])
            if key is None and value is None:
                return None
            entry = f"{{'key': {key or 'e.key'}, 'value': {value or 'e.value'}}}"
            return f"map_from_entries(list_transform(map_entries({x}), lambda e: {entry}))"
        return None

    def json_value(self, x: str, t: Any) -> str | None:
        """For JSON (and nested values in CSV): what ``to_json`` should see."""
        kind = t.id
        if kind in ("timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns"):
            return iso_text_sql(x, "timestamp")
        if kind in ("timestamp with time zone", "timestamptz_ns"):
            return iso_text_sql(x, "timestamptz")
        if kind == "date":
            return iso_text_sql(x, "date")
        if kind in ("float", "double"):
            error = _error_sql(non_finite_error(self.column, self.type_name, nested=True))
            return f"CASE WHEN NOT isfinite({x}) THEN {error} ELSE {x} END"
        if kind in ("hugeint", "uhugeint", "bignum"):
            return f"CAST(CAST({x} AS VARCHAR) AS JSON)"
        if kind == "blob":
            return f"to_base64({x})"
        if kind in ("bit", "time with time zone", "interval", "geometry"):
            return f"CAST({x} AS VARCHAR)"
        if kind == "variant":
            return f"CAST({x} AS JSON)"
        if kind == "union":
            cases = []
            for name, child in t.children:
                if name:
                    member = f"union_extract({x}, {sql_string(name)})"
                    value = self.json_value(member, child) or member
                    cases.append(
                        f"WHEN {sql_string(name)} THEN json_object({sql_string(name)}, {value})"
                    )
            return f"CASE CAST(union_tag({x}) AS VARCHAR) {' '.join(cases)} END"
        return self._nested(x, t, self.json_value)


def iso_text_sql(x: str, kind: str) -> str:
    """ISO 8601 text of a DuckDB DATE, TIMESTAMP or TIMESTAMPTZ (in UTC, ``+00``), any unit.

    Every part comes from one conversion, DuckDB's own text of the value: a
    function such as ``year()`` first rounds a nanosecond timestamp to the
    microsecond, so ``2023-12-31 23:59:59.9999995`` would get the year of the
    next instant. The text has a space before the time and writes years before 1 AD
    as ``0044-03-15 (BC)``; here they get the astronomical year instead
    (``-0043-03-15``, and ``0000`` for 1 BC), which DuckDB reads back, as ISO 8601
    has it. Infinite values stay ``infinity`` and ``-infinity``.
    """
    value = f"timezone('UTC', {x})" if kind == "timestamptz" else x
    text = f"CAST({value} AS VARCHAR)"
    suffix = " || '+00'" if kind == "timestamptz" else ""

    def iso(t: str) -> str:
        return t if kind == "date" else f"replace({t}, ' ', 'T')"

    # Before 1 AD: year N BC is astronomical year 1 - N, written with its sign.
    bc_year = f"CAST(regexp_extract({text}, '^([0-9]+)-', 1) AS BIGINT)"
    # (printf, not lpad: lpad cuts a longer year down to 4 digits.)
    bc_prefix = f"CASE WHEN {bc_year} = 1 THEN '0000' ELSE printf('-%04d', {bc_year} - 1) END"
    bc_rest = iso(f"regexp_replace(replace({text}, ' (BC)', ''), '^[0-9]+', '')")
    return (
        f"CASE WHEN {text} IN ('infinity', '-infinity') THEN {text} "
        f"WHEN contains({text}, ' (BC)') THEN {bc_prefix} || {bc_rest}{suffix} "
        f"ELSE {iso(text)}{suffix} END"
    )


def plan_columns(
    names: Sequence[str],
    types: Sequence[Any],
    file_format: str,
    partition_cols: Sequence[str] = (),
) -> list[Column]:
    """How the source selects each column for a ``file_format`` export."""
    columns = []
    for name, t in zip(names, types, strict=True):
        type_name = str(t)
        ident = quote_identifier(name)
        conv = _Converter(name, type_name)
        raw = False
        check = None
        kind = t.id
        if is_typed(file_format) or name in partition_cols:
            expr = conv.typed(ident, t)
            if kind in ("hugeint", "uhugeint"):
                check = RangeCheck(0 if kind == "uhugeint" else -DECIMAL_LIMIT, DECIMAL_LIMIT)
        elif kind in ("list", "array", "struct", "map", "union", "variant"):
            expr = conv.json_value(ident, t)
            if expr is not None or kind in ("union", "variant"):
                expr = f"to_json({expr or ident})"
                raw = True
                if file_format == "csv":
                    expr = f"CAST({expr} AS VARCHAR)"
        elif kind in ("hugeint", "uhugeint", "bignum"):
            # CSV: Arrow renders HUGEINT's decimal(38, 0) exactly, unquoted; the others as text.
            expr = (
                None if file_format == "csv" and kind == "hugeint" else f"CAST({ident} AS VARCHAR)"
            )
            raw = expr is not None
        elif kind in ("blob", "bit", "time with time zone", "interval", "geometry"):
            expr = conv.json_value(ident, t)  # as text, the same as inside a nested value
        else:
            expr = None
            raw = type_name == "JSON"
        columns.append(Column(name, type_name, expr or ident, raw and file_format != "csv", check))
    return columns


def select_list(columns: Sequence[Column]) -> str:
    return ", ".join(
        f"{c.expr} AS {quote_identifier(c.name)}" if c.changed else quote_identifier(c.name)
        for c in columns
    )


def tag_schema(schema: pa.Schema, columns: Sequence[Column]) -> pa.Schema:
    """The schema with each field's DuckDB type, and the raw-JSON mark, as metadata."""
    by_name = {c.name: c for c in columns}
    fields = []
    for f in schema:
        column = by_name.get(f.name)
        meta = dict(f.metadata or {})
        if column is not None:
            meta[DUCKDB_TYPE] = column.type_name.encode()
            if column.raw_json:
                meta[RAW_JSON] = b"1"
        fields.append(f.with_metadata(meta))
    return pa.schema(fields, metadata=schema.metadata)


def type_name(field: pa.Field) -> str:
    """The field's DuckDB type when the source said so, else Arrow's."""
    meta = field.metadata or {}
    return meta.get(DUCKDB_TYPE, b"").decode() or str(field.type)


def is_raw_json(field: pa.Field) -> bool:
    return bool((field.metadata or {}).get(RAW_JSON))


def column_error_from(message: str) -> str | None:
    """Our message inside a DuckDB error raised by ``error()``, if it is one of ours."""
    start = message.find(ERROR_MARK)
    if start < 0:
        return None
    return message[start + len(ERROR_MARK) :].strip()
