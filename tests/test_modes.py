"""Every mode over several runs with changing data, read back from the S3 server."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pyarrow as pa
import pytest

from dbt_s3_export import ExportConfig, ExportFailed, RunContext, run_export
from dbt_s3_export.source.base import ArrowSource

from .engine import engine_client, expected_rows, export, manifest, read_rows, table
from .support import S3Server, list_keys, read_object


def tagged(ids: range, tag: str, partition: int) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(list(ids), pa.int64()),
            "p": pa.array([partition] * len(ids), pa.int64()),
            "v": pa.array([f"{tag}-{i}" for i in ids], pa.string()),
        }
    )


def data_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    return [
        k
        for k in list_keys(s3, bucket, prefix)
        if not k.endswith(("_manifest.json", "_lease.json"))
    ]


def test_append_keeps_every_run(s3: Any, bucket: str, s3_server: S3Server) -> None:
    client = engine_client(s3_server.endpoint)
    s3.put_object(Bucket=bucket, Key="log/notes.txt", Body=b"not ours")
    runs = [table(5, tag=f"run{i}") for i in range(3)]
    for i, data in enumerate(runs):
        result = export(client, bucket, "log/", data, mode="append")
        assert result.removed == 0
        current = manifest(s3, bucket, "log/")
        assert current["mode"] == "append"
        assert len(current["files"]) == i + 1
        assert current["run"] == {"rows": 5, "bytes": result.bytes, "files": 1}
    listed = [f["key"] for f in manifest(s3, bucket, "log/")["files"]]
    assert read_rows(s3, bucket, listed) == sorted(r for d in runs for r in expected_rows(d))
    assert set(data_keys(s3, bucket, "log/")) == {*listed, "log/notes.txt"}
    assert manifest(s3, bucket, "log/")["rows"] == 15


def test_overwrite_partitions_replaces_only_what_the_run_writes(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    client = engine_client(s3_server.endpoint)
    opts = {"partition_cols": ["p"], "include_partition_cols": True, "mode": "overwrite_partitions"}
    first = pa.concat_tables([tagged(range(i * 10, i * 10 + 3), "one", i) for i in range(5)])
    export(client, bucket, "daily/", first, **opts)
    second = pa.concat_tables(
        [tagged(range(100, 102), "two", 1), tagged(range(200, 201), "two", 3)]
    )
    result = export(client, bucket, "daily/", second, **opts)
    assert result.removed == 2
    third = pa.concat_tables(
        [tagged(range(300, 304), "three", 4), tagged(range(400, 401), "three", 5)]
    )
    export(client, bucket, "daily/", third, **opts)

    expected: dict[int, pa.Table] = {
        0: tagged(range(0, 3), "one", 0),
        1: tagged(range(100, 102), "two", 1),
        2: tagged(range(20, 23), "one", 2),
        3: tagged(range(200, 201), "two", 3),
        4: tagged(range(300, 304), "three", 4),
        5: tagged(range(400, 401), "three", 5),
    }
    current = manifest(s3, bucket, "daily/")
    listed = [f["key"] for f in current["files"]]
    assert set(data_keys(s3, bucket, "daily/")) == set(listed)  # nothing stale left
    assert read_rows(s3, bucket, listed) == sorted(
        r for t in expected.values() for r in expected_rows(t)
    )
    assert sorted(f["partition"] for f in current["files"]) == [f"p={p}/" for p in range(6)]
    assert current["rows"] == sum(t.num_rows for t in expected.values())


@pytest.mark.parametrize("key", ["once/", "once/orders.parquet"])
def test_error_and_skip_if_exists(s3: Any, bucket: str, s3_server: S3Server, key: str) -> None:
    client = engine_client(s3_server.endpoint)
    first = table(3, tag="first")
    export(client, bucket, key, first, mode="error_if_exists")
    before = {k: read_object(s3, bucket, k) for k in list_keys(s3, bucket)}

    with pytest.raises(ExportFailed) as info:
        export(client, bucket, key, table(4, tag="second"), mode="error_if_exists")
    assert "mode is error_if_exists and s3://" in str(info.value)
    assert "already exists" in str(info.value)

    result = export(client, bucket, key, table(4, tag="second"), mode="skip_if_exists")
    assert result.skipped and result.files == []
    assert "skipped (s3://" in result.summary()
    assert {k: read_object(s3, bucket, k) for k in list_keys(s3, bucket)} == before


def test_filename_template_names_files_and_replace_still_owns_them(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    client = engine_client(s3_server.endpoint)
    template = "{model}_{date}_{run_id}_{part}"
    opts = {"filename_template": template, "max_rows_per_file": 2}
    export(client, bucket, "named/", table(5, tag="one"), **opts)
    first = data_keys(s3, bucket, "named/")
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert len(first) == 3
    for n, key in enumerate(sorted(first), start=1):
        assert re.fullmatch(rf"named/m_{today}_[0-9a-f]{{24}}_{n:05d}\.parquet", key), key
    export(client, bucket, "named/", table(1, tag="two"), **opts)
    second = data_keys(s3, bucket, "named/")
    assert len(second) == 1 and not set(second) & set(first)
    assert read_rows(s3, bucket, second) == expected_rows(table(1, tag="two"))


def test_single_object_manifest_on_request(s3: Any, bucket: str, s3_server: S3Server) -> None:
    client = engine_client(s3_server.endpoint)
    cfg = ExportConfig.parse(
        {"bucket": bucket, "key": "one/orders.csv", "file_format": "csv", "manifest": True}
    )
    run_export(
        cfg,
        ArrowSource(table(4, tag="x")),
        client,
        RunContext(model="orders", invocation_id="abc-123"),
    )
    doc = json.loads(read_object(s3, bucket, "one/orders.csv.manifest.json"))
    assert doc["files"][0]["key"] == "one/orders.csv"
    assert (doc["rows"], doc["invocation_id"], doc["model"]) == (4, "abc-123", "orders")
    assert len(doc["generation"]) == 24
