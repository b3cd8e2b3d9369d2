"""ExportConfig.parse: every option checked before any I/O, with messages that say what to do."""

from __future__ import annotations

from typing import Any

import pytest

from dbt_s3_export.errors import ConfigError
from dbt_s3_export.options.config import ExportConfig

BASE = {"bucket": "my-output-bucket", "key": "orders/all_orders.parquet", "file_format": "parquet"}


def parse(**overrides: Any) -> ExportConfig:
    options = {**BASE, **overrides}
    return ExportConfig.parse(
        {k: v for k, v in options.items() if v is not None}, context="model 'orders' s3_export"
    )


def test_reference_basic_example_parses_with_defaults() -> None:
    cfg = parse(region="us-east-1")
    assert cfg.mode == "replace"
    assert cfg.region == "us-east-1"
    assert cfg.csv_delimiter == "," and cfg.csv_header is True
    assert not cfg.is_prefix
    assert cfg.destination == "s3://my-output-bucket/orders/all_orders.parquet"


def test_meta_overrides_profile_defaults() -> None:
    cfg = ExportConfig.parse(
        {**BASE, "region": "eu-west-1"},
        {"region": "us-east-1", "endpoint_url": "http://127.0.0.1:9000"},
    )
    assert cfg.region == "eu-west-1"
    assert cfg.endpoint_url == "http://127.0.0.1:9000"


def test_tab_delimiter_written_as_escape_sequence() -> None:
    cfg = parse(file_format="csv", key="events/", csv_delimiter="\\t")
    assert cfg.csv_delimiter == "\t"


@pytest.mark.parametrize(
    ("overrides", "option", "fragment"),
    [
        (
            {"file_format": "xlsx"},
            "file_format",
            "must be one of csv, parquet, json, jsonl, iceberg, delta, got 'xlsx'",
        ),
        ({"file_format": None}, "file_format", "is required but missing"),
        ({"bucket": None}, "bucket", "is required but missing"),
        ({"key": None}, "key", "is required but missing"),
        ({"bucket": "s3://my-output-bucket"}, "bucket", "must be a bare bucket name"),
        ({"bucket": "My_Bucket"}, "bucket", "is not a valid S3 bucket name"),
        ({"key": "s3://b/orders.parquet"}, "key", "must be a path inside the bucket"),
        ({"key": "/orders.parquet"}, "key", "must not start with '/'"),
        (
            {"key": "orders/all_orders.csv"},
            "key",
            "has a csv extension but file_format is 'parquet'",
        ),
        ({"key": "orders/all_orders"}, "key", "does not end with .parquet or .pq"),
        (
            {"partition_col": ["year"]},
            "partition_col",
            "unknown option. Did you mean 'partition_cols'?",
        ),
        ({"partition_cols": "year"}, "partition_cols", "must be a list of column names"),
        ({"partition_cols": ["year", "year"]}, "partition_cols", "names column 'year' twice"),
        ({"csv_header": "yes"}, "csv_header", "must be true or false"),
        ({"csv_delimiter": ";;"}, "csv_delimiter", "must be one ASCII character"),
        ({"csv_delimiter": "-"}, "csv_delimiter", "can occur in numbers"),
        ({"csv_delimiter": "\\"}, "csv_delimiter", "escape character"),
        ({"mode": "append_all"}, "mode", "must be one of replace"),
        ({"max_rows_per_file": 0, "key": "orders/"}, "max_rows_per_file", "must be at least 1"),
        ({"max_rows_per_file": 10}, "key", "names one object"),
        ({"endpoint_url": "127.0.0.1:9000"}, "endpoint_url", "must be an http:// or https:// URL"),
        ({"region": 5}, "region", "must be a string, got int 5"),
        ({"access_key_id": "AKIA"}, "secret_access_key", "is missing while access_key_id is set"),
        ({"compression": "zip"}, "compression", "must be one of"),
        ({"compression_level": 3}, "compression_level", "applies to parquet files with zstd"),
    ],
)
def test_bad_options_are_named_with_the_problem(
    overrides: dict[str, Any], option: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(**overrides)
    message = str(info.value)
    assert message.startswith(f"model 'orders' s3_export: option '{option}'")
    assert fragment in message


def test_secret_values_never_appear_in_messages() -> None:
    with pytest.raises(ConfigError) as info:
        parse(secret_access_key=12345678, access_key_id="AKIAEXAMPLE")
    assert "12345678" not in str(info.value)
    assert "***" in str(info.value)


def test_redacted_hides_credentials() -> None:
    cfg = parse(access_key_id="AKIAEXAMPLE", secret_access_key="s3cr3t-value")
    shown = cfg.redacted()
    assert shown["access_key_id"] == "***" and shown["secret_access_key"] == "***"
    assert "s3cr3t" not in repr(cfg)


@pytest.mark.parametrize(
    ("fmt", "key", "prefix", "extension"),
    [
        ("csv", "events/", True, ".csv"),
        ("json", "out/data.json", False, ".json"),
        ("jsonl", "out/data.ndjson", False, ".jsonl"),
        ("parquet", "lake/orders", True, ".parquet"),
    ],
)
def test_key_shapes(fmt: str, key: str, prefix: bool, extension: str) -> None:
    extra = {"partition_cols": ["p"]} if key == "lake/orders" else {}
    cfg = parse(file_format=fmt, key=key, **extra)
    assert cfg.is_prefix is prefix
    assert cfg.extension == extension
    if prefix:
        assert cfg.prefix.endswith("/")


def test_compressed_text_keys_take_the_suffix() -> None:
    cfg = parse(file_format="csv", key="out/data.csv.gz", compression="gzip")
    assert cfg.codec == "gzip"
    assert parse(file_format="jsonl", key="out/", compression="zstd").extension == ".jsonl.zst"
