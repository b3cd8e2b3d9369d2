"""Temporal values written as text by the CSV and JSON writers, read back exactly.

Random values over each type's whole range (BC and far-future ones, the first and
last instants of days and years, every unit, with and without a time zone) go
through the writers; DuckDB reads the file back with the column's type and every
value must be the one written. No S3 server: the writers take any binary sink.
The same edge values through a real ``dbt run`` are in test_types_dbt.py.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbt_s3_export.encoding.writers import FormatOptions, open_writer

_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}
_MAX = 2**63 - 1  # DuckDB's infinity; -_MAX is -infinity
# DuckDB's finite TIMESTAMP range (290309-12-22 (BC) to 294247-01-10 04:00:54.775806)
# in microseconds; the coarser units hold the same instants, TIMESTAMP_NS all of int64.
_FIRST_US = -9_223_372_022_400_000_000
_LAST_US = _MAX - 1
_RANGE = {
    "s": (_FIRST_US // 1_000_000, _LAST_US // 1_000_000),
    "ms": (_FIRST_US // 1_000, _LAST_US // 1_000),
    "us": (_FIRST_US, _LAST_US),
    "ns": (-_MAX + 1, _MAX - 1),
}
_DUCKDB_TYPE = {"s": "TIMESTAMP_S", "ms": "TIMESTAMP_MS", "us": "TIMESTAMP", "ns": "TIMESTAMP_NS"}
_DATE_RANGE = (-(2**31) + 2, 2**31 - 2)  # 5877642-06-25 (BC) to 5881580-07-10


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (astronomical year)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def instants(low: int, high: int, day: int) -> st.SearchStrategy[int]:
    """Any value in [low, high], weighted towards the first and last instants of days and years."""
    first_day, last_day = low // day, high // day
    years = st.integers(-290_308, 294_246).map(lambda y: days_from_civil(y, 1, 1))
    starts = st.one_of(st.integers(first_day, last_day), years).map(lambda d: d * day)
    edges = st.one_of(starts, starts.map(lambda v: v - 1), starts.map(lambda v: v + 1))
    # Clamped, not filtered: for times (one day wide) most year starts fall outside.
    return st.one_of(st.integers(low, high), edges.map(lambda v: min(max(v, low), high)))


def write_and_read(file_format: str, array: pa.Array, duckdb_type: str) -> list[Any]:
    """The array written as column ``v`` by our writer, read back by DuckDB as ``duckdb_type``,
    as integers in the array's own unit."""
    table = pa.table({"v": array})
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"v.{file_format}")
        with open(path, "wb") as sink:
            writer = open_writer(FormatOptions(file_format), table.schema, sink)
            for batch in table.to_batches(max_chunksize=7):
                writer.write(batch)
            writer.close()
        con = duckdb.connect()
        con.execute("SET TimeZone = 'America/New_York'")  # zoned text carries its offset
        columns = f"{{'v': '{duckdb_type}'}}"
        reader = (
            f"read_csv('{path}', header = true, columns = {columns})"
            if file_format == "csv"
            else f"read_json('{path}', format = '{_JSON_LAYOUT[file_format]}', columns = {columns})"
        )
        result = con.sql(f"SELECT v FROM {reader}").to_arrow_table().column("v").combine_chunks()
        con.close()
    width = pa.int32() if pa.types.is_date32(array.type) else pa.int64()
    # A safe cast: a value read back with a finer part than was written fails here.
    return result.cast(array.type).view(width).to_pylist()  # type: ignore[no-any-return]


def exact(file_format: str, typ: pa.DataType, values: list[int | None], duckdb_type: str) -> None:
    back = write_and_read(file_format, pa.array(values, typ), duckdb_type)
    wrong = [(v, b) for v, b in zip(values, back, strict=True) if v != b]
    assert not wrong, f"{file_format} {typ}: written, read back: {wrong[:5]}"


TEXT_FORMATS = ("csv", "json", "jsonl")
_JSON_LAYOUT = {"json": "array", "jsonl": "newline_delimited"}
UNITS = ("s", "ms", "us", "ns")
# Property tests take a minute: the fast lane (scripts/test --quick) leaves them to CI.
pytestmark = pytest.mark.slow

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("file_format", TEXT_FORMATS)
@pytest.mark.parametrize("zoned", [False, True], ids=["naive", "utc"])
@pytest.mark.parametrize("unit", UNITS)
def test_timestamps_read_back_exactly(file_format: str, unit: str, zoned: bool) -> None:
    low, high = _RANGE[unit]
    typ = pa.timestamp(unit, "UTC" if zoned else None)
    duckdb_type = _DUCKDB_TYPE[unit] + (" WITH TIME ZONE" if zoned else "")
    if zoned:  # DuckDB's zoned types: microseconds and nanoseconds only
        duckdb_type = "TIMESTAMPTZ_NS" if unit == "ns" else "TIMESTAMPTZ"

    @PROPERTY
    @given(st.lists(st.one_of(st.none(), instants(low, high, _DAY[unit])), min_size=1, max_size=30))
    def check(values: list[int | None]) -> None:
        exact(file_format, typ, values, duckdb_type)

    check()


@pytest.mark.parametrize("file_format", TEXT_FORMATS)
def test_dates_read_back_exactly(file_format: str) -> None:
    @PROPERTY
    @given(st.lists(st.one_of(st.none(), instants(*_DATE_RANGE, 1)), min_size=1, max_size=30))
    def check(values: list[int | None]) -> None:
        exact(file_format, pa.date32(), values, "DATE")

    check()


@pytest.mark.parametrize("file_format", TEXT_FORMATS)
@pytest.mark.parametrize("unit", ["us", "ns"])
def test_times_read_back_exactly(file_format: str, unit: str) -> None:
    duckdb_type = "TIME_NS" if unit == "ns" else "TIME"

    @PROPERTY
    @given(st.lists(st.one_of(st.none(), instants(0, _DAY[unit], _DAY[unit])), min_size=1))
    def check(values: list[int | None]) -> None:
        exact(file_format, pa.time64(unit), values, duckdb_type)

    check()


# The values of the issue, and the first and last instants DuckDB holds.
EDGES = {
    "ns": [
        "2023-12-31 23:59:59.9999995",
        "1969-12-31 23:59:59.999999999",
        "1970-01-01 00:00:00",
        "2262-04-11 23:47:16.854775806",
        "1677-09-21 00:12:43.145224194",
        "2261-12-31 23:59:59.999999999",
    ],
    "us": [
        "2023-12-31 23:59:59.999999",
        "0001-12-31 (BC) 23:59:59.999999",
        "0044-03-15 (BC) 12:00:00.5",
        "9999-12-31 23:59:59.999999",
        "10000-01-01 00:00:00",
        "290309-12-22 (BC) 00:00:00",
        "294247-01-10 04:00:54.775806",
    ],
}


@pytest.mark.parametrize("file_format", TEXT_FORMATS)
@pytest.mark.parametrize("zoned", [False, True], ids=["naive", "utc"])
@pytest.mark.parametrize("unit", ["us", "ns"])
def test_edge_instants_read_back_exactly(file_format: str, unit: str, zoned: bool) -> None:
    duckdb_type = {("us", False): "TIMESTAMP", ("ns", False): "TIMESTAMP_NS"}.get(
        (unit, zoned), "TIMESTAMPTZ_NS" if unit == "ns" else "TIMESTAMPTZ"
    )
    naive = "TIMESTAMP_NS" if unit == "ns" else "TIMESTAMP"
    literals = ", ".join(f"('{text}'::{naive})" for text in EDGES[unit])
    values = duckdb.sql(f"SELECT * FROM (VALUES {literals})").to_arrow_table().column(0)
    ints = values.combine_chunks().view(pa.int64()).to_pylist()
    exact(file_format, pa.timestamp(unit, "UTC" if zoned else None), ints, duckdb_type)
