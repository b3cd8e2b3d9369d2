"""The type contract (docs/types.md), value by value, in every format and with every reader.

One model holds a column of every DuckDB type, with NULLs and extremes. It is
exported through the engine (``DuckDBSource``, as the plugin reads models) in
each format, flat and partitioned, to the S3 server; DuckDB, pyarrow and polars
read the files back, and every value, turned back into the model's type by the
contract's rules, must equal the model's. A real ``dbt run`` of the same model
is in test_types_dbt.py; Spark reads the partitioned files in test_readers_spark.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.json as pajson
import pytest

from dbt_s3_export import DuckDBSource, ExportConfig, ExportFailed, RunContext, run_export

from .support import S3Server, list_keys, only_on_first_server, read_object, s3_client
from .type_matrix import COLUMNS, canonical, decoded, is_nested, json_reading_type, model_sql

FORMATS = ("parquet", "csv", "json", "jsonl")
# Columns whose JSON numbers stop pyarrow's and polars' JSON readers altogether
# (45 digits, 38-digit decimals and integers, a JSON value that is an object in one
# row and a string in the next): those readers get the rest, in a file of its own.
JSON_READERS_CANNOT_PARSE = ("i128", "u128", "bn", "js", "nest", "dec38", "var")


@pytest.fixture(scope="module")
def model() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/New_York'")  # not UTC: zoned values must not care
    con.execute(model_sql())
    con.execute(
        "CREATE VIEW model_for_json_readers AS SELECT * EXCLUDE ("
        + ", ".join(JSON_READERS_CANNOT_PARSE)
        + ") FROM model"
    )
    return con


@pytest.fixture(scope="module")
def exported(
    model: duckdb.DuckDBPyConnection,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, Any], Path]:
    """Every format, flat and partitioned by ``part``, downloaded to local folders."""
    client = s3_client(s3_server.endpoint)
    bucket = "type-matrix"
    s3_server.create_bucket(bucket)
    root = tmp_path_factory.mktemp("types")
    out: dict[tuple[str, Any], Path] = {}
    runs = [(fmt, partitioned) for fmt in FORMATS for partitioned in (False, True)]
    runs += [("json", "subset"), ("jsonl", "subset")]
    for fmt, partitioned in runs:
        name = {False: "flat", True: "parts", "subset": "subset"}[partitioned]
        key = f"{fmt}/{name}/"
        options: dict[str, Any] = {"bucket": bucket, "key": key, "file_format": fmt}
        if partitioned is True:
            options["partition_cols"] = ["part"]
        relation = "model_for_json_readers" if partitioned == "subset" else "model"
        cfg = ExportConfig.parse(options)
        run_export(
            cfg, DuckDBSource(model, relation, file_format=fmt), client, RunContext(model="m")
        )
        if True:
            folder = root / fmt / name
            for obj in list_keys(client, bucket, key):
                if not obj.rsplit("/", 1)[-1].startswith("_"):  # data files, not _manifest/_lease
                    path = folder / obj[len(key) :]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(read_object(client, bucket, obj))
            out[fmt, partitioned] = folder
    return out


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def kind_of(kinds: dict[str, str] | str, name: str) -> str:
    return kinds if isinstance(kinds, str) else kinds[name]


def _compare(
    model: duckdb.DuckDBPyConnection,
    got: pa.Table,
    fmt: str,
    kinds: dict[str, str] | str,
    skip: frozenset[str] | tuple[str, ...] = frozenset(),
) -> None:
    """Every value of ``got`` (a reader's Arrow table) decodes to the model's value.

    ``kinds`` says, per column or for all, what the reader gave (see decoded()).
    """
    con = model.cursor()
    con.register("got", got)
    assert con.sql("SELECT count(*) FROM got").fetchall() == [(4,)]
    for name, typ, _ in COLUMNS:
        if name in skip or name not in got.column_names:
            continue
        quoted = f'"{name}"'
        got_sql = (
            f"SELECT {canonical(decoded(name, typ, kind_of(kinds, name)), typ)} FROM got "
            "ORDER BY CAST(id AS INTEGER)"
        )
        want_sql = f"SELECT {canonical(quoted, typ)} FROM model ORDER BY id"
        try:
            got_values = con.sql(got_sql).fetchall()
        except duckdb.Error as e:
            raise AssertionError(f"{fmt} {name} ({typ}): cannot decode: {e}") from e
        assert got_values == con.sql(want_sql).fetchall(), f"{fmt} {name} ({typ})"


def _listing(files: list[str]) -> str:
    return "[" + ", ".join(f"'{f}'" for f in files) + "]"


def _json_reading() -> tuple[str, dict[str, str]]:
    """read_json's columns (the model's types where JSON has the value) and their kinds."""
    reading = {"id": "INTEGER", **{n: json_reading_type(t) for n, t, _ in COLUMNS}}
    quoted = {n: t.replace("'", "''") for n, t in reading.items()}
    columns = "{" + ", ".join(f"'{n}': '{t}'" for n, t in quoted.items()) + "}"
    kinds = {
        n: "json" if t == "JSON" else "text" if t == "VARCHAR" else "typed"
        for n, t in reading.items()
    }
    return columns, kinds


@pytest.mark.parametrize("partitioned", [False, True], ids=["flat", "partitioned"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_duckdb_reads_back_every_value(
    model: duckdb.DuckDBPyConnection,
    exported: dict[tuple[str, bool], Path],
    fmt: str,
    partitioned: bool,
) -> None:
    files = _files(exported[fmt, partitioned])
    assert_duckdb_reads_back(model, files, fmt, hive=partitioned)


def assert_duckdb_reads_back(
    model: duckdb.DuckDBPyConnection, files: list[str], fmt: str, *, hive: bool = False
) -> None:
    """DuckDB reads ``files`` as a user would (typed where the format allows) and gets the model."""
    options = ", hive_partitioning = true, hive_types = {'part': 'VARCHAR'}" if hive else ""
    con = model.cursor()
    if fmt == "parquet":
        got = con.sql(f"SELECT * FROM read_parquet({_listing(files)}{options})").to_arrow_table()
        _compare(model, got, fmt, "typed")
    elif fmt == "csv":
        got = con.sql(
            f"SELECT * FROM read_csv({_listing(files)}, all_varchar = true, header = true, "
            f"allow_quoted_nulls = false{options})"
        ).to_arrow_table()
        _compare(model, got, fmt, "text")
    else:
        columns, kinds = _json_reading()
        layout = "array" if fmt == "json" else "newline_delimited"
        got = con.sql(
            f"SELECT * FROM read_json({_listing(files)}, format = '{layout}', "
            f"columns = {columns}{options})"
        ).to_arrow_table()
        _compare(model, got, fmt, kinds)


# What pyarrow's and polars' readers cannot hold, whatever the file says. JSON
# readers parse numbers as 64-bit integers or doubles (an 18-digit decimal comes
# back rounded; pyarrow stops at integers past 64 bits) and objects with varying
# keys (maps) as structs; polars has no time 24:00:00 (it reads null) and turns the
# JSON number -0.0 into the text 0.0.
READER_LIMITS = {
    ("pyarrow", "jsonl"): ("dec18", "u64", "mp", "imap", "un"),
    ("polars", "json"): ("dec18", "f64", "mp", "imap", "un"),
    ("polars", "parquet"): ("t",),
}
TEXT_TYPES = ("BLOB", "BIT", "TIMETZ", "GEOMETRY", "BIGNUM", "JSON")


def _string_kinds(kind_for_text: str) -> dict[str, str]:
    return {"id": "text", **{n: kind_for_text for n, _, _ in COLUMNS}}


@pytest.mark.parametrize("partitioned", [False, True], ids=["flat", "partitioned"])
@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_pyarrow_reads_back_every_value(
    model: duckdb.DuckDBPyConnection,
    exported: dict[tuple[str, bool], Path],
    fmt: str,
    partitioned: bool,
) -> None:
    """pyarrow's JSON reader takes JSON lines only: ``json`` files are not for pyarrow."""
    folder = exported[fmt, partitioned]
    partitioning = (
        ds.partitioning(pa.schema([("part", pa.string())]), flavor="hive") if partitioned else None
    )
    if fmt == "parquet":
        got = ds.dataset(folder, format="parquet", partitioning=partitioning).to_table()
        _compare(model, got, fmt, "typed")
    elif fmt == "csv":
        names = ["id", *(n for n, _, _ in COLUMNS)]
        convert = pacsv.ConvertOptions(
            column_types={n: pa.string() for n in names},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        )
        csv_format = ds.CsvFileFormat(convert_options=convert)
        got = ds.dataset(folder, format=csv_format, partitioning=partitioning).to_table()
        _compare(model, got, fmt, "text")
    else:
        if partitioned:
            pytest.skip("each file's types are inferred on their own: one flat file is enough")
        (path,) = _files(exported[fmt, "subset"])
        got = pajson.read_json(path)
        kinds = {n: "text" if t.split("(")[0] in TEXT_TYPES else "typed" for n, t, _ in COLUMNS}
        _compare(model, got, fmt, {"id": "typed", **kinds}, READER_LIMITS["pyarrow", "jsonl"])


@pytest.mark.parametrize("partitioned", [False, True], ids=["flat", "partitioned"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_polars_reads_back_every_value(
    model: duckdb.DuckDBPyConnection,
    exported: dict[tuple[str, bool], Path],
    fmt: str,
    partitioned: bool,
) -> None:
    folder = exported[fmt, partitioned]
    files = _files(folder)
    if fmt == "parquet":
        frame = pl.read_parquet(files, hive_partitioning=partitioned)
        _compare(model, frame.to_arrow(), fmt, "typed", READER_LIMITS["polars", "parquet"])
    elif fmt == "csv":
        frame = pl.concat([pl.read_csv(f, infer_schema=False) for f in files])
        _compare(model, frame.to_arrow(), fmt, "text")
    else:
        if partitioned:
            pytest.skip("polars reads the same values from one flat file")
        (path,) = _files(exported[fmt, "subset"])
        # Scalars as text (every digit), nested values as polars infers them.
        scalars = [
            n for n, t, _ in COLUMNS if n not in JSON_READERS_CANNOT_PARSE and not is_nested(t)
        ]
        read = pl.read_json if fmt == "json" else pl.read_ndjson
        frame = read(
            path,
            schema_overrides={n: pl.String for n in ["id", *scalars]},
            infer_schema_length=None,
        )
        kinds = {n: "text" if n in scalars else "typed" for n, _, _ in COLUMNS}
        _compare(
            model, frame.to_arrow(), fmt, {"id": "text", **kinds}, READER_LIMITS["polars", "json"]
        )


def _export_query(
    client: Any, bucket: str, key: str, fmt: str, sql: str, **options: Any
) -> dict[str, bytes]:
    """Export ``sql`` (a table built from it) and return what the bucket holds afterwards."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE q AS {sql}")
    cfg = ExportConfig.parse({"bucket": bucket, "key": key, "file_format": fmt, **options})
    run_export(cfg, DuckDBSource(con, "q", file_format=fmt), client, RunContext(model="m"))
    return {
        k: read_object(client, bucket, k) for k in list_keys(client, bucket) if "_lease" not in k
    }


BIG = (
    "SELECT * FROM (VALUES (1, 170141183460469231731687303715884105727::HUGEINT, "
    "340282366920938463463374607431768211455::UHUGEINT), "
    "(2, -170141183460469231731687303715884105727::HUGEINT - 1, "
    "170141183460469231731687303715884105728::UHUGEINT)) t(id, h, u)"
)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_128_bit_extremes_keep_every_digit_in_text_formats(s3_server: S3Server, fmt: str) -> None:
    """UHUGEINT from 2**127 up came back negative; HUGEINT's extremes crashed to_json."""
    client = s3_client(s3_server.endpoint)
    client.create_bucket(Bucket=f"big-{fmt}")
    objects = _export_query(client, f"big-{fmt}", f"big.{fmt}", fmt, BIG)
    text = objects[f"big.{fmt}"].decode()
    for digits in (
        "170141183460469231731687303715884105727",
        "-170141183460469231731687303715884105728",
        "340282366920938463463374607431768211455",
        "170141183460469231731687303715884105728",
    ):
        assert digits in text
    if fmt == "json":  # numbers, not strings
        rows = json.loads(text)
        assert rows[1]["u"] == 2**127 and rows[1]["h"] == -(2**127)


def test_parquet_refuses_128_bit_values_past_38_digits_before_uploading(
    s3_server: S3Server,
) -> None:
    client = s3_client(s3_server.endpoint)
    client.create_bucket(Bucket="big-parquet")
    before = _export_query(
        client, "big-parquet", "big/", "parquet", "SELECT 1 AS id, 2::HUGEINT AS h"
    )
    with pytest.raises(ExportFailed) as failure:
        _export_query(client, "big-parquet", "big/", "parquet", BIG)
    message = str(failure.value)
    assert (
        "column 'h' (HUGEINT) holds -170141183460469231731687303715884105728, which has more "
        "than 38 digits" in message
    )
    assert "CAST(h AS VARCHAR)" in message and message.endswith("The previous export is unchanged")
    after = {
        k: read_object(client, "big-parquet", k)
        for k in list_keys(client, "big-parquet")
        if "_lease" not in k
    }
    assert after == before  # nothing was uploaded, not even a part


@pytest.mark.parametrize(
    ("sql", "column", "nested"),
    [
        (
            "SELECT i, CASE WHEN i = 70000 THEN 'nan'::DOUBLE ELSE i END AS f "
            "FROM range(100000) t(i)",
            "f",
            False,
        ),
        (
            "SELECT i, [1.5, CASE WHEN i = 3 THEN 'inf'::DOUBLE END] AS l FROM range(10) t(i)",
            "l",
            True,
        ),
        ("SELECT i, {'m': MAP {'k': '-inf'::FLOAT}} AS s FROM range(3) t(i)", "s", True),
    ],
    ids=["top-level", "list", "map-in-struct"],
)
def test_json_refuses_nan_and_infinity_at_any_depth(
    s3_server: S3Server, sql: str, column: str, nested: bool
) -> None:
    client = s3_client(s3_server.endpoint)
    bucket = f"nan-{column}"
    client.create_bucket(Bucket=bucket)
    with pytest.raises(ExportFailed) as failure:
        _export_query(client, bucket, "nan/", "jsonl", sql)
    message = str(failure.value)
    assert f"column '{column}'" in message and "holds NaN or an infinity" in message
    assert ("inside its values" in message) == nested
    assert "isfinite" in message and "is unchanged" in message
    # A failed first export leaves nothing behind but the folder's lease (its claim).
    assert list_keys(client, bucket) == ["nan/_lease.json"]


# Spark's own limits. Parquet: no time of day (TIME), and TIMESTAMP(NANOS) only as a
# long (spark.sql.legacy.parquet.nanosAsLong). CSV: an empty string ("") reads as
# NULL, like an empty field, so the empty VARCHAR and the empty BLOB come back NULL.
SPARK_LIMITS = {"parquet": ("ts_ns", "tstz_ns"), "csv": ("s", "bl")}


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
    model: duckdb.DuckDBPyConnection,
    exported: dict[tuple[str, Any], Path],
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
