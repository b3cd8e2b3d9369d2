"""Hive path rendering and escaping, and how DuckDB and pyarrow decode the result.

The decoding tests write the paths ``partition_path`` produces to a local folder
and read them with both readers: that is the contract the S3 tests rely on,
checked here for many values quickly.
"""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from dbt_s3_export import ConfigError, ExportConfig, PartitionError
from dbt_s3_export.encoding.partitioning import (
    ESCAPED_NULL_STRING,
    NULL_SEGMENT,
    check_partition_types,
    encode_segment,
    longest_segment,
    partition_path,
    split_by_partition,
    value_text,
)

from .test_partitioned_exports import NASTY, SENTINEL


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("plain-Text_1.2~", "plain-Text_1.2~"),
        ("", ""),
        ("a/b", "a%2Fb"),
        ("x=y", "x%3Dy"),
        ("100%", "100%25"),
        ("%2F", "%252F"),
        ("#?&+", "%23%3F%26%2B"),
        ("two words", "two%20words"),
        ('it\'s "q"', "it%27s%20%22q%22"),
        ("a\\b", "a%5Cb"),
        ("tab\tnl\n", "tab%09nl%0A"),
        ("12:30:00", "12%3A30%3A00"),
        ("héllo wörld", "héllo%20wörld"),
        ("日本語/😀", "日本語%2F😀"),
        ("\ufffe", "%EF%BF%BE"),
        (SENTINEL, ESCAPED_NULL_STRING),
        ("x" + SENTINEL, "x" + SENTINEL),
    ],
)
def test_encode_segment(text: str, encoded: str) -> None:
    assert encode_segment(text) == encoded


def test_partition_path_null_empty_and_several_columns() -> None:
    assert partition_path(["a"], [None]) == f"a={NULL_SEGMENT}/"
    assert partition_path(["a"], [""]) == "a=/"
    assert partition_path(["year", "month"], ["2024", "1"]) == "year=2024/month=1/"
    assert partition_path(["a", "b"], [SENTINEL, None]) == (
        f"a={ESCAPED_NULL_STRING}/b={NULL_SEGMENT}/"
    )


@pytest.mark.parametrize(
    ("array", "text"),
    [
        (pa.array([-42], pa.int8()), "-42"),
        (pa.array([18_446_744_073_709_551_615], pa.uint64()), "18446744073709551615"),
        (pa.array([0.1]), "0.1"),
        (pa.array([-1.5e-300]), "-1.5e-300"),
        (pa.array([float("nan")]), "nan"),
        (pa.array([float("-inf")]), "-inf"),
        (pa.array([-0.1], pa.float32()), "-0.1"),
        (pa.array([decimal.Decimal("-12.30")], pa.decimal128(10, 2)), "-12.30"),
        (pa.array([True]), "true"),
        (pa.array([dt.date(2024, 2, 29)]), "2024-02-29"),
        (pa.array([dt.time(12, 0)], pa.time64("us")), "12:00:00"),
        (pa.array([dt.time(0, 0, 0, 250_000)], pa.time64("us")), "00:00:00.25"),
        (pa.array([dt.datetime(2024, 1, 2, 3, 4, 5)], pa.timestamp("us")), "2024-01-02 03:04:05"),
        (
            pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 120_000)], pa.timestamp("us")),
            "2024-01-02 03:04:05.12",
        ),
        (
            pa.array([1_704_067_200_123_456_789], pa.timestamp("ns")),
            "2024-01-01 00:00:00.123456789",
        ),
        (
            pa.array(
                [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))],
                pa.timestamp("us", tz="Europe/Paris"),
            ),
            "2024-01-02 01:04:05Z",
        ),
        (pa.array(["a", "b"]).dictionary_encode(), "a"),
        (pa.array([None], pa.string()), None),
    ],
)
def test_value_text(array: pa.Array, text: str | None) -> None:
    assert value_text(array, 0) == text


def test_unsupported_partition_types_are_refused() -> None:
    schema = pa.schema(
        [
            ("tags", pa.list_(pa.int64())),
            ("info", pa.struct([("a", pa.int64())])),
            ("blob", pa.binary()),
            ("kind", pa.dictionary(pa.int32(), pa.string())),
        ]
    )
    for col, typ in [("tags", "list"), ("info", "struct"), ("blob", "binary")]:
        with pytest.raises(PartitionError, match=f"partition column '{col}' has type {typ}"):
            check_partition_types(schema, [col])
    check_partition_types(schema, ["kind"])


def test_longest_segment_names_the_column() -> None:
    assert longest_segment("a=1/b=" + "x" * 50 + "/c=2/") == ("b", 52)


def test_split_by_partition_cuts_sorted_batches() -> None:
    table = pa.table(
        {
            "p": ["a", "a", "b", None, None],
            "f": [float("nan"), float("nan"), 1.0, 1.0, 1.0],
            "v": [1, 2, 3, 4, 5],
        }
    )
    batches = iter(table.to_batches(max_chunksize=2))
    pieces = list(split_by_partition(batches, ["p", "f"], keep_columns=False))
    paths = [p.path for p in pieces]
    # NaNs compare unequal but are one partition; a batch edge repeats a path.
    assert paths == [
        "p=a/f=nan/",
        "p=b/f=1/",
        f"p={NULL_SEGMENT}/f=1/",
        f"p={NULL_SEGMENT}/f=1/",
    ]
    assert all(p.batch.schema.names == ["v"] for p in pieces)
    assert sum(p.batch.num_rows for p in pieces) == 5
    kept = list(split_by_partition(iter(table.to_batches()), ["p"], keep_columns=True))
    assert kept[0].batch.schema.names == ["p", "f", "v"]


def _config(**options: Any) -> ExportConfig:
    return ExportConfig.parse({"bucket": "bkt", "key": "lake", "file_format": "csv", **options})


@pytest.mark.parametrize(
    ("col", "problem"),
    [
        ("event date", "contains ' '"),
        ("a=b", "contains '='"),
        ("a/b", "contains '/'"),
        ("pct%", "contains '%'"),
        ("_hidden", "starts with '_'"),
        (".dot", "starts with '.'"),
    ],
)
def test_partition_column_names_that_readers_mangle_are_refused(col: str, problem: str) -> None:
    with pytest.raises(ConfigError, match="partition_cols") as info:
        _config(partition_cols=[col])
    assert problem in str(info.value)
    assert "Rename the column in the model" in str(info.value)


def test_partition_config_shapes() -> None:
    assert _config(partition_cols=["year", "month"]).prefix == "lake/"
    assert _config(key="lake/", partition_cols=["année"]).prefix == "lake/"
    with pytest.raises(ConfigError, match="names column 'year' twice"):
        _config(partition_cols=["year", "month", "year"])


# --- decoding by the readers, on local disk -----------------------------------


def _write_partitions(root: Path, col: str, array: pa.Array) -> None:
    for i in range(len(array)):
        folder = root / partition_path([col], [value_text(array, i)])
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": [i]}), folder / f"part-{i}.parquet")


def _duckdb_values(root: Path, col: str, duck_type: str) -> list[Any]:
    sql = (
        f"select id, {col} from read_parquet('{root}/*=*/*.parquet', hive_partitioning = true,"
        f" hive_types = {{'{col}': '{duck_type}'}}) order by id"
    )
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return [row[1] for row in con.execute(sql).fetchall()]


def _pyarrow_values(root: Path, field: pa.Field) -> list[Any]:
    partitioning = ds.partitioning(pa.schema([field]), flavor="hive")
    table = ds.dataset(root, format="parquet", partitioning=partitioning).to_table()
    return table.sort_by("id")[field.name].to_pylist()  # type: ignore[no-any-return]


def test_strings_decode_to_themselves(tmp_path: Path) -> None:
    values = [v for v in NASTY if v is None or len(v) < 200] + ["l" * 240]
    _write_partitions(tmp_path, "s", pa.array(values, pa.string()))
    assert _duckdb_values(tmp_path, "s", "VARCHAR") == values
    # pyarrow decodes first and then compares with the NULL sentinel.
    assert _pyarrow_values(tmp_path, pa.field("s", pa.string())) == [
        None if v == SENTINEL else v for v in values
    ]


TYPED = [
    ("BIGINT", pa.int64(), [-9_223_372_036_854_775_808, -1, 0, 42, None]),
    ("UBIGINT", pa.uint64(), [0, 18_446_744_073_709_551_615]),
    ("DOUBLE", pa.float64(), [-1.5, 0.1, 1e300, -1e-300, float("inf"), float("-inf"), -0.0]),
    ("FLOAT", pa.float32(), [-0.1, 3.4028234663852886e38]),
    ("BOOLEAN", pa.bool_(), [True, False, None]),
    ("DATE", pa.date32(), [dt.date(1, 1, 1), dt.date(2024, 2, 29), dt.date(9999, 12, 31)]),
    ("TIME", pa.time64("us"), [dt.time(0, 0), dt.time(23, 59, 59, 999_999)]),
    (
        "TIMESTAMP",
        pa.timestamp("us"),
        [dt.datetime(1900, 1, 1), dt.datetime(2024, 1, 2, 3, 4, 5, 123_456)],
    ),
    (
        "TIMESTAMPTZ",
        pa.timestamp("us", tz="UTC"),
        [dt.datetime(2024, 1, 2, 3, 4, 5, 500_000, tzinfo=dt.timezone.utc)],
    ),
]


@pytest.mark.parametrize(("duck_type", "arrow_type", "values"), TYPED, ids=[t[0] for t in TYPED])
def test_typed_values_decode_exactly_when_given_their_types(
    tmp_path: Path, duck_type: str, arrow_type: pa.DataType, values: list[Any]
) -> None:
    _write_partitions(tmp_path, "v", pa.array(values, arrow_type))
    want = pa.array(values, arrow_type).to_pylist()
    assert _duckdb_values(tmp_path, "v", duck_type) == want
    assert _pyarrow_values(tmp_path, pa.field("v", arrow_type)) == want


def test_decimals_decode_exactly(tmp_path: Path) -> None:
    values = [decimal.Decimal("-12345678901234567890.0123456789"), decimal.Decimal("0E-10")]
    _write_partitions(tmp_path, "d", pa.array(values, pa.decimal128(38, 10)))
    assert _duckdb_values(tmp_path, "d", "DECIMAL(38,10)") == values
    # pyarrow cannot build decimal partition values: read them as text, then cast.
    text = _pyarrow_values(tmp_path, pa.field("d", pa.string()))
    assert pa.array(text).cast(pa.decimal128(38, 10)).to_pylist() == values
