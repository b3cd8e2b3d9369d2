"""What a change of the model's schema does to an Iceberg or Delta table, in each mode.

Each change is two exports into one table (the model before, then after); the outcome
is what the table then holds, or the refusal, after which the table must be unchanged
(the same snapshot or version, the same rows). ``EXPECTED`` records every outcome, and
docs/tables.md's table "Schema changes, measured" is generated from it: a test compares
the two, so the page cannot drift from what the code does.
"""

from __future__ import annotations

import os
import re
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export import DuckDBSource, ExportConfig, RunContext, run_export

from .engine import engine_client
from .support import DUMMY_CREDENTIALS, REPO, S3Server
from .test_tables import Reader

FORMATS = ("iceberg", "delta")
FULL = os.environ.get("DBT_S3_EXPORT_TABLE_MATRIX") == "full"
# The suite runs every change in append, and in replace the changes that differ in kind
# (a widening, a refusal of each kind); scripts/table-type-matrix runs every change in
# every mode (overwrite_partitions behaves as append in every case).
MODES = ("append", "replace", "overwrite_partitions")
SAMPLED_REPLACE = ("widen_int", "widen_decimal", "incompatible", "case_rename", "narrow")


def chosen(change: str, mode: str) -> bool:
    return FULL or mode == "append" or (mode == "replace" and change in SAMPLED_REPLACE)


# change: (label, the model before, the model after). Every model has a partition column p.
CHANGES: dict[str, tuple[str, str, str]] = {
    "widen_int": ("widen INTEGER to BIGINT", "1::INTEGER AS v", "2::BIGINT AS v"),
    "widen_float": ("widen FLOAT to DOUBLE", "1.5::FLOAT AS v", "2.5::DOUBLE AS v"),
    "widen_decimal": (
        "widen DECIMAL(10,2) to DECIMAL(12,2)",
        "1.5::DECIMAL(10,2) AS v",
        "2.5::DECIMAL(12,2) AS v",
    ),
    "narrow": ("narrow BIGINT to INTEGER", "1::BIGINT AS v", "2::INTEGER AS v"),
    "incompatible": ("INTEGER to VARCHAR", "1::INTEGER AS v", "'2' AS v"),
    "add": ("add a column", "1 AS v", "2 AS v, 'x' AS w"),
    "drop": ("drop a column", "1 AS v, 'x' AS w", "2 AS v"),
    "rename": ("rename v to v2", "1 AS v", "2 AS v2"),
    "case_rename": ("rename v to V (case only)", "1 AS v", '2 AS "V"'),
    "reorder": ("reorder columns", "1 AS v, 'x' AS w", "'y' AS w, 2 AS v"),
    "not_null": ("NOT NULL, then nullable", "NOT NULL", "NULL::INTEGER AS v"),
}

# (format, change) -> outcome, the same in every mode unless (format, change, mode) says
# otherwise. "kept: ..." is the table's columns after the second run (Iceberg's and
# Delta's own type names, and what the first run's rows read back as).
REFUSED_TYPE = "refused: the values cannot be written into the column"
REFUSED_WIDEN = "refused: widened only by a replace"
EXPECTED: dict[tuple[str, str], str] = {
    ("iceberg", "widen_int"): "applied: v int → v long",
    ("iceberg", "widen_float"): "applied: v float → v double",
    ("iceberg", "widen_decimal"): "applied: v decimal(10, 2) → v decimal(12, 2)",
    ("iceberg", "narrow"): "applied: v long → v long",
    ("iceberg", "incompatible"): "refused: Iceberg cannot change the type that way",
    ("iceberg", "add"): "applied: v int → v int, w string",
    ("iceberg", "drop"): "applied: v int, w string → v int, w string",
    ("iceberg", "rename"): "applied: v int → v int, v2 int",
    ("iceberg", "case_rename"): "refused: the names differ only in case",
    ("iceberg", "reorder"): "applied: v int, w string → v int, w string",
    ("iceberg", "not_null"): "applied: v int → v int",
    ("delta", "widen_int"): REFUSED_WIDEN,
    ("delta", "widen_float"): REFUSED_WIDEN,
    ("delta", "widen_decimal"): REFUSED_WIDEN,
    ("delta", "narrow"): "applied: v int64 → v int64",
    ("delta", "incompatible"): REFUSED_TYPE,
    ("delta", "add"): "applied: v int32 → v int32, w string",
    ("delta", "drop"): "applied: v int32, w string → v int32, w string",
    ("delta", "rename"): "applied: v int32 → v int32, v2 int32",
    ("delta", "case_rename"): "refused: the names differ only in case",
    ("delta", "reorder"): "applied: v int32, w string → v int32, w string",
    ("delta", "not_null"): "applied: v int32 → v int32",
}
# Where a mode differs: delta-rs cannot widen a column in place, so a replace rewrites
# the table's schema with the wider type.
BY_MODE: dict[tuple[str, str, str], str] = {
    ("delta", "widen_int", "replace"): "applied: v int32 → v int64",
    ("delta", "widen_float", "replace"): "applied: v float → v double",
    ("delta", "widen_decimal", "replace"): "applied: v decimal128(10, 2) → v decimal128(12, 2)",
}


def expected(fmt: str, change: str, mode: str) -> str:
    return BY_MODE.get((fmt, change, mode), EXPECTED[fmt, change])


def model_sql(select: str, run: int) -> str:
    return f"SELECT {run}::INTEGER AS id, 'p' AS p, {select}"


def export(
    server: S3Server, catalog: str, fmt: str, table: str, mode: str, con: Any, run: int
) -> None:
    options: dict[str, Any] = {
        "bucket": "schema-changes",
        "key": f"lake/{table}/",
        "file_format": fmt,
        "mode": mode,
        "partition_cols": ["p"],
        "endpoint_url": server.endpoint,
        "region": "us-east-1",
    }
    if fmt == "iceberg":
        options.update(namespace="analytics", table=table, catalog={"type": "sql", "uri": catalog})
    cfg = ExportConfig.parse(options)
    source = DuckDBSource(con, "model", file_format=fmt)
    run_export(cfg, source, engine_client(server.endpoint), RunContext(model=table))


def columns(reader: Reader, fmt: str, table: str) -> str:
    """The table's columns besides id and p, as the format names their types."""
    if fmt == "iceberg":
        fields = [(f.name, str(f.field_type)) for f in reader.iceberg(table).schema().fields]
    else:
        schema = pa.schema(reader.delta(table).schema().to_arrow())
        fields = [(f.name, str(f.type)) for f in schema]
    return ", ".join(f"{n} {t}" for n, t in fields if n not in ("id", "p")) or "none"


def state(reader: Reader, fmt: str, table: str) -> tuple[Any, list[Any]]:
    rows = reader.arrow(fmt, table).to_pylist()
    return reader.version(fmt, table), sorted(rows, key=lambda r: r["id"])


REFUSALS = {
    "cannot change a column's type": "refused: Iceberg cannot change the type that way",
    "cannot be written into the table's column": REFUSED_TYPE,
    "cannot widen a column in place": REFUSED_WIDEN,
    "differ only in case": "refused: the names differ only in case",
}


def outcome(
    server: S3Server, reader: Reader, catalog: str, fmt: str, change: str, mode: str
) -> str:
    _, before_sql, after_sql = CHANGES[change]
    table = f"{fmt}_{change}_{mode}"
    con = duckdb.connect()
    if change == "not_null":
        con.execute("CREATE TABLE model (id INTEGER, p VARCHAR, v INTEGER NOT NULL)")
        con.execute("INSERT INTO model VALUES (1, 'p', 1)")
    else:
        con.execute(f"CREATE TABLE model AS {model_sql(before_sql, 1)}")
    export(server, catalog, fmt, table, mode, con, 1)
    first = columns(reader, fmt, table)
    before = state(reader, fmt, table)
    con.execute(f"CREATE OR REPLACE TABLE model AS {model_sql(after_sql, 2)}")
    try:
        export(server, catalog, fmt, table, mode, con, 2)
    except Exception as e:
        # Nothing half-applied: the table is as the first run left it.
        assert state(reader, fmt, table) == before, (table, str(e))
        for words, said in REFUSALS.items():
            if words in str(e):
                assert "column 'v" in str(e) or "column 'V" in str(e), str(e)
                return said
        raise AssertionError(f"{table}: an unexpected failure: {e}") from e
    after = columns(reader, fmt, table)
    rows = [r["id"] for r in state(reader, fmt, table)[1]]
    assert rows == ([1, 2] if mode == "append" else [2]), table  # one partition p
    return f"applied: {first} → {after}"


@pytest.fixture(scope="module")
def outcomes(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> dict[Any, str]:
    s3_server.create_bucket("schema-changes")
    catalog = f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.db'}"
    reader = Reader(s3_server.endpoint, "schema-changes", catalog)
    with pytest.MonkeyPatch.context() as env:
        for name, value in DUMMY_CREDENTIALS.items():
            env.setenv(name, value)
        return {
            (fmt, change, mode): outcome(s3_server, reader, catalog, fmt, change, mode)
            for fmt in FORMATS
            for change in CHANGES
            for mode in MODES
            if chosen(change, mode)
        }


def docs_table() -> str:
    """The table docs/tables.md shows, from ``EXPECTED``."""
    lines = ["| change of the model | Iceberg | Delta |", "|---|---|---|"]
    for change, (label, _, _) in CHANGES.items():
        cells = []
        for fmt in FORMATS:
            cell = EXPECTED[fmt, change]
            for mode in MODES:
                if (fmt, change, mode) in BY_MODE:
                    cell += f"; in `{mode}`: " + BY_MODE[fmt, change, mode]
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_schema_change_has_its_recorded_outcome(fmt: str, outcomes: dict[Any, str]) -> None:
    for (f, change, mode), got in outcomes.items():
        if f == fmt:
            assert got == expected(fmt, change, mode), (change, mode)


def test_the_docs_show_the_recorded_outcomes() -> None:
    page = (REPO / "docs" / "tables.md").read_text()
    found = re.search(r"<!-- schema-changes -->\n(.*?)\n<!-- /schema-changes -->", page, re.S)
    assert found, "docs/tables.md has no schema-changes table"
    assert found.group(1) == docs_table(), "regenerate: python -m tests.test_table_schema_changes"


if __name__ == "__main__":
    print(docs_table())
