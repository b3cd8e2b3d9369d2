"""Memory stays flat whatever the width of a row: measured in fresh processes (peak RSS).

benchmarks/wide_rows.py exports 8,192 rows of 32 KiB strings (256 MiB) in a
process of its own per format and reports the peak RSS growth. DuckDB's own
reading of such rows takes a few hundred MiB; the export may add little to
that. Batches counted in rows alone held the whole table at once and its
encoded text beside it (+66 MiB for CSV, +106 MiB for JSON lines at half this
size; +1.8 GB and +2.4 GB for a 600 MiB table of 1 MiB strings). DuckDB runs
on one thread: with one per core its own peak varies by tens of MiB from run
to run on a busy machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .support import DUMMY_CREDENTIALS, REPO, S3Server, only_on_first_server

# What the export may add to DuckDB's own peak while reading the same rows.
ALLOWED_GROWTH_MIB = 64


def test_wide_rows_export_in_flat_memory(
    s3_server: S3Server, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    only_on_first_server(request, s3_server, "memory does not depend on the S3 server")
    out = tmp_path / "wide.json"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "wide_rows.py"),
            "--rows=8192",
            "--width=32768",
            "--threads=1",
            "--modes=duckdb,csv,jsonl",
            f"--endpoint={s3_server.endpoint}",
            f"--access-key={DUMMY_CREDENTIALS['AWS_ACCESS_KEY_ID']}",
            f"--secret-key={DUMMY_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}",
            f"--json={out}",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    results = {r["mode"]: r for r in json.loads(out.read_text())["results"]}
    duckdb_own = results["duckdb"]["peak_growth_mib"]
    for fmt in ("csv", "jsonl"):
        assert results[fmt]["rows"] == 8192
        growth = results[fmt]["peak_growth_mib"]
        assert growth <= duckdb_own + ALLOWED_GROWTH_MIB, (fmt, growth, duckdb_own)
