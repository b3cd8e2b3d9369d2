"""The type matrix: every DuckDB type, NULLs and extremes, and how to read each format back.

``MODEL`` builds one table with a column per type. ``decoded_sql`` turns what a
reader got (as Arrow, registered in DuckDB) back into the model's type by the
rules of docs/types.md, so that every value can be compared with the model's.
"""

from __future__ import annotations

# name, DuckDB type, three values (SQL literals); every column also has a NULL row.
COLUMNS: list[tuple[str, str, tuple[str, str, str]]] = [
    ("b", "BOOLEAN", ("true", "false", "true")),
    ("i8", "TINYINT", ("-128", "127", "0")),
    ("i16", "SMALLINT", ("-32768", "32767", "0")),
    ("i32", "INTEGER", ("-2147483648", "2147483647", "0")),
    ("i64", "BIGINT", ("-9223372036854775808", "9223372036854775807", "9007199254740993")),
    (
        "i128",
        "HUGEINT",
        ("-99999999999999999999999999999999999999", "99999999999999999999999999999999999999", "2"),
    ),
    ("u8", "UTINYINT", ("0", "255", "1")),
    ("u16", "USMALLINT", ("0", "65535", "1")),
    ("u32", "UINTEGER", ("0", "4294967295", "1")),
    ("u64", "UBIGINT", ("0", "18446744073709551615", "9223372036854775808")),
    ("u128", "UHUGEINT", ("0", "99999999999999999999999999999999999999", "1")),
    ("f32", "FLOAT", ("'-3.4028235e38'", "'1e-45'", "'2.0'")),
    ("f64", "DOUBLE", ("'-1.7976931348623157e308'", "'-0.0'", "'2.0'")),
    ("dec4", "DECIMAL(4,1)", ("-999.9", "999.9", "0.1")),
    ("dec18", "DECIMAL(18,3)", ("-999999999999999.999", "999999999999999.999", "0.5")),
    (
        "dec38",
        "DECIMAL(38,10)",
        (
            "'-9999999999999999999999999999.9999999999'",
            "'9999999999999999999999999999.9999999999'",
            "'0.0000000001'",
        ),
    ),
    ("s", "VARCHAR", ("''", "'é 日本 \"q\", x' || chr(10) || 'y; |'", "'\\N ,NULL'")),
    ("bl", "BLOB", ("''::BLOB", "'\\x00\\xFF\\x5C,\"'::BLOB", "'abc'::BLOB")),
    ("bits", "BIT", ("'0'::BIT", "'010110'::BIT", "'1'::BIT")),
    ("d", "DATE", ("'-infinity'", "'infinity'", "'0044-03-15 (BC)'")),
    ("d2", "DATE", ("'0001-01-01'", "'9999-12-31'", "'2024-02-29'")),
    ("t", "TIME", ("'00:00:00'", "'24:00:00'", "'12:34:56.5'")),
    ("tns", "TIME_NS", ("'00:00:00'", "'23:59:59.999999999'", "'12:00:00.000000001'")),
    ("ttz", "TIMETZ", ("'00:00:00+15:59'", "'23:59:59.999999-15:59'", "'12:34:56+05:30'")),
    ("ts", "TIMESTAMP", ("'-infinity'", "'infinity'", "'0044-03-15 (BC) 12:00:00.123'")),
    (
        "ts2",
        "TIMESTAMP",
        ("'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'1969-12-31 23:59:59.5'"),
    ),
    (
        "ts_s",
        "TIMESTAMP_S",
        ("'0001-01-01 00:00:00'", "'9999-12-31 23:59:59'", "'2024-01-02 03:04:05'"),
    ),
    (
        "ts_ms",
        "TIMESTAMP_MS",
        ("'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999'", "'2024-01-02 03:04:05.123'"),
    ),
    (
        "ts_ns",
        "TIMESTAMP_NS",
        (
            "'1677-09-22 00:00:00'",
            "'2262-04-11 23:47:16.854775806'",
            "'2024-01-02 03:04:05.123456789'",
        ),
    ),
    ("tstz", "TIMESTAMPTZ", ("'-infinity'", "'infinity'", "'2024-01-02 03:04:05.5+02'")),
    (
        "tstz_ns",
        "TIMESTAMPTZ_NS",
        (
            "'1677-09-22 00:00:00+00'",
            "'2262-04-11 23:47:16.854775806+00'",
            "'2024-01-02 03:04:05.000000001+05:30'",
        ),
    ),
    (
        "iv",
        "INTERVAL",
        (
            "'-1 year -2 months -3 days -00:00:01.5'",
            "'1 month -1 day 25:00:00'",
            "'00:00:00.000001'",
        ),
    ),
    (
        "uid",
        "UUID",
        (
            "'00000000-0000-0000-0000-000000000000'",
            "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        ),
    ),
    (
        "js",
        "JSON",
        ('\'{"a": [1, 2.5, null], "b": "x"}\'', "'\"text\"'", "'123456789012345678901234567890'"),
    ),
    ("en", "ENUM('a', 'b c')", ("'a'", "'b c'", "'a'")),
    ("lst", "INTEGER[]", ("[]", "[NULL]", "[1, -2]")),
    ("arr", "INTEGER[3]", ("[1, 2, 3]", "[NULL, NULL, NULL]", "[0, 0, 0]")),
    (
        "st",
        'STRUCT(a INTEGER, "b c" VARCHAR)',
        ("{'a': NULL, 'b c': NULL}", "{'a': 1, 'b c': 'x\"y'}", "{'a': 0, 'b c': ''}"),
    ),
    ("mp", "MAP(VARCHAR, INTEGER)", ("MAP {}", "MAP {'k': 1, 'l': NULL}", "MAP {'': 0}")),
    ("imap", "MAP(INTEGER, DOUBLE)", ("MAP {1: 1.5}", "MAP {}", "MAP {-1: 2.0}")),
    (
        "nest",
        "STRUCT(ts TIMESTAMP, d DATE, f DOUBLE, h HUGEINT, bl BLOB, l TIMESTAMPTZ[])",
        (
            "{'ts': TIMESTAMP '2024-01-02 03:04:05', 'd': DATE '0044-03-15 (BC)', 'f': -0.0, "
            "'h': -99999999999999999999999999999999999999::HUGEINT, 'bl': '\\x00'::BLOB, "
            "'l': [TIMESTAMPTZ '2024-01-02 03:04:05+01', NULL]}",
            "{'ts': NULL, 'd': NULL, 'f': NULL, 'h': NULL, 'bl': NULL, 'l': NULL}",
            "{'ts': TIMESTAMP 'infinity', 'd': DATE '9999-12-31', 'f': 1e300, 'h': 0, "
            "'bl': ''::BLOB, 'l': []}",
        ),
    ),
    ("dl", "DOUBLE[]", ("[1.5, -0.0, 2.0]", "[]", "[NULL]")),
    (
        "un",
        "UNION(n INTEGER, s VARCHAR, ts TIMESTAMP)",
        (
            "union_value(n := 1)",
            "union_value(s := 'x')",
            "union_value(ts := TIMESTAMP '2024-01-02 03:04:05')",
        ),
    ),
    (
        "bn",
        "BIGNUM",
        (
            "'-100000000000000000000000000000000000000000000'",
            "'100000000000000000000000000000000000000000000'",
            "'0'",
        ),
    ),
    (
        "g",
        "GEOMETRY",
        ("'POINT (1 2)'", "'LINESTRING (0 0, 1 1)'", "'POLYGON ((0 0, 1 0, 1 1, 0 0))'"),
    ),
    ("var", "VARIANT", ("{'a': [1, 2], 'b': 'x'}", "42", "'x'")),
]

# The partition column of the partitioned layout, and the id that orders the rows.
PARTS = ("'a/b'", "'é x'", "'__HIVE_DEFAULT_PARTITION__'", "NULL")


def model_sql() -> str:
    """CREATE TABLE for the model: three rows of values and one of NULLs, ids 0..3."""
    rows = []
    for r in range(4):
        values = [str(r), PARTS[r]]
        for _, typ, vals in COLUMNS:
            values.append(f"CAST({vals[r]} AS {typ})" if r < 3 else f"NULL::{typ}")
        rows.append("(" + ", ".join(values) + ")")
    names = ", ".join(["id", "part", *(name for name, _, _ in COLUMNS)])
    return f"CREATE TABLE model AS SELECT * FROM (VALUES {', '.join(rows)}) v({names})"


def model_types() -> dict[str, str]:
    return {name: typ for name, typ, _ in COLUMNS}


def canonical(expr: str, typ: str) -> str:
    """Text that is equal for equal values of the model's type (JSON minified)."""
    if typ == "JSON":
        return f"CAST(json({expr}) AS VARCHAR)"
    return f"CAST({expr} AS VARCHAR)"


UNION_MEMBERS = ("n", "s", "ts")


def is_nested(typ: str) -> bool:
    return typ.split("(")[0] in ("STRUCT", "MAP", "UNION") or typ.endswith("]")


def json_reading_type(typ: str) -> str:
    """The type DuckDB's read_json is given for a column of the model's type ``typ``."""
    base = typ.split("(")[0]
    if is_nested(typ) or base in ("JSON", "VARIANT"):
        return "JSON"
    # read_json turns '12:34:56+05:30' into a TIMETZ at +00 (duckdb 2.0.1): read the text.
    if base in ("BLOB", "GEOMETRY", "BIGNUM", "BIT", "TIMETZ"):
        return "VARCHAR"
    return typ


def decoded(name: str, typ: str, kind: str) -> str:
    """SQL turning a reader's column back into the model's type, by docs/types.md.

    ``kind`` says what the reader gave: ``typed`` values (Parquet, or JSON read
    with the model's types), ``text`` (CSV read as strings), or ``json`` values.
    """
    col = f'"{name}"'
    base = typ.split("(")[0].split("[")[0].strip()
    if base == "VARIANT":  # its JSON, as text (Parquet, CSV) or as a JSON value
        return f"CAST(CAST({col} AS JSON) AS VARIANT)"
    if kind == "typed":
        if base == "UNION":
            cases = " ".join(
                f"WHEN '{m}' THEN union_value({m} := {col}.{m})::{typ}" for m in UNION_MEMBERS
            )
            return f"CASE {col}.tag {cases} END"
        if base == "GEOMETRY":
            return f"CAST(CAST({col} AS BLOB) AS GEOMETRY)"
        return f"CAST({col} AS {typ})"
    j = f"CAST({col} AS JSON)"
    if base == "UNION":
        cases = " ".join(
            f"WHEN json_exists({j}, '$.{m}') THEN union_value({m} := "
            f"CAST(json_extract_string({j}, '$.{m}') AS {t}))::{typ}"
            for m, t in zip(UNION_MEMBERS, ("INTEGER", "VARCHAR", "TIMESTAMP"), strict=True)
        )
        return f"CASE {cases} END"
    if name == "nest":
        fields = ", ".join(
            [
                f"ts := CAST({j}->>'ts' AS TIMESTAMP)",
                f"d := CAST({j}->>'d' AS DATE)",
                f"f := CAST({j}->>'f' AS DOUBLE)",
                f"h := CAST({j}->>'h' AS HUGEINT)",
                f"bl := from_base64({j}->>'bl')",
                f"l := CAST({j}->'l' AS TIMESTAMPTZ[])",
            ]
        )
        return f"CASE WHEN {col} IS NULL THEN NULL ELSE struct_pack({fields}) END"
    if is_nested(typ):
        return f"CAST({j} AS {typ})"
    if base == "JSON":
        return j
    value = f"json_extract_string({j}, '$')" if kind == "json" else col
    if base == "BLOB":
        return f"from_base64({value})"
    return f"CAST({value} AS {typ})"
