"""Snowflake, Redshift, BigQuery, Databricks, Spark and Athena: every statement rendered.

The real adapter packages render each export plan (one dbt process per adapter,
no connection is opened); each statement is compared with the reviewed statement
in tests/warehouse_expected/<adapter>.sql and parsed with sqlglot in that
warehouse's dialect where sqlglot knows the statement. Options or modes a
warehouse cannot honour fail at compile time, naming the model, the option, the
adapter and the fix. Spark is also executed for real (test_spark_export.py).

A hostile case per adapter (bucket with dots; key with a quote, a space, a
backslash and unicode; columns named `select` and `it's "x"`; a `where` with
quotes and backslashes; earlier partition folders with spaces, quotes, unicode
and timestamps) is decoded literal by literal with the warehouse's own rules;
combinations a vendor's reference page rejects are checked never to be rendered.

Set DBT_S3_EXPORT_UPDATE_EXPECTED=1 to rewrite the expected files, then review the diff.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlglot
import yaml
from sqlglot import exp

from dbt_s3_export.encoding.partitioning import NULL_SEGMENT, encode_segment, value_text
from dbt_s3_export.options import table as spec

from .support import REPO

pytestmark = [pytest.mark.dbt, pytest.mark.slow]

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
        "parquet_overwrite_partitions": {
            "entry": {
                **BASE,
                "mode": "overwrite_partitions",
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
        "jsonl_zstd_append": {
            "entry": {**BASE, "file_format": "jsonl", "compression": "zstd", "mode": "append"},
            "columns": COLUMNS,
        },
    },
}

# The hostile-value matrix: a bucket with dots, a key with a quote, a space, a
# backslash and unicode, a column named `select` and one with quotes in its
# name, a `where` with quotes and backslashes written in the warehouse's own
# SQL, and (Snowflake) earlier partition folders whose values hold spaces,
# quotes, unicode and timestamps. Every literal must decode back to the value.
H_BUCKET = "lake.with.dots"
H_KEY = "exports/it's here \\ ünï/"
H_DEST = f"s3://{H_BUCKET}/{H_KEY}"
H_WHERE = {
    # Backslash-escaping dialects: \' and \\ inside the model's own literals.
    "snowflake": "\"select\" <> 'it''s' and \"name\" <> 'C:\\\\dir\\\\' and \"name\" <> '\"q\"'",
    "bigquery": "`select` <> 'it\\'s' and name <> 'C:\\\\dir\\\\'",
    "spark": "`select` <> 'it\\'s' and name <> 'C:\\\\dir\\\\'",
    "databricks": "`select` <> 'it\\'s' and name <> 'C:\\\\dir\\\\'",
    # Redshift reads \\ as one backslash; Athena (Trino) has no escapes but ''.
    "redshift": "\"select\" <> 'it''s' and name <> 'C:\\\\dir\\\\'",
    "athena": "\"select\" <> 'it''s' and name <> 'C:\\dir\\'",
}
H_COLUMNS = [
    {"name": "select", "type": "varchar"},
    {"name": 'it\'s "x"', "type": "varchar"},
    {"name": "flag", "type": "boolean"},
    {"name": "name", "type": "varchar"},
    {"name": "day", "type": "date"},
]
H_SF_COLUMNS = [
    {"name": "select", "type": "TEXT"},
    {"name": 'it\'s "x"', "type": "TEXT"},
    {"name": "NAME", "type": "TEXT"},
    {"name": "TS", "type": "TIMESTAMP_NTZ"},
    {"name": "AT", "type": "TIMESTAMP_TZ"},
]
H_QID = "01ccccc0-0000-1111-0000-000012345678"
H_OLD = "01aaaaaa-0000-1111-0000-000099999999"
H_OLD_FOLDERS = [
    "name=it's here/ts=2024-01-01 00:00:00.000/",
    "name=ünï côdé/ts=2024-01-01 00:00:00/",
    'name=a\\b"c/ts=__HIVE_DEFAULT_PARTITION__/',
]
H_FINISH = {
    "files": [[f"name=x/ts=2024-01-01%2000%3A00%3A00/data_{H_QID}_0_0_0.json", 10, 1]],
    "listed": [[f"{H_DEST}{folder}data_{H_OLD}_0_0_0.json", 5] for folder in H_OLD_FOLDERS],
}
HOSTILE: dict[str, dict[str, Any]] = {
    "snowflake": {
        "entry": {
            "bucket": H_BUCKET,
            "key": H_KEY,
            "file_format": "jsonl",
            "stage": "analytics.exports.lake_stage",
            "partition_cols": ["name", "ts"],
            "include_partition_cols": True,
            "where": H_WHERE["snowflake"],
        },
        "columns": H_SF_COLUMNS,
        "finish": H_FINISH,
    },
    "redshift": {
        "entry": {
            "bucket": H_BUCKET,
            "key": H_KEY,
            "file_format": "jsonl",
            "iam_role": "default",
            "where": H_WHERE["redshift"],
        },
        "columns": H_COLUMNS,
    },
    "bigquery": {
        "entry": {
            "bucket": H_BUCKET,
            "key": H_KEY,
            "file_format": "csv",
            "connection": "analytics.aws-us-east-1.s3_exports",
            "where": H_WHERE["bigquery"],
            "csv_delimiter": "\\t",
        },
        "columns": H_COLUMNS,
    },
    "databricks": {
        "entry": {
            "bucket": H_BUCKET,
            "key": H_KEY,
            "file_format": "parquet",
            "partition_cols": ["day"],
            "mode": "overwrite_partitions",
            "where": H_WHERE["databricks"],
        },
        "columns": H_COLUMNS,
    },
    "spark": {
        "entry": {
            "bucket": H_BUCKET,
            "key": H_KEY,
            "file_format": "csv",
            "csv_delimiter": "'",
            "where": H_WHERE["spark"],
        },
        "columns": H_COLUMNS,
    },
    "athena": {
        "entry": {
            "bucket": H_BUCKET,
            "key": H_KEY,
            "file_format": "parquet",
            "partition_cols": ["day"],
            "where": H_WHERE["athena"],
        },
        "columns": H_COLUMNS,
    },
}
for _adapter, _case in HOSTILE.items():
    CASES[_adapter]["hostile"] = _case


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
            "Did you mean 'partition_cols'? The options on snowflake: access_key_id, bucket,",
        ),
        "unknown_option_of_another_adapter": (
            {**BASE, **SF, "max_partition": 8},
            "max_partition",
            "Did you mean 'max_partitions' (an option of duckdb)? The options on snowflake: ",
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
        "replace_partitioned": (
            {**BASE, "iam_role": "default", "partition_cols": ["day"]},
            "mode",
            "Use mode overwrite_partitions",
        ),
        "overwrite_partitions_without_partitions": (
            {**BASE, "iam_role": "default", "mode": "overwrite_partitions"},
            "mode",
            "Set partition_cols",
        ),
        "skip_if_exists": (
            {**BASE, "iam_role": "default", "mode": "skip_if_exists"},
            "mode",
            "UNLOAD cannot",
        ),
        "parquet_zstd": (
            {**BASE, "iam_role": "default", "compression": "zstd"},
            "compression",
            "snappy only",
        ),
        "no_role": (BASE, "iam_role", "is required"),
        "missing_partition_column": (
            {**BASE, "iam_role": "default", "mode": "append", "partition_cols": ["month"]},
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
        # EXPORT DATA: the uri takes exactly one '*' wildcard.
        "key_with_star": (
            {**BASE, "connection": "p.aws-us-east-1.c", "key": "exports/*/"},
            "key",
            "Choose a key without '*'",
        ),
        # BigQuery Omni: exports to S3 go through a connection in an AWS region.
        "connection_not_in_aws": (
            {**BASE, "connection": "p.us.c"},
            "connection",
            "<project>.<aws-region>.<connection>",
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
        "csv_is_textfile": (
            {**BASE, "file_format": "csv", "compression": "gzip", "csv_header": False},
            "file_format",
            "Use file_format parquet or jsonl",
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
    # Snowflake's partition expressions nest one REPLACE per escaped character.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
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
        if "The options on" in message:  # this adapter's options, none of another's
            names = message.split(f"The options on {adapter}: ")[1].split("\n")[0]
            listed = set(names.strip().split(", "))
            assert listed == spec.supported_by(adapter), (name, message)


# --- Literals decoded by each warehouse's own rules -------------------------------

BACKSLASH_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t"}


def _decode_body(body: str, dialect: str) -> str:
    """One literal's text between its quotes, decoded as the warehouse reads it."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "'":
            # Only a doubled quote may stand inside (Snowflake, Redshift, Athena).
            assert body[i + 1 : i + 2] == "'", (dialect, body)
            assert dialect in ("snowflake", "redshift", "athena"), (dialect, body)
            out.append("'")
            i += 2
        elif ch == "\\" and dialect in ("snowflake", "bigquery", "spark", "databricks"):
            nxt = body[i + 1]
            if nxt == "u":
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
            else:
                out.append(BACKSLASH_ESCAPES[nxt])
                i += 2
        elif ch == "\\" and dialect == "redshift":
            assert body[i + 1] == "\\", (dialect, body)
            out.append("\\")
            i += 2
        else:
            assert dialect != "bigquery" or ch not in "\n\r", body
            out.append(ch)
            i += 1
    return "".join(out)


def literals(sql: str, dialect: str) -> list[str]:
    """Every string literal of a statement, decoded; quoted identifiers are skipped."""
    found: list[str] = []
    backslash = dialect in ("snowflake", "bigquery", "spark", "databricks")
    i = 0
    while i < len(sql):
        ch = sql[i]
        if sql.startswith("/*", i):
            i = sql.index("*/", i) + 2
        elif sql.startswith("$$", i) and dialect == "snowflake":
            end = sql.index("$$", i + 2)
            found.append(sql[i + 2 : end])
            i = end + 2
        elif ch in '"`' and not (ch == '"' and dialect in ("bigquery", "spark", "databricks")):
            j = i + 1
            while True:
                if sql[j] == "\\" and dialect == "bigquery" and ch == "`":
                    j += 2
                    continue
                if sql[j] == ch:
                    if sql[j + 1 : j + 2] == ch and dialect != "bigquery":
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif ch == "'":
            j = i + 1
            while True:
                if sql[j] == "\\" and (backslash or dialect == "redshift"):
                    j += 2
                    continue
                if sql[j] == "'":
                    if sql[j + 1 : j + 2] == "'" and dialect in ("snowflake", "redshift", "athena"):
                        j += 2
                        continue
                    break
                j += 1
            found.append(_decode_body(sql[i + 1 : j], dialect))
            i = j + 1
        else:
            i += 1
    return found


def test_the_literal_decoder_reads_what_the_rules_say() -> None:
    assert literals("x = 'it''s' and y = 'a\\\\b'", "redshift") == ["it's", "a\\b"]
    assert literals("x = 'it\\'s \\\\ \\u000B'", "snowflake") == ["it's \\ \x0b"]
    assert literals("`a\\`b` = 'C:\\\\'", "bigquery") == ["C:\\"]
    assert literals("\"it's\" = 'a\\b'", "athena") == ["a\\b"]


def _hostile_expectations(adapter: str, steps: list[dict[str, Any]]) -> None:
    run = "20240501T120000Z-0a1b2c3d"
    stage = "@analytics.exports.lake_stage/"
    where = H_WHERE[adapter]
    seen: set[str] = set()
    for step in steps:
        sql = step["sql"]
        decoded = literals(sql, adapter)
        sqlglot.tokenize(sql, read=DIALECTS[adapter])
        if adapter == "redshift" and step["name"] == "unload":
            query = decoded[0]
            assert query.endswith(f" WHERE ({where})"), query
            assert '"select"' in query and '"it\'s ""x"""' in query
            sqlglot.tokenize(query, read="redshift")
            # JSON booleans: a SUPER true/false, not Redshift's t/f text.
            flag = "JSON_PARSE(CASE WHEN \"flag\" THEN 'true' WHEN NOT \"flag\" THEN 'false' END)"
            assert flag in query, query
            assert "CLEANPATH" in sql.splitlines()
            assert H_DEST in decoded
            seen.add("to")
        elif step["name"] == "unload":
            assert f" WHERE ({where})" in sql, sql
        scratch = adapter in ("spark", "databricks")
        if adapter != "redshift" and step["name"] == ("create_scratch" if scratch else "unload"):
            target = {
                "snowflake": stage + H_KEY,
                "bigquery": f"{H_DEST}{run}/part-*.csv",
                "databricks": H_DEST,
                "spark": H_DEST,
                "athena": f"{H_DEST}{run}/",
            }[adapter]
            assert target in decoded, (target, decoded)
            seen.add("to")
        if adapter == "snowflake" and step["name"] == "list":
            assert decoded == [stage + H_KEY]
        if adapter == "snowflake" and step["name"] == "manifest":
            assert stage + H_KEY + "_manifest.json" in decoded
        if adapter == "snowflake" and step["name"] == "remove":
            seen.add(decoded[0])
    assert "to" in seen
    if adapter == "snowflake":
        for folder in H_OLD_FOLDERS:
            assert f"{stage}{H_KEY}{folder}data_{H_OLD}_" in seen, (folder, seen)


def test_hostile_values_decode_back_in_every_statement(
    rendered: tuple[str, dict[str, Any]],
) -> None:
    adapter, out = rendered
    _hostile_expectations(adapter, out["plans"]["hostile"])
    # Every statement of every case tokenizes in its dialect, and its literals close.
    for steps in out["plans"].values():
        for step in steps:
            sqlglot.tokenize(step["sql"], read=DIALECTS[adapter])
            literals(step["sql"], adapter)


def test_snowflake_folder_values_are_escaped_as_the_duckdb_export_escapes_them(
    rendered: tuple[str, dict[str, Any]],
) -> None:
    """The PARTITION BY expression of a text column, run by DuckDB (sqlglot
    translates it), gives the folder value dbt_s3_export.encoding.partitioning gives."""
    adapter, out = rendered
    if adapter != "snowflake":
        pytest.skip("Snowflake builds its folder names in SQL")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    unload = next(s for s in out["plans"]["hostile"] if s["name"] == "unload")["sql"]
    line = next(x for x in unload.splitlines() if x.startswith("PARTITION BY ("))
    tree = sqlglot.parse_one("SELECT " + line[len("PARTITION BY ") :], read="snowflake")
    # The name= segment (the other, ts=, is a timestamp).
    name_value = next(c for c in tree.find_all(exp.Coalesce) if "'name'" in c.sql("snowflake"))

    def to_column(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Cast) and "'name'" in node.this.sql("snowflake"):
            return exp.column("v")
        return node

    expression = name_value.transform(to_column).sql("duckdb")
    values = [
        "it's here",
        "a/b=c?d#e%f",
        'q"uo\\te',
        "ünï côdé",
        "tab\tline\nbreak\x01\x7f",
        "2024-01-01 00:00:00.000",
        "~-._ok",
        NULL_SEGMENT,
        None,
    ]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    got = dict(con.execute(f"SELECT i, {expression} FROM t").fetchall())
    for i, value in enumerate(values):
        assert got[i] == (NULL_SEGMENT if value is None else encode_segment(value)), value


# Option combinations each vendor's reference page rejects: never in a statement.
# (regex that must not match the statement, why)
NEVER_RENDERED: dict[str, list[tuple[str, str]]] = {
    "snowflake": [
        (
            r"(?s)SINGLE = TRUE.*PARTITION BY|PARTITION BY.*SINGLE = TRUE",
            "PARTITION BY with SINGLE",
        ),
        (
            r"(?s)INCLUDE_QUERY_ID = TRUE.*(SINGLE|OVERWRITE) = TRUE",
            "INCLUDE_QUERY_ID with SINGLE/OVERWRITE",
        ),
        (r"(?s)TYPE = JSON.*HEADER = ", "HEADER with JSON"),
        (r"COPY INTO @", "an unquoted stage path"),
        (r"(?m)^(LIST|REMOVE) @", "an unquoted stage path"),
    ],
    "redshift": [
        (
            r"(?s)CLEANPATH.*ALLOWOVERWRITE|ALLOWOVERWRITE.*CLEANPATH",
            "CLEANPATH with ALLOWOVERWRITE",
        ),
        (
            r"(?s)FORMAT AS PARQUET.*\n(HEADER|DELIMITER|GZIP|ZSTD|BZIP2|ADDQUOTES|ESCAPE)\b",
            "text options with PARQUET",
        ),
        (r"(?s)FORMAT AS JSON.*\n(HEADER|DELIMITER|ADDQUOTES|ESCAPE)\b", "text options with JSON"),
        (r"(?s)MANIFEST.*\nPARALLEL OFF", "nothing of the kind is rendered"),
    ],
    "bigquery": [
        (
            r"(?s)format = 'PARQUET'.*header =|format = 'JSON'.*header =",
            "header with a non-CSV format",
        ),
        (
            r"(?s)format = 'JSON'.*compression = '(SNAPPY|ZSTD)'",
            "JSON compressed with other than GZIP",
        ),
        (r"uri = '[^*']*\*[^']*\*", "more than one wildcard"),
    ],
    "databricks": [(r"(?m)^DROP TABLE.*\n*(?s:.*)^CREATE TABLE", "a drop before the create")],
    "spark": [(r"(?m)^DROP TABLE.*\n*(?s:.*)^CREATE TABLE", "a drop before the create")],
    "athena": [
        (r"format = 'TEXTFILE'", "TEXTFILE (no quoting, NULL as \\N)"),
        (r"compression = 'NONE'", "uncompressed text"),
    ],
}


def test_combinations_the_vendor_rejects_are_never_rendered(
    rendered: tuple[str, dict[str, Any]],
) -> None:
    adapter, out = rendered
    for name, steps in out["plans"].items():
        whole = "\n".join(step["sql"] for step in steps)
        for pattern, why in NEVER_RENDERED[adapter]:
            for step in steps:
                assert not re.search(pattern, step["sql"]), (name, step["name"], why)
        if adapter in ("spark", "databricks"):
            assert not re.search(r"(?s)DROP TABLE.*CREATE TABLE", whole), name
        if adapter == "redshift":
            sizes = [int(m) for m in re.findall(r"MAXFILESIZE AS (\d+) MB", whole)]
            assert all(5 <= size <= 6200 for size in sizes), name
        if adapter == "bigquery":
            uris = [v for v in literals(whole, adapter) if v.startswith("s3://")]
            assert all(uri.count("*") == 1 for uri in uris), name


def test_snowflake_timestamps_in_folder_names_read_as_the_duckdb_export_writes_them(
    rendered: tuple[str, dict[str, Any]],
) -> None:
    """TO_VARCHAR(ts, 'YYYY-MM-DD HH24:MI:SS.FF9') with the rendered trim gives
    the text dbt_s3_export.encoding.partitioning gives (Arrow's, trailing zeros cut)."""
    adapter, out = rendered
    if adapter != "snowflake":
        pytest.skip("Snowflake builds its folder names in SQL")
    unload = next(s for s in out["plans"]["hostile"] if s["name"] == "unload")["sql"]
    assert (
        "TO_VARCHAR(GET(\"S3_EXPORT_ROW\", 'ts')::TIMESTAMP_NTZ, 'YYYY-MM-DD HH24:MI:SS.FF9')"
        in unload
    )
    found = re.search(r"'YYYY-MM-DD HH24:MI:SS\.FF9'\), ('(?:[^'\\]|\\.)*'), ''\)", unload)
    assert found, unload
    (trim,) = literals(found[1], "snowflake")
    for nanos in (0, 500_000_000, 120_000_000, 123_456_789, 10, 100_000):
        for seconds in (0, 10, 59):
            stamp = pa.array([datetime(2024, 1, 1, 0, 0, seconds)], pa.timestamp("ns"))
            stamp = pc.add(stamp, pa.scalar(nanos, pa.duration("ns")))
            ff9 = f"2024-01-01 00:00:{seconds:02d}.{nanos:09d}"
            assert re.sub(trim, "", ff9) == value_text(stamp, 0), (ff9, value_text(stamp, 0))
