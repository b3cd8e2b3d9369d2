"""Compression: Parquet codecs with levels, gzip/zstd text files with matching names and types."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dbt_s3_export import ArrowSource, ExportConfig, RunContext, run_export

from .engine import engine_client, table
from .support import S3Server, list_keys, read_object


def run(client: Any, bucket: str, data: pa.Table, **options: Any) -> list[str]:
    cfg = ExportConfig.parse({"bucket": bucket, **options})
    result = run_export(cfg, ArrowSource(data), client, RunContext(model="m"))
    return [f.key for f in result.files]


@pytest.mark.parametrize(
    ("codec", "level", "expected"),
    [
        ("zstd", 9, "ZSTD"),
        ("gzip", None, "GZIP"),
        ("none", None, "UNCOMPRESSED"),
        (None, None, "SNAPPY"),
    ],
)
def test_parquet_codecs(
    s3: Any, bucket: str, s3_server: S3Server, codec: str | None, level: int | None, expected: str
) -> None:
    client = engine_client(s3_server.endpoint)
    options: dict[str, Any] = {"key": "pq/data.parquet", "file_format": "parquet"}
    if codec:
        options["compression"] = codec
    if level is not None:
        options["compression_level"] = level
    data = table(1000, tag="c")
    run(client, bucket, data, **options)
    body = read_object(s3, bucket, "pq/data.parquet")
    meta = pq.ParquetFile(io.BytesIO(body)).metadata
    assert meta.row_group(0).column(0).compression == expected
    assert pq.read_table(io.BytesIO(body)).equals(data)


def test_gzip_and_zstd_text_files(s3: Any, bucket: str, s3_server: S3Server) -> None:
    client = engine_client(s3_server.endpoint)
    data = table(50, tag="t")
    run(client, bucket, data, key="gz/data.csv.gz", file_format="csv", compression="gzip")
    keys = run(client, bucket, data, key="zst/", file_format="jsonl", compression="zstd")
    assert keys[0].endswith(".jsonl.zst")
    assert list_keys(s3, bucket, "zst/") == ["zst/_lease.json", "zst/_manifest.json", keys[0]]

    text = gzip.decompress(read_object(s3, bucket, "gz/data.csv.gz")).decode()
    assert text.splitlines()[1].replace('"', "") == "0,0,t-0"
    head = s3.head_object(Bucket=bucket, Key="gz/data.csv.gz")
    assert head["ContentType"] == "application/gzip" and "ContentEncoding" not in head

    raw = pa.BufferReader(read_object(s3, bucket, keys[0]))
    lines = pa.CompressedInputStream(raw, "zstd").read().decode().splitlines()
    assert [json.loads(line)["v"] for line in lines] == [f"t-{i}" for i in range(50)]
    assert s3.head_object(Bucket=bucket, Key=keys[0])["ContentType"] == "application/zstd"
