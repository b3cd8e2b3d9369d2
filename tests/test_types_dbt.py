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
