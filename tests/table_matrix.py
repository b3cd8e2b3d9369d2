"""The type matrix through Iceberg and Delta tables: what each format holds, and how.

``COLUMNS`` (the contract's type matrix, tests/type_matrix.py) plus ``IN_RANGE`` (the
same types with values every table holds) are written as table columns; ``REFUSED``
says which a format refuses, and with which words. ``PARTITIONS`` are the types that
can be a table's partition column, with values for two runs: the second writes again
to every other value, so ``overwrite_partitions`` must keep the rest.
"""

from __future__ import annotations

from .type_matrix import COLUMNS

FORMATS = ("iceberg", "delta")

# The contract's types again, with values inside every table's range (the years 1 to
# 9999, no nanoseconds): the column of the contract holding infinities or BC dates is
# refused where these are kept.
IN_RANGE: list[tuple[str, str, tuple[str, str, str]]] = [
    (
        "tstz2",
        "TIMESTAMPTZ",
        (
            "'0001-01-01 00:00:00+00'",
            "'9999-12-31 23:59:59.999999+00'",
            "'2024-01-02 03:04:05.5+02'",
        ),
    ),
    (
        "nest2",
        "STRUCT(ts TIMESTAMP, d DATE, h HUGEINT, l TIMESTAMPTZ[], a INTEGER[2])",
        (
            "{'ts': TIMESTAMP '0001-01-01 00:00:00', 'd': DATE '9999-12-31', "
            "'h': -99999999999999999999999999999999999999::HUGEINT, "
            "'l': [TIMESTAMPTZ '2024-01-02 03:04:05+01', NULL], 'a': [1, NULL]}",
            "{'ts': NULL, 'd': NULL, 'h': NULL, 'l': NULL, 'a': NULL}",
            "{'ts': TIMESTAMP '9999-12-31 23:59:59.999999', 'd': DATE '0001-01-01', 'h': 0, "
            "'l': [], 'a': [0, 0]}",
        ),
    ),
    ("tns2", "TIME", ("'00:00:00'", "'23:59:59.999999'", "'12:00:00.000001'")),
]

# (format, column): words of the refusal, which also names the column and its type.
# Everything else reads back exactly.
REFUSED: dict[tuple[str, str], str] = {
    ("iceberg", "d"): "holds -infinity, and Iceberg table",
    ("delta", "d"): "holds -infinity, and Delta table",
    ("iceberg", "ts"): "holds -infinity, and Iceberg table",
    ("iceberg", "tstz"): "holds -infinity, and Iceberg table",
    ("iceberg", "nest"): "holds infinity, and Iceberg table",
    ("delta", "nest"): "holds 0044-03-15 (BC), and Delta table",
    ("iceberg", "ts_ns"): "has nanosecond timestamps, and Iceberg tables hold microseconds",
    ("iceberg", "tstz_ns"): "has nanosecond timestamps, and Iceberg tables hold microseconds",
    ("delta", "ts_ns"): "has nanosecond timestamps, and Delta tables hold microseconds",
    ("delta", "tstz_ns"): "has nanosecond timestamps, and Delta tables hold microseconds",
    ("iceberg", "tns"): "has nanosecond times, and Iceberg tables hold microseconds",
    ("delta", "t"): "is a TIME, which Delta cannot hold",
    ("delta", "tns"): "is a TIME, which Delta cannot hold",
    ("delta", "tns2"): "is a TIME, which Delta cannot hold",
}
# The fix each kind of refusal gives.
FIXES = {
    "holds": "Map such values to NULL in the model",
    "has": "Cast it in the model, e.g. CAST(",
    "is": "Cast it in the model, e.g. CAST(",
}


def all_columns() -> list[tuple[str, str, tuple[str, str, str]]]:
    return [*COLUMNS, *IN_RANGE]


def kept(fmt: str) -> list[str]:
    """The columns ``fmt`` holds."""
    return [name for name, _, _ in all_columns() if (fmt, name) not in REFUSED]


def columns_sql(names: list[str]) -> str:
    """The model of ``names`` (and ``id``): three rows of values and one of NULLs."""
    chosen = [c for c in all_columns() if c[0] in names]
    rows = []
    for r in range(4):
        values = [f"{r}::INTEGER"]
        for _, typ, vals in chosen:
            values.append(f"CAST({vals[r]} AS {typ})" if r < 3 else f"NULL::{typ}")
        rows.append("(" + ", ".join(values) + ")")
    names_sql = ", ".join(["id", *(f'"{name}"' for name, _, _ in chosen)])
    return f"SELECT * FROM (VALUES {', '.join(rows)}) v({names_sql})"


def column_type(name: str) -> str:
    return {n: t for n, t, _ in all_columns()}[name]


# Partition columns: name -> (DuckDB type, values both formats hold, values only
# Iceberg holds, values only Delta holds). Delta refuses negative decimals and NaN is
# refused by Iceberg (tests/test_table_values.py); TIME is Iceberg's alone.
PARTITIONS: dict[str, tuple[str, list[str], list[str], list[str]]] = {
    "b": ("BOOLEAN", ["true", "false", "NULL"], [], []),
    "i8": ("TINYINT", ["-128", "127", "0"], [], []),
    "i16": ("SMALLINT", ["-32768", "32767", "NULL"], [], []),
    "i32": ("INTEGER", ["-2147483648", "2147483647", "0"], [], []),
    "i64": ("BIGINT", ["-9223372036854775808", "9223372036854775807", "NULL"], [], []),
    "i128": (
        "HUGEINT",
        ["99999999999999999999999999999999999999", "0"],
        ["-99999999999999999999999999999999999999"],
        [],
    ),
    "u8": ("UTINYINT", ["0", "255"], [], []),
    "u16": ("USMALLINT", ["0", "65535"], [], []),
    "u32": ("UINTEGER", ["0", "4294967295", "NULL"], [], []),
    "u64": ("UBIGINT", ["0", "18446744073709551615", "9223372036854775808"], [], []),
    "u128": ("UHUGEINT", ["0", "99999999999999999999999999999999999999"], [], []),
    "f32": ("FLOAT", ["'1.1'", "'-0.0'", "'inf'", "'3.4028235e38'"], [], ["'nan'"]),
    "f64": ("DOUBLE", [], [], ["'-1.7976931348623157e308'", "'0.1'", "'-inf'", "NULL", "'nan'"]),
    "dec4": ("DECIMAL(4,1)", ["999.9", "0.1", "0"], ["-999.9"], []),
    "dec18": ("DECIMAL(18,3)", ["999999999999999.999", "0.5"], ["-0.001"], []),
    "dec38": ("DECIMAL(38,10)", ["'9999999999999999999999999999.9999999999'", "0"], [], []),
    "s": (
        "VARCHAR",
        ["'a/b'", "'é x=1'", "'it''s %2F'", "NULL"],
        ["'__HIVE_DEFAULT_PARTITION__'"],  # delta-rs reads it back as NULL: refused
        [],
    ),
    "bits": ("BIT", ["'0'", "'010110'"], [], []),
    "d": ("DATE", ["'0001-01-01'", "'9999-12-31'", "'2024-02-29'", "NULL"], [], []),
    "t": ("TIME", [], ["'00:00:00'", "'23:59:59.999999'", "'12:34:56.5'"], []),
    "ttz": ("TIMETZ", ["'00:00:00+15:59'", "'12:34:56+05:30'"], [], []),
    "ts": (
        "TIMESTAMP",
        ["'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'1969-12-31 23:59:59.5'"],
        [],
        [],
    ),
    "ts_s": ("TIMESTAMP_S", ["'2024-01-02 03:04:05'", "'1900-01-01 00:00:00'"], [], []),
    "ts_ms": ("TIMESTAMP_MS", ["'2024-01-02 03:04:05.123'", "'1970-01-01 00:00:00'"], [], []),
    "tstz": (
        "TIMESTAMPTZ",
        ["'2024-01-02 03:04:05.5+02'", "'0001-01-01 00:00:00+00'", "NULL"],
        [],
        [],
    ),
    "iv": ("INTERVAL", ["'1 month -1 day 25:00:00'", "'00:00:00.000001'"], [], []),
    "uid": (
        "UUID",
        ["'00000000-0000-0000-0000-000000000000'", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"],
        [],
        [],
    ),
    "js": ("JSON", ["'{\"a\": [1, 2.5]}'", "'\"text\"'"], [], []),
    "en": ("ENUM('a', 'b c')", ["'a'", "'b c'"], [], []),
    "bn": ("BIGNUM", ["'-100000000000000000000000000000000000000000000'", "'0'"], [], []),
}


# (format, partition column of this type): words of the refusal.
PARTITION_REFUSED: dict[tuple[str, str], tuple[str, str]] = {
    ("iceberg", "f64"): ("DOUBLE", "pyiceberg records DOUBLE partition values rounded"),
    ("iceberg", "bl"): ("BLOB", "a table cannot hold a partition value of this type"),
    ("delta", "bl"): ("BLOB", "delta-rs cannot hold binary partition values exactly"),
    ("iceberg", "g"): ("GEOMETRY", "a table cannot hold a partition value of this type"),
    ("delta", "g"): ("GEOMETRY", "delta-rs cannot hold binary partition values exactly"),
    ("iceberg", "lst"): ("INTEGER[]", "a table cannot hold a partition value of this type"),
    ("delta", "st"): ("STRUCT(a INTEGER)", "a table cannot hold a partition value of this type"),
    ("delta", "t"): ("TIME", "is a TIME, which Delta cannot hold"),
    ("delta", "s"): ("VARCHAR", "holds __HIVE_DEFAULT_PARTITION__, a partition value of Delta"),
}
PARTITION_REFUSED_VALUES = {
    "f64": "0.1",
    "bl": "'\\xFF'::BLOB",
    "g": "'POINT (1 2)'",
    "lst": "[1]",
    "st": "{'a': 1}",
    "t": "'12:00:00'",
    "s": "'__HIVE_DEFAULT_PARTITION__'",
}


def partition_values(fmt: str, column: str) -> list[str]:
    _, both, iceberg, delta = PARTITIONS[column]
    return both + (iceberg if fmt == "iceberg" else delta)


def partition_columns(fmt: str) -> list[str]:
    return [c for c in PARTITIONS if partition_values(fmt, c)]


def partition_rows(fmt: str, columns: list[str], run: int) -> list[tuple[int, list[str]]]:
    """Rows of ``run`` as (id, one SQL literal per column).

    Run 1 writes row i with value i of each column (cycling); run 2 writes again the
    even rows' partitions, with new ids, and one new partition (the odd rows' values
    of one column with the even rows' of the others is not needed: each row is its own
    partition).
    """
    longest = max(len(partition_values(fmt, c)) for c in columns)
    rows = []
    for i in range(longest):
        if run == 2 and i % 2:
            continue
        values = [partition_values(fmt, c)[i % len(partition_values(fmt, c))] for c in columns]
        rows.append((i + 100 * (run - 1), values))
    return rows


def partition_sql(fmt: str, columns: list[str], run: int) -> str:
    selects = []
    for row_id, values in partition_rows(fmt, columns, run):
        parts = [f"{row_id}::INTEGER AS id", f"{run}::INTEGER AS run"]
        for column, value in zip(columns, values, strict=True):
            parts.append(f'CAST({value} AS {PARTITIONS[column][0]}) AS "{column}"')
        selects.append("SELECT " + ", ".join(parts))
    return "\nUNION ALL ".join(selects)
