"""Helpers for tests that drive the export engine directly against an S3 endpoint."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.config import Config

from dbt_s3_export import ArrowSource, ExportConfig, ExportResult, RunContext, run_export
from dbt_s3_export.s3.credentials import ConnectionSettings

from .support import list_keys, read_object


def engine_client(endpoint: str, **config: Any) -> Any:
    """A client with the product's retry and timeout settings (``config`` overrides some)."""
    settings = ConnectionSettings(region="us-east-1", endpoint_url=endpoint)
    botocore_config = settings.botocore_config()
    if config:
        botocore_config = botocore_config.merge(Config(**config))
    return settings.session().client("s3", endpoint_url=endpoint, config=botocore_config)


def table(rows: int, *, tag: str, partitions: int = 1) -> pa.Table:
    """``rows`` rows spread over ``partitions`` values of ``p``; ``tag`` marks the run."""
    return pa.table(
        {
            "id": pa.array(range(rows), pa.int64()),
            "p": pa.array([i % partitions for i in range(rows)], pa.int64()),
            "v": pa.array([f"{tag}-{i}" for i in range(rows)], pa.string()),
        }
    )


def export(client: Any, bucket: str, key: str, data: pa.Table, **options: Any) -> ExportResult:
    cfg = ExportConfig.parse({"bucket": bucket, "key": key, "file_format": "parquet", **options})
    return run_export(cfg, ArrowSource(data), client, RunContext(model="m"))


def manifest(s3: Any, bucket: str, prefix: str) -> dict[str, Any]:
    return dict(json.loads(read_object(s3, bucket, prefix + "_manifest.json")))


def read_rows(s3: Any, bucket: str, keys: list[str]) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for key in keys:
        data = pq.read_table(pa.BufferReader(read_object(s3, bucket, key)))
        rows.extend(zip(*(data.column(c).to_pylist() for c in ("id", "v")), strict=True))
    return sorted(rows)


def expected_rows(data: pa.Table) -> list[tuple[Any, ...]]:
    return sorted(zip(data.column("id").to_pylist(), data.column("v").to_pylist(), strict=True))


def assert_export_is(
    s3: Any,
    bucket: str,
    prefix: str,
    data: pa.Table,
    *,
    others: Mapping[str, bytes] | None = None,
) -> dict[str, Any]:
    """The prefix holds exactly ``data`` as one complete generation, and nothing of ours else.

    ``others`` are objects that are not the export's; they must still be there, unchanged.
    """
    current = manifest(s3, bucket, prefix)
    listed = [f["key"] for f in current["files"]]
    assert read_rows(s3, bucket, listed) == expected_rows(data)
    others = others or {}
    keys = set(list_keys(s3, bucket, prefix))
    near = {k for k in others if k.startswith(prefix)}
    assert keys == {prefix + "_manifest.json", prefix + "_lease.json", *listed, *near}
    for key, body in others.items():
        assert read_object(s3, bucket, key) == body, key
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
    assert uploads == [], uploads
    if current["mode"] == "replace":
        assert all(current["generation"] in k.rsplit("/", 1)[-1] for k in listed)
    lease = json.loads(read_object(s3, bucket, prefix + "_lease.json"))
    # Dead runs swept already stay on record (their late files are still deleted).
    swept = lease["garbage"].pop("swept")
    assert (lease["state"], lease["garbage"]) == ("free", {"generations": [], "keys": []})
    assert all(set(entry) == {"generation", "at"} for entry in swept), swept
    return current
