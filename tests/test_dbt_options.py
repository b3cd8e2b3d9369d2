"""Options beyond the reference table, through real dbt commands against the S3 server."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from .support import DbtProject, export_meta, exported_model, list_keys, read_object

pytestmark = pytest.mark.dbt


def test_switches_shorthand_and_object_attributes(
    project: DbtProject, s3: Any, bucket: str
) -> None:
    project.model(
        "shorthand",
        exported_model(
            f"{{'to': 's3://{bucket}/short/hand.csv', 'file_format': 'csv'}}", "select 1 as a"
        ),
    )
    project.model(
        "switched_off",
        exported_model(
            export_meta(bucket, "off/off.csv", "csv", ", 'enabled': false"), "select 1 as a"
        ),
    )
    project.model(
        "templated_switch",
        exported_model(
            export_meta(bucket, "tmpl/t.csv", "csv", ", 'enabled': target.name == 'prod'"),
            "select 1 as a",
        ),
    )
    project.model("yaml_switch", "select 1 as a")
    project.file(
        "models/schema.yml",
        f"""
        version: 2
        models:
          - name: yaml_switch
            config:
              post_hook: "{{{{ dbt_s3_export.export_to_s3() }}}}"
              meta:
                s3_export:
                  bucket: {bucket}
                  key: tmpl/yaml.csv
                  file_format: csv
                  enabled: "{{{{ target.name == 'prod' }}}}"
        """,
    )
    attributes = (
        ", 'sse': 'AES256', 'storage_class': 'standard_ia', 'metadata': {'owner': 'data-team'},"
        " 'tags': {'team': 'data', 'pii': 'no'}, 'compression': 'gzip'"
    )
    project.model(
        "attributes",
        exported_model(export_meta(bucket, "attr/", "jsonl", attributes), "select 1 as a"),
    )
    output = project.dbt("run").output
    for name, key in (("templated_switch", "t.csv"), ("yaml_switch", "yaml.csv")):
        assert f"s3_export: {name} -> s3://{bucket}/tmpl/{key}: skipped (enabled: false)" in output
    keys = list_keys(s3, bucket)
    assert "short/hand.csv" in keys
    assert not [k for k in keys if k.startswith(("off/", "tmpl/"))]
    data_key = next(k for k in keys if k.startswith("attr/part-"))
    assert data_key.endswith(".jsonl.gz")
    head = s3.head_object(Bucket=bucket, Key=data_key)
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["Metadata"] == {"owner": "data-team"}
    assert head["ContentType"] == "application/gzip"
    tags = s3.get_object_tagging(Bucket=bucket, Key=data_key)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "data", "pii": "no"}
    # The manifest and the lease are written like the data (a bucket policy may demand SSE).
    for key in ("attr/_manifest.json", "attr/_lease.json"):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256", key
        assert head["StorageClass"] == "STANDARD_IA", key
        assert head["Metadata"] == {"owner": "data-team"}, key
    import gzip

    assert json.loads(gzip.decompress(read_object(s3, bucket, data_key))) == {"a": 1}

    # The command-line switch turns every export off.
    s3.delete_object(Bucket=bucket, Key="short/hand.csv")
    result = project.dbt("run", "--vars", "{dbt_s3_export_enabled: false}")
    # One line for the run (no on_run_end() here), not one per model.
    told = [line for line in result.output.splitlines() if "switched off by var" in line]
    assert len(told) == 1, result.output
    assert "this run exports nothing (first skipped: " in told[0]
    assert "set it to true, to export" in told[0]
    assert "short/hand.csv" not in list_keys(s3, bucket)


def test_switched_off_without_the_plugin_in_the_profile(project: DbtProject, bucket: str) -> None:
    """A profile without the plugin may switch exports off: the model runs, says it skipped."""
    project.model("no_plugin", exported_model(export_meta(bucket, "np/", "csv"), "select 1 as a"))
    path = project.root / "profiles.yml"
    profile = yaml.safe_load(path.read_text())
    del profile["export_test"]["outputs"]["dev"]["plugins"]
    path.write_text(yaml.safe_dump(profile))
    result = project.dbt("run", "--vars", "{dbt_s3_export_enabled: false}")
    assert "s3_export: no_plugin: skipped, var dbt_s3_export_enabled is false" in result.output


def test_shorthand_clash_is_an_error(project: DbtProject, bucket: str) -> None:
    project.model(
        "clash",
        exported_model(
            f"{{'to': 's3://{bucket}/a.csv', 'bucket': 'other-bucket', 'file_format': 'csv'}}",
            "select 1 as a",
        ),
    )
    result = project.dbt("run", check=False)
    assert "option 'bucket': is 'other-bucket' but 'to'" in result.output


def test_run_operation_exports_a_relation_a_model_or_a_source(
    project: DbtProject, s3: Any, bucket: str
) -> None:
    project.model(
        "orders",
        exported_model(
            export_meta(bucket, "from_meta/orders.parquet", "parquet"),
            "select range as id, range * 2 as amount from range(4)",
            hook="tags=['no_hook']",
        ),
    )
    project.file(
        "models/sources.yml",
        """
        version: 2
        sources:
          - name: raw
            schema: main
            tables:
              - name: orders
        """,
    )
    project.dbt("run")
    assert list_keys(s3, bucket) == []  # no hook on this model
    options = f"{{bucket: {bucket}, key: adhoc/orders.csv, file_format: csv}}"
    project.dbt(
        "run-operation",
        "dbt_s3_export.export_relation",
        "--args",
        f"{{relation: main.orders, s3_export: {options}}}",
    )
    project.dbt("run-operation", "dbt_s3_export.export_relation", "--args", "{model: orders}")
    src = f"{{source: [raw, orders], s3_export: {{to: 's3://{bucket}/src/', file_format: json}}}}"
    result = project.dbt("run-operation", "dbt_s3_export.export_relation", "--args", src)
    assert "s3_export: raw.orders -> s3://" in result.output
    keys = list_keys(s3, bucket)
    assert "adhoc/orders.csv" in keys and "from_meta/orders.parquet" in keys
    assert read_object(s3, bucket, "adhoc/orders.csv").decode().split()[1:] == [
        "0,0",
        "1,2",
        "2,4",
        "3,6",
    ]
    table = pq.read_table(io.BytesIO(read_object(s3, bucket, "from_meta/orders.parquet")))
    assert table.num_rows == 4
    src_file = next(k for k in keys if k.startswith("src/part-"))
    assert len(json.loads(read_object(s3, bucket, src_file))) == 4

    bad = project.dbt(
        "run-operation",
        "dbt_s3_export.export_relation",
        "--args",
        "{relation: orders}",
        check=False,
    )
    assert "relation must be schema.table or database.schema.table, got 'orders'" in bad.output


def test_where_filter_and_incremental_batch(project: DbtProject, s3: Any, bucket: str) -> None:
    """Three runs of an incremental model: `rows: batch` exports only each run's new rows."""
    incremental_sql = """
        select range as id, 'run_' || {{ var('run', 1) }} as loaded_in
        from range({{ (var('run', 1) - 1) * 3 }}, {{ var('run', 1) * 3 }})
    """
    batch_meta = export_meta(bucket, "batch/run.csv", "csv", ", 'rows': 'batch'")
    where_meta = export_meta(bucket, "where/even.jsonl", "jsonl", ", 'where': 'id % 2 = 0'")
    project.model(
        "events",
        exported_model(
            f"[{batch_meta}, {where_meta}]", incremental_sql, materialized="incremental"
        ),
    )
    exported: list[list[str]] = []
    for run in (1, 2, 3):
        project.dbt("run", "--vars", f"{{run: {run}}}")
        text = read_object(s3, bucket, "batch/run.csv").decode()
        exported.append([",".join(row) for row in csv.reader(io.StringIO(text))][1:])
    assert exported == [
        ["0,run_1", "1,run_1", "2,run_1"],
        ["3,run_2", "4,run_2", "5,run_2"],
        ["6,run_3", "7,run_3", "8,run_3"],
    ]
    lines = read_object(s3, bucket, "where/even.jsonl").decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [0, 2, 4, 6, 8]

    project.model(
        "bad_filter",
        exported_model(
            export_meta(bucket, "x.csv", "csv", ", 'where': 'no_such_col > 1'"), "select 1 as a"
        ),
    )
    result = project.dbt("run", "--select", "bad_filter", check=False)
    assert "filtered by option 'where' ('no_such_col > 1')" in result.output
