"""Every example of docs/reading.md ("Reading an export"), run against a local server.

The page's examples name the server ``python -m dbt_s3_export.local_s3`` starts
(127.0.0.1:9000, its default keys, bucket ``my-bucket``); here they are pointed at the
test's server and bucket, after the exports they read are made. Shell and Python
blocks run as written. DuckDB's SQL needs the httpfs extension, which the test
environment's DuckDB cannot load: with a Python whose DuckDB has it
(``DBT_S3_EXPORT_HTTPFS_PYTHON``, else ``.venv-bench`` of benchmarks/) the SQL runs
against the server; without one, ``CREATE SECRET`` is only parsed and the other
statements run against a local copy of the bucket. The Athena DDL is parsed
(sqlglot's Athena dialect); the Spark block, which needs hadoop-aws, is compiled only;
the dbt macro's block is run by test_readers.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot

from dbt_s3_export import ArrowSource, ExportConfig, run_export
from dbt_s3_export.local_s3 import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY

from .support import S3Server, list_keys, only_on_first_server, read_object

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "reading.md"
FENCE = re.compile(r"^```([a-z]+)([^\n]*)\n(.*?)^```$", re.M | re.S)


def examples() -> list[tuple[str, str, str]]:
    """(language, the rest of the fence line, code) of every block of the page."""
    return [(m[1], m[2].strip(), m[3]) for m in FENCE.finditer(PAGE.read_text())]


def httpfs_python() -> str | None:
    """A Python whose DuckDB loads httpfs from a wheel (benchmarks/requirements.txt)."""
    given = os.environ.get("DBT_S3_EXPORT_HTTPFS_PYTHON")
    candidate = Path(given) if given else REPO / ".venv-bench" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


DUCKDB_WITH_HTTPFS = """
import json, pathlib, sys
import duckdb, duckdb_extension_httpfs
ext = next(pathlib.Path(duckdb_extension_httpfs.__file__).parent.rglob("httpfs.duckdb_extension"))
con = duckdb.connect()
con.execute(f"LOAD '{ext}'")
result = None
for block in json.load(sys.stdin):
    for statement in con.extract_statements(block):
        result = con.execute(statement).fetchall()
print(json.dumps(result))
"""


def run_duckdb(blocks: list[str], s3: Any, bucket: str, tmp_path: Path) -> list[Any]:
    """Run the SQL blocks in one DuckDB session; the last statement's rows."""
    python = httpfs_python()
    if python is not None:
        out = subprocess.run(
            [python, "-c", DUCKDB_WITH_HTTPFS],
            input=json.dumps(blocks),
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        return [tuple(row) for row in json.loads(out.stdout)]
    mirror = tmp_path / "mirror"
    for key in list_keys(s3, bucket, ""):
        (mirror / bucket / key).parent.mkdir(parents=True, exist_ok=True)
        (mirror / bucket / key).write_bytes(read_object(s3, bucket, key))
    con = duckdb.connect()
    result: list[Any] = []
    for block in blocks:
        for statement in con.extract_statements(block):
            if statement.query.lstrip().upper().startswith("CREATE OR REPLACE SECRET"):
                continue  # parsed above; the s3 secret type comes with httpfs
            result = con.execute(statement.query.replace("s3://", f"{mirror}/")).fetchall()
    return result


def test_every_example_of_reading_an_export_runs(
    request: pytest.FixtureRequest,
    s3_server: S3Server,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    only_on_first_server(request, s3_server, "the examples read as the server's tests do")
    endpoint = s3_server.endpoint
    catalog = tmp_path / "catalog.db"
    data = pa.table({"id": list(range(10)), "p": [i % 3 for i in range(10)], "tag": ["x"] * 10})
    exports = [
        {"key": "exports/events/", "file_format": "parquet", "partition_cols": ["p"]},
        {
            "key": "lake/orders/",
            "file_format": "iceberg",
            "namespace": "analytics",
            "table": "orders",
            "catalog": {"type": "sql", "uri": f"sqlite:///{catalog}"},
            "endpoint_url": endpoint,
        },
        {"key": "lake/payments/", "file_format": "delta", "endpoint_url": endpoint},
    ]
    for options in exports:
        extra = {"symlink_manifests": True} if options["file_format"] == "parquet" else {}
        config = ExportConfig.parse({"bucket": bucket, **options, **extra})
        run_export(config, ArrowSource(data), s3)
    host = endpoint.split("://", 1)[1]

    def here(code: str) -> str:
        return (
            code.replace("127.0.0.1:9000", host)
            .replace("my-bucket", bucket)
            .replace(DEFAULT_ACCESS_KEY, "testing")
            .replace(DEFAULT_SECRET_KEY, "testing")
            .replace("/tmp/catalog.db", str(catalog))
        )

    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    manifest = json.loads(read_object(s3, bucket, "exports/events/_manifest.json"))
    listed = sorted(f"s3://{bucket}/{f['key']}" for f in manifest["files"])
    ran: list[str] = []
    sql: list[str] = []
    for language, info, code in examples():
        code = here(code)
        kind = f"{language} {info}".strip()
        if kind == "sh":
            env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
            env["PYTHONPATH"] = str(REPO)
            out = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", code],
                capture_output=True,
                text=True,
                env=env,
                check=True,
                timeout=120,
            )
            assert sorted(out.stdout.split()) == listed, out.stderr
        elif kind == "python":
            space: dict[str, Any] = {}
            exec(compile(textwrap.dedent(code), str(PAGE), "exec"), space)
            check_python(space, data)
        elif kind == "python not-run-here":
            compile(code, str(PAGE), "exec")
        elif kind == "sql":
            sql.append(code)
            duckdb.extract_statements(code)  # every statement parses in this DuckDB too
        elif kind == "sql athena":
            assert sqlglot.parse_one(code, read="athena") is not None
        elif kind != "sql dbt":
            pytest.fail(f"docs/reading.md has a {kind!r} block that this test does not run")
        ran.append(kind)
    counts = run_duckdb(sql, s3, bucket, tmp_path)
    assert counts == [(0, 4), (1, 3), (2, 3)]
    assert sorted(ran) == sorted(
        ["sh", "sql", "sql", "sql dbt", "sql athena", "python not-run-here", *["python"] * 4]
    )


def check_python(space: dict[str, Any], data: pa.Table) -> None:
    """What each Python example leaves behind holds the exported rows."""
    if "table" in space:
        assert space["table"].num_rows == data.num_rows
        assert space["listed"].generation and len(space["listed"].uris) == 3
    if "per_partition" in space:
        assert sorted(space["per_partition"].rows()) == [(0, 4), (1, 3), (2, 3)]
    for name in ("orders", "payments"):
        if name in space:
            assert sorted(space[name].column("id").to_pylist()) == list(range(10))
