"""Empty-string partition values: refused by default, or written in a layout readers open.

Spark (local, pyspark; the ``spark`` fixture in conftest.py) reads the layouts;
it reads the partitioned type matrix in test_types.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export import ArrowSource, ExportConfig, PartitionError, run_export

from .support import S3Server, list_keys, only_on_first_server, read_object, s3_client


def _empty_string_table() -> pa.Table:
    return pa.table({"p": ["", "x", None], "v": [1, 2, 3]})


def test_empty_string_partitions_are_refused_by_default_and_nothing_is_published(
    s3_server: S3Server, tmp_path: Path
) -> None:
    s3 = s3_client(s3_server.endpoint)
    s3.create_bucket(Bucket="empty-parts")
    base = {"bucket": "empty-parts", "key": "e/", "file_format": "parquet", "partition_cols": ["p"]}
    run_export(ExportConfig.parse(base), ArrowSource(pa.table({"p": ["x"], "v": [0]})), s3)
    before = {
        k: read_object(s3, "empty-parts", k)
        for k in list_keys(s3, "empty-parts")
        if "_lease" not in k
    }
    with pytest.raises(PartitionError) as failure:
        run_export(ExportConfig.parse(base), ArrowSource(_empty_string_table()), s3)
    message = str(failure.value)
    assert "partition column 'p' holds the empty string" in message
    assert "empty_string_partitions: null" in message and "nullif(p, '')" in message
    assert message.endswith("The previous export is unchanged"), message
    after = {
        k: read_object(s3, "empty-parts", k)
        for k in list_keys(s3, "empty-parts")
        if "_lease" not in k
    }
    assert after == before


@pytest.mark.parametrize("empty", ["null", "keep"])
def test_empty_string_partition_layouts(
    spark: Any, s3_server: S3Server, tmp_path: Path, empty: str, request: pytest.FixtureRequest
) -> None:
    """``null``: every reader, Spark included, reads NULL. ``keep``: ``p=``, which Spark refuses."""
    only_on_first_server(request, s3_server, "Spark reads local copies of the files")
    s3 = s3_client(s3_server.endpoint)
    bucket = f"empty-{empty}"
    s3.create_bucket(Bucket=bucket)
    cfg = ExportConfig.parse(
        {
            "bucket": bucket,
            "key": "e/",
            "file_format": "parquet",
            "partition_cols": ["p"],
            "empty_string_partitions": empty,
        }
    )
    run_export(cfg, ArrowSource(_empty_string_table()), s3)
    for key in list_keys(s3, bucket, "e/"):
        if not key.rsplit("/", 1)[-1].startswith("_"):  # data files, not _manifest/_lease
            path = tmp_path / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(read_object(s3, bucket, key))
    folders = sorted(p.parent.name for p in (tmp_path / "e").rglob("*.parquet"))
    with duckdb.connect() as con:
        read = con.sql(
            f"SELECT v, p FROM read_parquet('{tmp_path}/e/*/*.parquet', hive_partitioning = true,"
            " hive_types = {'p': 'VARCHAR'}) ORDER BY v"
        ).fetchall()
    if empty == "null":
        assert folders == ["p=__HIVE_DEFAULT_PARTITION__", "p=__HIVE_DEFAULT_PARTITION__", "p=x"]
        assert read == [(1, None), (2, "x"), (3, None)]
        rows = spark.read.parquet(str(tmp_path / "e")).orderBy("v").collect()
        assert [(r.v, r.p) for r in rows] == [(1, None), (2, "x"), (3, None)]
    else:
        assert folders == ["p=", "p=__HIVE_DEFAULT_PARTITION__", "p=x"]
        assert read == [(1, ""), (2, "x"), (3, None)]
        with pytest.raises(Exception, match=r"(?i)empty partition column value"):
            spark.read.parquet(str(tmp_path / "e")).collect()
