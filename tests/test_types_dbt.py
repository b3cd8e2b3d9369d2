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
    read_object,
    s3_client,
)
from .test_types import FORMATS, _compare, _json_reading, _listing
from .type_matrix import model_sql

pytestmark = pytest.mark.dbt


def test_dbt_run_exports_every_type_in_every_format(
    s3_server: S3Server, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    first = request.config.getoption("s3_servers").split(",")[0].strip()
    if s3_server.name != first:
        pytest.skip("the engine's type matrix runs on every server; one dbt run is enough")
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
            if not key.endswith("_manifest.json"):
                path = folder / key.rsplit("/", 1)[-1]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(read_object(s3, "types-dbt", key))
        listing = _listing(sorted(str(p) for p in folder.iterdir()))
        if fmt == "parquet":
            got = model.sql(f"SELECT * FROM read_parquet({listing})").to_arrow_table()
            _compare(model, got, fmt, "typed")
        elif fmt == "csv":
            got = model.sql(
                f"SELECT * FROM read_csv({listing}, all_varchar = true, allow_quoted_nulls = false)"
            ).to_arrow_table()
            _compare(model, got, fmt, "text")
        else:
            columns, kinds = _json_reading()
            layout = "array" if fmt == "json" else "newline_delimited"
            got = model.sql(
                f"SELECT * FROM read_json({listing}, format = '{layout}', columns = {columns})"
            ).to_arrow_table()
            _compare(model, got, fmt, kinds)
