"""The formats table: what config accepts, what files are named, how objects are served."""

from __future__ import annotations

import pytest

from dbt_s3_export import ExportConfig
from dbt_s3_export.options.formats import CONTENT_TYPES, FORMATS, content_type, file_extension


@pytest.mark.parametrize(
    ("key", "file_format", "expected"),
    [
        ("out/orders.csv", "csv", "text/csv"),
        ("out/orders.TSV", "csv", "text/tab-separated-values"),
        ("out/orders.txt", "csv", "text/plain"),
        ("out/orders.csv.gz", "csv", "application/gzip"),
        ("out/orders.tsv.zst", "csv", "application/zstd"),
        ("out/orders.parquet", "parquet", "application/vnd.apache.parquet"),
        ("out/orders.pq", "parquet", "application/vnd.apache.parquet"),
        ("out/orders.json", "json", "application/json"),
        ("out/orders.jsonl", "jsonl", "application/x-ndjson"),
        ("out/orders.ndjson.gz", "jsonl", "application/gzip"),
        ("out/v1.2/part-00001", "jsonl", "application/x-ndjson"),  # no known extension
    ],
)
def test_content_type_by_extension(key: str, file_format: str, expected: str) -> None:
    assert content_type(key, file_format) == expected


def test_every_extension_and_codec_gives_a_valid_key_and_its_own_content_type() -> None:
    """config accepts each extension and codec of the table; each maps to a media type.

    Table formats (Iceberg, Delta) are written as tables, not to keys: tests/test_tables.py.
    """
    for fmt in (f for f in FORMATS.values() if not f.table):
        for ext in fmt.extensions:
            cfg = ExportConfig.parse({"bucket": "bkt", "key": f"k{ext}", "file_format": fmt.name})
            assert cfg.codec == fmt.default_codec
            assert content_type(cfg.key, fmt.name) == CONTENT_TYPES[ext]
        for codec in fmt.codecs:
            ext = file_extension(fmt.name, codec)
            options = {"bucket": "bkt", "key": f"k{ext}", "file_format": fmt.name}
            cfg = ExportConfig.parse({**options, "compression": codec})
            assert cfg.extension == ext
            whole_file = fmt.whole_file_codecs and codec != "none"
            expected = f"application/{codec}" if whole_file else CONTENT_TYPES[fmt.extensions[0]]
            assert content_type(cfg.key, fmt.name) == expected
