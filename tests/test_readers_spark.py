"""Spark (local, pyspark) reads the partitioned type matrix and every empty-string layout.

One SparkSession serves the module. Spark's own limits are named in SPARK_LIMITS
and in docs/types.md; every other value must read back exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export import ArrowSource, ExportConfig, PartitionError, run_export

from .support import S3Server, list_keys, only_on_first_server, read_object, s3_client
from .test_types import _compare, exported, model  # noqa: F401  (module fixtures)
from .type_matrix import COLUMNS

pyspark = pytest.importorskip("pyspark")

# Spark's own limits. Parquet: no time of day (TIME), and TIMESTAMP(NANOS) only as a
# long (spark.sql.legacy.parquet.nanosAsLong). CSV: an empty string ("") reads as
# NULL, like an empty field, so the empty VARCHAR and the empty BLOB come back NULL.
SPARK_LIMITS = {"parquet": ("ts_ns", "tstz_ns"), "csv": ("s", "bl")}


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", "python3")
    session = (
        SparkSession.builder.master("local[1]")
        .appName("dbt-s3-export-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .config("spark.sql.timeType.enabled", "true")
        .getOrCreate()
    )
    yield session
    session.stop()


def _spark_schema(spark: Any, folder: Path, fmt: str) -> Any:
    """The columns Spark can read, with part as a string partition column."""
    from pyspark.sql.types import StringType, StructField, StructType

    if fmt == "csv":
        names = ["id", *(n for n, _, _ in COLUMNS)]
        return StructType([StructField(n, StringType()) for n in [*names, "part"]])
    inferred = spark.read.parquet(str(folder)).schema
    fields = [f for f in inferred.fields if f.name not in (*SPARK_LIMITS["parquet"], "part")]
    return StructType([*fields, StructField("part", StringType())])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_spark_reads_partitioned_files_back(
    spark: Any,
    model: duckdb.DuckDBPyConnection,  # noqa: F811
    exported: dict[tuple[str, Any], Path],  # noqa: F811
    fmt: str,
    s3_server: S3Server,
    request: pytest.FixtureRequest,
) -> None:
    only_on_first_server(request, s3_server, "Spark reads local copies of the files")
    folder = exported[fmt, True]
    reader = spark.read.option("basePath", str(folder)).schema(_spark_schema(spark, folder, fmt))
    if fmt == "parquet":
        frame = reader.parquet(str(folder))
        kinds: str = "typed"
    else:
        # RFC 4180 quoting: a quote inside a value is doubled, values span lines.
        frame = reader.options(header=True, escape='"', multiLine=True).csv(str(folder))
        kinds = "text"
    got = frame.toArrow()
    ids = [int(i) for i in got.column("id").to_pylist()]
    parts = sorted(zip(ids, got.column("part").to_pylist(), strict=True))
    assert parts == [(0, "a/b"), (1, "é x"), (2, "__HIVE_DEFAULT_PARTITION__"), (3, None)]
    _compare(model, got.drop_columns(["part"]), fmt, kinds, SPARK_LIMITS[fmt])


def _empty_string_table() -> pa.Table:
    return pa.table({"p": ["", "x", None], "v": [1, 2, 3]})


def test_empty_string_partitions_are_refused_by_default_and_nothing_is_published(
    s3_server: S3Server, tmp_path: Path
) -> None:
    s3 = s3_client(s3_server.endpoint)
    s3.create_bucket(Bucket="empty-parts")
    base = {"bucket": "empty-parts", "key": "e/", "file_format": "parquet", "partition_cols": ["p"]}
    run_export(ExportConfig.parse(base), ArrowSource(pa.table({"p": ["x"], "v": [0]})), s3)
    before = {k: read_object(s3, "empty-parts", k) for k in list_keys(s3, "empty-parts")}
    with pytest.raises(PartitionError) as failure:
        run_export(ExportConfig.parse(base), ArrowSource(_empty_string_table()), s3)
    message = str(failure.value)
    assert "partition column 'p' holds the empty string" in message
    assert "empty_string_partitions: null" in message and "nullif(p, '')" in message
    assert "The previous export at s3://empty-parts/e/ is unchanged" in message
    after = {k: read_object(s3, "empty-parts", k) for k in list_keys(s3, "empty-parts")}
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
        if not key.endswith("_manifest.json"):
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
