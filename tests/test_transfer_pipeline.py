"""One PUT or a multipart upload per file, finished in the background while the next is encoded."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from dbt_s3_export import ArrowSource, ExportConfig, ExportFailed, RunContext, run_export
from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings
from dbt_s3_export.s3.transfer import ByteBudget
from tests.support import S3Server, list_keys


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
    n = 1_800_000  # about 20 MB of CSV per partition: over 3 parts of 5 MiB, so multipart
    table = pa.table(
        {
            "p": pa.array([i % 3 for i in range(n)], pa.int64()),
            "id": pa.array(range(n), pa.int64()),
            "text": pa.array([f"row-{i:012d}-padding-padding" for i in range(n)]),
        }
    )
    cfg = _config(bucket, s3_server)
    client = ClientCache().get(ConnectionSettings.of(cfg))
    result = run_export(cfg, ArrowSource(table), client, RunContext(model="big"))
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


def test_files_up_to_three_parts_go_up_in_one_put(
    s3_server: S3Server, s3: Any, bucket: str
) -> None:
    n = 900_000  # about 10 MB of CSV per partition: over one 5 MiB part, under three
    table = pa.table(
        {
            "p": pa.array([i % 3 for i in range(n)], pa.int64()),
            "text": pa.array([f"row-{i:012d}-padding-padding" for i in range(n)]),
        }
    )
    cfg = _config(bucket, s3_server)
    client = ClientCache().get(ConnectionSettings.of(cfg))
    result = run_export(cfg, ArrowSource(table), client, RunContext(model="mid"))
    assert len(result.files) == 3
    # Exports leave Arrow on jemalloc, which hands freed memory back (where pyarrow has it).
    if "jemalloc" in pa.supported_memory_backends():
        assert pa.default_memory_pool().backend_name == "jemalloc"
    for f in result.files:
        head = s3.head_object(Bucket=bucket, Key=f.key)
        assert head["ContentLength"] == f.bytes and f.bytes > 5 * 1024 * 1024
        assert "-" not in head["ETag"]  # a single PUT


def test_the_byte_budget_bounds_what_is_held_and_never_waits_on_its_holder() -> None:
    budget = ByteBudget(100)
    assert budget.take(60) == 60
    done = threading.Event()

    def second() -> None:
        budget.give(budget.take(50))  # waits for the first to give back
        done.set()

    t = threading.Thread(target=second)
    t.start()
    assert not done.wait(0.2)
    budget.give(60)
    assert done.wait(5)
    t.join()
    assert budget.take(1_000) == 100  # more than the total: takes it all
    # A holder never waits on itself: with 100 held it may go over, taking nothing.
    assert budget.take(30, held=100) == 0
    budget.give(100)
    assert budget.take(30, held=90) == 10


def test_a_failed_completion_fails_the_export_and_leaves_no_upload(
    s3_server: S3Server, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 600_000  # about 24 MB: over 3 parts of 5 MiB, a multipart upload
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
        run_export(cfg, ArrowSource(table), client, RunContext(model="big"))
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    # Only the folder's lease is left, free again.
    assert list_keys(s3, bucket) == ["big/_lease.json"]
    lease = json.loads(s3.get_object(Bucket=bucket, Key="big/_lease.json")["Body"].read())
    assert lease["state"] == "free"
    assert lease["garbage"] == {"generations": [], "keys": [], "swept": []}
