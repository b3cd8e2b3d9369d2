"""Multipart files finish in the background while the next file is encoded."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from dbt_s3_export import ArrowSource, ExportConfig, ExportFailed, run_export
from dbt_s3_export.credentials import ClientCache, ConnectionSettings
from tests.support import S3Server


def _config(bucket: str, server: S3Server, **extra: Any) -> ExportConfig:
    return ExportConfig.parse(
        {
            "bucket": bucket,
            "key": "big/",
            "file_format": "csv",
            "partition_cols": ["p"],
            "endpoint_url": server.endpoint,
            "region": "us-east-1",
            "part_size_mb": 5,
            "max_concurrency": 2,
            **extra,
        }
    )


def test_multipart_files_of_several_partitions_land_whole(
    s3_server: S3Server, s3: Any, bucket: str
) -> None:
    n = 900_000  # about 12 MB of CSV per partition: three parts each
    table = pa.table(
        {
            "p": pa.array([i % 3 for i in range(n)], pa.int64()),
            "id": pa.array(range(n), pa.int64()),
            "text": pa.array([f"row-{i:012d}-padding-padding" for i in range(n)]),
        }
    )
    cfg = _config(bucket, s3_server)
    client = ClientCache().get(ConnectionSettings.of(cfg))
    result = run_export(cfg, ArrowSource(table), client, model="big")
    assert len(result.files) == 3
    seen = 0
    for f in result.files:
        head = s3.head_object(Bucket=bucket, Key=f.key)
        assert head["ContentLength"] == f.bytes and f.bytes > 5 * 1024 * 1024
        assert "-" in head["ETag"]  # a multipart upload
        body = s3.get_object(Bucket=bucket, Key=f.key)["Body"].read()
        got = pacsv.read_csv(io.BytesIO(body))
        assert got.num_rows == f.rows
        p = int(f.partition.split("=")[1].strip("/"))
        assert all(i % 3 == p for i in got.column("id").to_pylist())
        seen += got.num_rows
    assert seen == n
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_failed_completion_fails_the_export_and_leaves_no_upload(
    s3_server: S3Server, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 200_000
    table = pa.table(
        {
            "p": pa.array([0] * n, pa.int64()),
            "text": pa.array([f"row-{i:012d}-padding-padding-padding" for i in range(n)]),
        }
    )
    cfg = _config(bucket, s3_server)
    client = ClientCache().get(ConnectionSettings.of(cfg))

    def refuse(**kwargs: Any) -> None:
        raise RuntimeError("completion refused")

    monkeypatch.setattr(client, "complete_multipart_upload", refuse)
    with pytest.raises(ExportFailed, match="completion refused"):
        run_export(cfg, ArrowSource(table), client, model="big")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
