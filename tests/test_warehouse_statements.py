"""Snowflake, Redshift, BigQuery, Databricks, Spark and Athena: every statement rendered.

The real adapter packages render each export plan (one dbt process per adapter,
no connection is opened); each statement is compared with the reviewed statement
in tests/warehouse_expected/<adapter>.sql and parsed with sqlglot in that
warehouse's dialect where sqlglot knows the statement. Options or modes a
warehouse cannot honour fail at compile time, naming the model, the option, the
adapter and the fix. Spark is also executed for real (test_spark_export.py).

Set DBT_S3_EXPORT_UPDATE_EXPECTED=1 to rewrite the expected files, then review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml
from sqlglot import exp

from .support import REPO

pytestmark = pytest.mark.dbt

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "warehouse_expected"
COLUMNS = [
    {"name": "id", "type": "int"},
    {"name": "name", "type": "string"},
    {"name": "amount", "type": "decimal(10,2)"},
    {"name": "day", "type": "date"},
]
UPPER = [{"name": c["name"].upper(), "type": c["type"]} for c in COLUMNS]
BASE = {"bucket": "lake", "key": "exports/events/", "file_format": "parquet"}
KEYS = {
    "access_key_id": "AKIAEXAMPLEKEY123456",
    "secret_access_key": "s3cr3t/value+with'quote",
    "keys_in_sql": True,
}

PROFILES: dict[str, dict[str, Any]] = {
    "snowflake": {
        "type": "snowflake",
        "account": "test",
        "user": "u",
        "password": "p",
        "database": "analytics",
        "schema": "exports",
        "warehouse": "wh",
    },
    "redshift": {
        "type": "redshift",
        "host": "127.0.0.1",
        "port": 5439,
        "user": "u",
        "password": "p",
        "dbname": "analytics",
        "schema": "exports",
    },
    "bigquery": {
        "type": "bigquery",
        # A token credential is built without a network call; nothing is sent.
        "method": "oauth-secrets",
        "token": "not-a-token",
        "project": "analytics",
        "dataset": "exports",
    },
    "databricks": {
        "type": "databricks",
        "host": "example.cloud.databricks.com",
        "http_path": "/sql/1.0/warehouses/x",
        "token": "dapi-not-a-token",
        "catalog": "analytics",
        "schema": "exports",
    },
    "spark": {"type": "spark", "method": "session", "host": "NA", "schema": "exports"},
    "athena": {
        "type": "athena",
        "s3_staging_dir": "s3://athena-results/",
        "region_name": "us-east-1",
        "database": "awsdatacatalog",
        "schema": "exports",
    },
}

# Valid cases: name -> (entry, columns[, finish]).
CASES: dict[str, dict[str, dict[str, Any]]] = {
    "snowflake": {
        "parquet_stage_replace_partitioned": {
            "entry": {
                **BASE,
                "stage": "analytics.exports.lake_stage",
                "partition_cols": ["day"],
                "include_partition_cols": True,
                "max_file_size_mb": 64,
                "where": "id > 0 and name <> 'x'",
            },
            "columns": UPPER,
            "finish": {
                "files": [
                    [
                        "day=2024-01-01/data_01b2c3d4-0000-1111-0000-000012345678_0_0_0.snappy.parquet",
                        900,
                        3,
                    ],
                    [
                        "day=2024-01-02/data_01b2c3d4-0000-1111-0000-000012345678_0_0_0.snappy.parquet",
                        800,
                        2,
                    ],
                ],
                "listed": [
                    ["s3://lake/exports/events/_manifest.json", 400],
                    ["s3://lake/exports/events/README.txt", 10],
                    [
                        "s3://lake/exports/events/day=2024-01-01/data_01b2c3d4-0000-1111-0000-000012345678_0_0_0.snappy.parquet",
                        900,
                    ],
                    [
                        "s3://lake/exports/events/day=2024-01-01/data_01aaaaaa-0000-1111-0000-000099999999_0_0_0.snappy.parquet",
                        700,
                    ],
                    [
                        "s3://lake/exports/events/day=2023-12-31/data_01aaaaaa-0000-1111-0000-000099999999_0_0_0.snappy.parquet",
                        600,
                    ],
                ],
            },
        },
        "csv_integration_append": {
            "entry": {
                **BASE,
                "file_format": "csv",
                "storage_integration": "s3_exports",
                "mode": "append",
                "csv_delimiter": "\\t",
                "csv_header": False,
                "compression": "gzip",
                "sse": "aws:kms",
                "sse_kms_key_id": "arn:aws:kms:us-east-1:123456789012:key/abc",
            },
            "columns": UPPER,
        },
        "jsonl_single_object": {
            "entry": {
                **BASE,
                "to": "s3://lake/exports/events.jsonl",
                "bucket": None,
                "key": None,
                "file_format": "jsonl",
                "storage_integration": "s3_exports",
            },
            "columns": UPPER,
        },
        "csv_keys_in_sql_append": {
            "entry": {**BASE, "file_format": "csv", "mode": "append", **KEYS},
            "columns": UPPER,
        },
        "parquet_single_error_if_exists": {
            "entry": {
                **BASE,
                "key": "exports/events.parquet",
                "stage": "lake_stage",
                "mode": "error_if_exists",
            },
            "columns": UPPER,
        },
    },
    "redshift": {
        "parquet_partitioned": {
            "entry": {
                **BASE,
                "iam_role": "arn:aws:iam::123456789012:role/unload",
                "partition_cols": ["day"],
                "include_partition_cols": True,
                "max_file_size_mb": 256,
                "region": "eu-west-1",
                "where": "name <> 'x'",
            },
            "columns": COLUMNS,
        },
        "csv_default_role": {
            "entry": {
                **BASE,
                "file_format": "csv",
                "iam_role": "default",
                "csv_delimiter": "|",
                "compression": "gzip",
                "mode": "append",
            },
            "columns": COLUMNS,
        },
        "jsonl_keys_in_sql": {
            "entry": {**BASE, "file_format": "jsonl", **KEYS, "session_token": "tok/en=="},
            "columns": COLUMNS,
        },
    },
    "bigquery": {
        "parquet_zstd": {
            "entry": {
                **BASE,
                "connection": "analytics.aws-us-east-1.s3_exports",
                "compression": "zstd",
                "where": "name != 'x'",
            },
            "columns": COLUMNS,
        },
        "csv_gzip_tab": {
            "entry": {
                **BASE,
                "file_format": "csv",
                "connection": "analytics.aws-us-east-1.s3_exports",
                "compression": "gzip",
                "csv_delimiter": "tab",
            },
            "columns": COLUMNS,
        },
        "jsonl_append": {
            "entry": {
                **BASE,
                "file_format": "jsonl",
                "connection": "analytics.aws-us-east-1.s3_exports",
                "mode": "append",
            },
            "columns": COLUMNS,
        },
    },
    "databricks": {
        "parquet_overwrite_partitions": {
            "entry": {
                **BASE,
                "partition_cols": ["day"],
                "mode": "overwrite_partitions",
                "max_rows_per_file": 1000000,
                "compression": "zstd",
            },
            "columns": COLUMNS,
            "database": "analytics",
        },
        "csv_append": {
            "entry": {
                **BASE,
                "file_format": "csv",
                "mode": "append",
                "csv_delimiter": ";",
                "csv_header": False,
            },
            "columns": COLUMNS,
            "database": "analytics",
        },
    },
    "spark": {
        "jsonl_gzip_s3a": {
            "entry": {
                **BASE,
                "file_format": "jsonl",
                "compression": "gzip",
                "location": "s3a://lake/exports/events",
                "where": "name <> 'it''s'",
            },
            "columns": COLUMNS,
        },
    },
    "athena": {
        "parquet_partitioned": {
            "entry": {**BASE, "partition_cols": ["day"], "where": "name <> 'x'"},
            "columns": COLUMNS,
        },
        "csv_gzip": {
            "entry": {
                **BASE,
                "file_format": "csv",
                "csv_header": False,
                "compression": "gzip",
                "csv_delimiter": "|",
            },
            "columns": COLUMNS,
        },
        "jsonl_zstd_append": {
            "entry": {**BASE, "file_format": "jsonl", "compression": "zstd", "mode": "append"},
            "columns": COLUMNS,
        },
    },
}

SF = {"storage_integration": "s3_exports"}
# Error cases: name -> (entry, option named, words of the problem or the fix).
ERRORS: dict[str, dict[str, tuple[dict[str, Any], str, str]]] = {
    "snowflake": {
        "json_array": (
            {**BASE, **SF, "file_format": "json", "mode": "append"},
            "file_format",
            "Use file_format jsonl",
        ),
        "replace_folder_without_stage": ({**BASE, **SF}, "mode", "Set stage:"),
        "keys_without_consent": (
            {**BASE, "mode": "append", **{k: v for k, v in KEYS.items() if k != "keys_in_sql"}},
            "access_key_id",
            "keys_in_sql: true",
        ),
        "no_way_to_the_bucket": ({**BASE, "mode": "append"}, "storage_integration", "is required"),
        "partitions_outside_files": (
            {**BASE, **SF, "mode": "append", "partition_cols": ["day"]},
            "include_partition_cols",
            "Set include_partition_cols: true",
        ),
        "parquet_zstd": (
            {**BASE, **SF, "mode": "append", "compression": "zstd"},
            "compression",
            "snappy, none",
        ),
        "max_rows_per_file": (
            {**BASE, **SF, "mode": "append", "max_rows_per_file": 10},
            "max_rows_per_file",
            "Use max_file_size_mb",
        ),
        "unknown_option": (
            {**BASE, **SF, "partition_col": ["day"]},
            "partition_col",
            "Did you mean 'partition_cols'?",
        ),
        "unknown_option_far_from_any": (
            {**BASE, **SF, "frobnicate": 1},
            "frobnicate",
            "The options on snowflake: access_key_id, bucket, compression,",
        ),
        "wrong_type": ({**BASE, **SF, "csv_header": "yes"}, "csv_header", "must be true or false"),
        "secret_of_wrong_type": (
            {**BASE, "access_key_id": 12345678, "secret_access_key": "x"},
            "access_key_id",
            "got ***",
        ),
    },
    "redshift": {
        "single_object": (
            {**BASE, "key": "exports/events.parquet", "iam_role": "default"},
            "key",
            "End the key with '/'",
        ),
        "overwrite_partitions": (
            {
                **BASE,
                "iam_role": "default",
                "partition_cols": ["day"],
                "mode": "overwrite_partitions",
            },
            "mode",
            "Use mode replace",
        ),
        "parquet_zstd": (
            {**BASE, "iam_role": "default", "compression": "zstd"},
            "compression",
            "snappy only",
        ),
        "no_role": (BASE, "iam_role", "is required"),
        "missing_partition_column": (
            {**BASE, "iam_role": "default", "partition_cols": ["month"]},
            "partition_cols",
            "Columns: id, name, amount, day",
        ),
    },
    "bigquery": {
        "no_connection": (BASE, "connection", "BigQuery Omni connection"),
        "partitions": (
            {**BASE, "connection": "p.aws-us-east-1.c", "partition_cols": ["day"]},
            "partition_cols",
            "where filter",
        ),
        "skip_if_exists": (
            {**BASE, "connection": "p.aws-us-east-1.c", "mode": "skip_if_exists"},
            "mode",
            "BigQuery cannot",
        ),
    },
    "databricks": {
        "single_object": (
            {**BASE, "key": "exports/events.parquet"},
            "key",
            "Spark writes a folder of part files",
        ),
        "error_if_exists": (
            {**BASE, "mode": "error_if_exists"},
            "mode",
            "Use replace, append or overwrite_partitions",
        ),
        "include_partition_cols": (
            {**BASE, "partition_cols": ["day"], "include_partition_cols": True},
            "include_partition_cols",
            "folder names only",
        ),
        "storage_class": (
            {**BASE, "storage_class": "GLACIER"},
            "storage_class",
            "the DuckDB plugin honours it",
        ),
    },
    "spark": {},
    "athena": {
        "csv_header": (
            {**BASE, "file_format": "csv", "compression": "gzip"},
            "csv_header",
            "Set csv_header: false",
        ),
        "uncompressed_text": (
            {**BASE, "file_format": "jsonl"},
            "compression",
            "Set compression: gzip or zstd",
        ),
        "max_rows_per_file": ({**BASE, "max_rows_per_file": 5}, "max_rows_per_file", "drop it"),
    },
}
# What no warehouse writes: a JSON array, or a table only the dbt-duckdb plugin writes.
for _adapter, _errors in ERRORS.items():
    _errors["json_array_anywhere"] = (
        {**BASE, "file_format": "json", "mode": "append"},
        "file_format",
        "Use file_format jsonl",
    )
    for _table_format in ("iceberg", "delta"):
        _errors[f"{_table_format}_table"] = (
            {**BASE, "file_format": _table_format},
            "file_format",
            f"{_table_format} tables are written by the dbt-duckdb plugin only",
        )

# Statements sqlglot parses into a full syntax tree in that warehouse's dialect
# (others it keeps as an opaque command or does not know; those are compared only).
DIALECTS = {
    "snowflake": "snowflake",
    "redshift": "redshift",
    "bigquery": "bigquery",
    "databricks": "databricks",
    "spark": "spark",
    "athena": "athena",
}
PARSED_STEPS = {
    "snowflake": {"unload", "manifest", "files"},
    "redshift": set(),
    "bigquery": {"unload"},
    "databricks": {"drop_scratch", "create_scratch", "unload"},
    "spark": {"drop_scratch", "create_scratch", "unload"},
    "athena": set(),
}


def _project(root: Path, adapter: str) -> Path:
    project = root / adapter
    (project / "dbt_packages").mkdir(parents=True)
    (project / "dbt_packages" / "dbt_s3_export").symlink_to(REPO, target_is_directory=True)
    (project / "macros").symlink_to(HERE / "warehouse_project" / "macros")
    cases = {name: {**case} for name, case in CASES[adapter].items()}
    for name, (entry, _option, _words) in ERRORS[adapter].items():
        cases[name] = {"entry": entry, "columns": COLUMNS}
    for case in cases.values():
        case["entry"] = {k: v for k, v in case["entry"].items() if v is not None}
        if adapter != "spark":
            case.setdefault("database", "analytics")
    config = {
        "name": "render_" + adapter,
        "version": "1.0",
        "config-version": 2,
        "profile": "render",
        "vars": {"cases": cases},
    }
    (project / "dbt_project.yml").write_text(yaml.safe_dump(config))
    profile = {"render": {"target": "dev", "outputs": {"dev": {**PROFILES[adapter], "threads": 1}}}}
    (project / "profiles.yml").write_text(yaml.safe_dump(profile))
    return project


@pytest.fixture(scope="module", params=sorted(CASES))
def rendered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Any]]:
    adapter = request.param
    project = _project(tmp_path_factory.mktemp("render"), adapter)
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DO_NOT_TRACK": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "warehouse_render.py"),
            str(project),
            ",".join(CASES[adapter]),
            *ERRORS[adapter],
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=project,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return adapter, json.loads(proc.stdout.strip().splitlines()[-1])


def _as_text(plans: dict[str, list[dict[str, Any]]]) -> str:
    blocks = []
    for name in sorted(plans):
        statements = "\n\n".join(
            f"-- step: {step['name']}\n{step['shown']}" for step in plans[name]
        )
        blocks.append(f"-- case: {name}\n{statements}\n")
    return "\n".join(blocks)


def test_statements_match_the_reviewed_ones(rendered: tuple[str, dict[str, Any]]) -> None:
    adapter, out = rendered
    text = _as_text(out["plans"])
    path = EXPECTED / f"{adapter}.sql"
    if os.environ.get("DBT_S3_EXPORT_UPDATE_EXPECTED"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def test_statements_parse_in_the_warehouse_dialect(rendered: tuple[str, dict[str, Any]]) -> None:
    adapter, out = rendered
    parsed = 0
    for name, steps in out["plans"].items():
        for step in steps:
            if step["name"] not in PARSED_STEPS[adapter]:
                continue
            for statement in sqlglot.parse(step["sql"], read=DIALECTS[adapter]):
                assert statement is not None
                assert not isinstance(statement, exp.Command), (name, step["name"], statement)
                parsed += 1
    assert parsed or not PARSED_STEPS[adapter]


def test_keys_go_into_sql_only_when_asked_and_are_never_shown(
    rendered: tuple[str, dict[str, Any]],
) -> None:
    _adapter, out = rendered
    for name, steps in out["plans"].items():
        for step in steps:
            for value in (KEYS["access_key_id"], KEYS["secret_access_key"]):
                assert value not in step["shown"], (name, step["name"])
            carries = KEYS["access_key_id"] in step["sql"]
            assert carries == step["secret"], (name, step["name"])
            assert not carries or "keys_in_sql" in name


def test_what_the_warehouse_cannot_honour_fails_at_compile_time(
    rendered: tuple[str, dict[str, Any]],
) -> None:
    adapter, out = rendered
    for name, (_entry, option, words) in ERRORS[adapter].items():
        message = out["errors"][name]
        assert message, f"{adapter} {name}: rendered without an error"
        prefix = f"export_to_s3: model 'events' s3_export: option '{option}' on {adapter}: "
        assert message.startswith(prefix), (name, message)
        assert words in message, (name, message)
        assert "12345678" not in message
