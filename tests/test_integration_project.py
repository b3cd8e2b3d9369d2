"""The integration_tests project, installed with `dbt deps` as users install the package."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from .support import DUMMY_CREDENTIALS, REPO, S3Server, list_keys, read_object

pytestmark = pytest.mark.dbt


def test_dbt_build_of_integration_tests(tmp_path: Path, s3_server: S3Server, s3: Any) -> None:
    for bucket in ("my-output-bucket", "my-data-lake"):
        s3_server.fresh_bucket(bucket)
    project = tmp_path / "integration_tests"
    shutil.copytree(
        REPO / "integration_tests",
        project,
        ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", "*.duckdb"),
    )
    # packages.yml says `local: ../`: point it at the repository from the copy.
    (project / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    env = {
        **os.environ,
        **DUMMY_CREDENTIALS,
        "S3_EXPORT_ENDPOINT_URL": s3_server.endpoint,
        "S3_EXPORT_DUCKDB_PATH": str(tmp_path / "it.duckdb"),
        "PYTHONPATH": str(REPO),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    dbt = str(Path(sys.executable).parent / "dbt")
    for args in (["deps"], ["build"]):
        proc = subprocess.run(
            [dbt, *args, "--profiles-dir", "."],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    output = proc.stdout
    assert "Completed successfully" in output
    assert list_keys(s3, "my-output-bucket") == [
        "orders/all_orders.parquet",
        "partner/orders.jsonl",
    ]
    lake = list_keys(s3, "my-data-lake")
    assert "partner/orders.parquet" in lake and "events/_manifest.json" in lake
    partitions = sorted({k.rsplit("/", 1)[0] for k in lake if k.endswith(".csv")})
    assert partitions == [
        "events/year=2024/month=1",
        "events/year=2024/month=2",
        "events/year=2025/month=3",
    ]
    orders = pq.read_table(
        io.BytesIO(read_object(s3, "my-output-bucket", "orders/all_orders.parquet"))
    )
    assert sorted(orders.column("order_id").to_pylist()) == [1, 2, 3, 5]
