"""The type matrix through a real ``dbt run``: the plugin picks each format's forms."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from .support import (
    DbtProject,
    S3Server,
    export_meta,
    exported_model,
    list_keys,
    only_on_first_server,
    read_object,
    s3_client,
)
from .test_types import FORMATS, assert_duckdb_reads_back
from .type_matrix import model_sql

pytestmark = pytest.mark.dbt


def test_dbt_run_exports_every_type_in_every_format(
    s3_server: S3Server, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    only_on_first_server(request, s3_server, "the engine's matrix runs on every server")
    s3 = s3_client(s3_server.endpoint)
    s3.create_bucket(Bucket="types-dbt")
    project = DbtProject(tmp_path / "p", s3_server.endpoint, threads=4)
    select = model_sql().split(" AS ", 1)[1]  # CREATE TABLE model AS <select>
    for fmt in FORMATS:
        meta = export_meta("types-dbt", f"{fmt}/", fmt)
        project.model(f"types_{fmt}", exported_model(meta, select))
    project.dbt("run")
    model = duckdb.connect()
    model.execute(model_sql())
    for fmt in FORMATS:
        folder = tmp_path / "out" / fmt
        for key in list_keys(s3, "types-dbt", f"{fmt}/"):
            if not key.rsplit("/", 1)[-1].startswith("_"):  # data files, not _manifest/_lease
                path = folder / key.rsplit("/", 1)[-1]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(read_object(s3, "types-dbt", key))
        assert_duckdb_reads_back(model, sorted(str(p) for p in folder.iterdir()), fmt)


# Instants whose text once came out wrong (a TIMESTAMP_NS in the last microsecond of
# a year written with the next year; years past 9999 cut to four digits), and the
# first and last instants of days and years, BC and far future, in every unit.
EDGE_INSTANTS = {
    "TIMESTAMP_NS": [
        "2023-12-31 23:59:59.9999995",
        "1969-12-31 23:59:59.999999999",
        "2262-04-11 23:47:16.854775806",
        "1677-09-21 00:12:43.145224194",
        "2000-01-01 00:00:00",
    ],
    "TIMESTAMP": [
        "2023-12-31 23:59:59.999999",
        "0001-12-31 (BC) 23:59:59.999999",
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59.999999",
        "10000-01-01 00:00:00",
        "290309-12-22 (BC) 00:00:00",
        "294247-01-10 04:00:54.775806",
    ],
    "TIMESTAMP_MS": ["2023-12-31 23:59:59.999", "0001-12-31 (BC) 23:59:59.999", "12345-06-07"],
    "TIMESTAMP_S": ["2023-12-31 23:59:59", "0044-03-15 (BC) 12:00:00", "12345-06-07"],
    "DATE": ["0001-12-31 (BC)", "0001-01-01", "9999-12-31", "10000-01-01", "5881580-07-10"],
}
# Zoned columns hold the same instants (as UTC) in DuckDB's two zoned units.
ZONED = {"TIMESTAMPTZ_NS": "TIMESTAMP_NS", "TIMESTAMPTZ": "TIMESTAMP"}


def edge_instants_sql() -> str:
    """One row per edge instant: column ``c_<type>`` holds it, the others NULL."""
    columns = [*EDGE_INSTANTS, *ZONED]
    rows = []
    for col in columns:
        source = ZONED.get(col, col)
        for text in EDGE_INSTANTS[source]:
            value = f"CAST(CAST('{text}' AS {source}) AS {col})"
            if col in ZONED:  # the naive text read as UTC
                value = f"CAST(timezone('UTC', CAST('{text}' AS {source})) AS {col})"
            rows.append(
                "SELECT "
                + ", ".join(
                    f"{value if c == col else f'CAST(NULL AS {c})'} AS c_{c.lower()}"
                    for c in columns
                )
            )
    return "\nUNION ALL ".join(rows)


def test_dbt_run_writes_edge_instants_exactly_as_text(
    s3_server: S3Server, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    only_on_first_server(request, s3_server, "text is the writers' alone, the same on any server")
    s3 = s3_client(s3_server.endpoint)
    s3.create_bucket(Bucket="edge-instants")
    project = DbtProject(tmp_path / "p", s3_server.endpoint)
    text_formats = ("csv", "json", "jsonl")
    for fmt in text_formats:
        project.model(
            f"edges_{fmt}",
            exported_model(export_meta("edge-instants", f"{fmt}/", fmt), edge_instants_sql()),
        )
    project.dbt("run")
    model = duckdb.connect()
    model.execute("SET TimeZone = 'America/New_York'")
    model.execute(f"CREATE TABLE model AS {edge_instants_sql()}")
    types = dict(model.execute("SELECT column_name, column_type FROM (DESCRIBE model)").fetchall())
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in types.items()) + "}"
    for fmt in text_formats:
        (key,) = [k for k in list_keys(s3, "edge-instants", f"{fmt}/") if "/_" not in k]
        path = tmp_path / key.replace("/", "_")
        path.write_bytes(read_object(s3, "edge-instants", key))
        reader = (
            f"read_csv('{path}', header = true, columns = {columns})"
            if fmt == "csv"
            else f"read_json('{path}', columns = {columns})"
        )
        missing = model.execute(f"SELECT * FROM model EXCEPT ALL SELECT * FROM {reader}").fetchall()
        extra = model.execute(f"SELECT * FROM {reader} EXCEPT ALL SELECT * FROM model").fetchall()
        assert not missing and not extra, f"{fmt}: model rows {missing}, read back {extra}"
