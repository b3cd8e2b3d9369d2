"""Hive-partitioned exports read back from the S3 server by DuckDB and by pyarrow.

DuckDB here has no httpfs extension, so its side downloads the prefix with boto3
into a temporary folder that keeps the key layout, then reads it with
``hive_partitioning=true``. pyarrow reads straight from the S3 server through
``pyarrow.fs.S3FileSystem``. Both are given the partition columns' types, as
the README tells users to do, and each read-back is compared row by row with
the model's rows.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.csv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pytest

from dbt_s3_export import (
    ArrowSource,
    DuckDBSource,
    ExportConfig,
    PartitionError,
    RunContext,
    run_export,
)
from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings
from dbt_s3_export.s3.transfer import ObjectSink, Uploader

from .support import (
    DbtProject,
    S3Server,
    export_meta,
    exported_model,
    list_keys,
    only_on_first_server,
    s3_client,
)

FORMATS = ("parquet", "csv", "json", "jsonl")
EXTENSION = {"parquet": ".parquet", "csv": ".csv", "json": ".json", "jsonl": ".jsonl"}
DATA_FILE = re.compile(r"part-[0-9a-f]{24}-\d{5}\.(parquet|csv|json|jsonl)$")

# Partition values that break naive path code. Each must read back as itself,
# except the literal NULL sentinel, which pyarrow reads as NULL (see README).
NASTY = [
    None,
    "",
    "a/b",
    "x=y",
    "100%",
    "%2F",
    "#hash",
    "what?",
    "with space",
    " lead and trail ",
    "it's",
    'say "hi"',
    "back\\slash",
    "tab\tand\nnewline",
    "plus+sign",
    "amp&semi;",
    "brace{}[]*^|<>!@$",
    "héllo wörld",
    "日本語",
    "emoji 😀",
    "Ω/Ω=Ω",
    "__HIVE_DEFAULT_PARTITION__",
    "null",
    "NULL",
    "0",
    "-1",
    "1e3",
    "2024-01-01",
    "true",
    ".",
    "..",
    "l" * 200,
]
SENTINEL = "__HIVE_DEFAULT_PARTITION__"


# --- readers -----------------------------------------------------------------


def download(s3: Any, bucket: str, prefix: str, dest: Path) -> Path:
    """Copy every object under ``prefix`` into ``dest``, keeping the key layout."""
    for key in list_keys(s3, bucket, prefix):
        path = dest / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return dest / prefix


def duckdb_read(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    fmt: str,
    hive_types: dict[str, str],
    file_types: dict[str, str] | None = None,
) -> pa.Table:
    """Read a partitioned folder the way the README shows for DuckDB."""
    # '*=*/**' keeps the export's own _manifest.json (at the top) out of the glob.
    pattern = f"'{root}/*=*/**/*{EXTENSION[fmt]}'"
    types = "{" + ", ".join(f"'{k}': '{v}'" for k, v in hive_types.items()) + "}"
    hive = f"hive_partitioning = true, hive_types = {types}"
    if fmt == "parquet":
        sql = f"select * from read_parquet({pattern}, {hive})"
    elif fmt == "csv":
        # Text in, parsed with the model's types later; "" is the empty string, not NULL.
        text = "all_varchar = true, allow_quoted_nulls = false"
        sql = f"select * from read_csv({pattern}, {hive}, {text})"
    else:
        columns = ""
        if file_types:
            columns = (
                ", columns = {" + ", ".join(f"'{k}': '{v}'" for k, v in file_types.items()) + "}"
            )
        json_format = "array" if fmt == "json" else "newline_delimited"
        sql = f"select * from read_json({pattern}, {hive}, format = '{json_format}'{columns})"
    return con.sql(sql).to_arrow_table()


def pyarrow_fs(server: S3Server) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        endpoint_override=server.endpoint.removeprefix("http://"),
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
    )


def pyarrow_partitioning(schema: pa.Schema, cols: list[str]) -> ds.Partitioning:
    """pyarrow cannot build decimal partition values: those are read as text."""
    fields = []
    for col in cols:
        typ = schema.field(col).type
        fields.append(pa.field(col, pa.string() if pa.types.is_decimal(typ) else typ))
    return ds.partitioning(pa.schema(fields), flavor="hive")


def json_schema(schema: pa.Schema) -> pa.Schema:
    """The model's types, with temporal values read as text (parsed when compared).

    Without it pyarrow infers each file's types on its own (a date-like string
    becomes a timestamp, a large integer a double).
    """

    def loose(typ: pa.DataType) -> pa.DataType:
        if pa.types.is_temporal(typ):
            return pa.string()
        if pa.types.is_list(typ):
            return pa.list_(loose(typ.value_type))
        if pa.types.is_struct(typ):
            return pa.struct([pa.field(f.name, loose(f.type)) for f in typ])
        return typ

    return pa.schema([pa.field(f.name, loose(f.type)) for f in schema])


def pyarrow_read(
    fs: pafs.S3FileSystem,
    bucket: str,
    prefix: str,
    fmt: str,
    partitioning: ds.Partitioning,
    file_schema: pa.Schema,
) -> pa.Table:
    """Read a partitioned prefix from the S3 server the way the README shows for pyarrow."""
    csv_columns = file_schema.names
    json_options = pajson.ParseOptions(explicit_schema=json_schema(file_schema))
    base = f"{bucket}/{prefix.rstrip('/')}"
    if fmt == "json":
        # pyarrow's JSON reader takes line-delimited JSON only: decode the paths with
        # pyarrow's Hive partitioning and the arrays with the json module.
        tables = []
        selector = pafs.FileSelector(base, recursive=True)
        for info in fs.get_file_info(selector):
            if info.type != pafs.FileType.File or not DATA_FILE.search(info.path):
                continue
            with fs.open_input_stream(info.path) as f:
                text = f.read().decode()
            # The export writes one object per line between "[" and "]"; keep the
            # numbers' text as it is (json.loads would round large decimals).
            assert isinstance(json.loads(text), list)
            objects = [line.rstrip(",") for line in text.splitlines()[1:-1]]
            if not objects:
                continue
            lines = "\n".join(objects).encode()
            table = pajson.read_json(pa.BufferReader(lines), parse_options=json_options)
            # parse() takes the file's path below the base, file name included.
            keys = ds.get_partition_keys(partitioning.parse(info.path[len(base) :]))
            for field in partitioning.schema:
                value = keys.get(field.name)
                table = table.append_column(field, pa.array([value] * table.num_rows, field.type))
            tables.append(table)
        return pa.concat_tables(tables, promote_options="permissive")
    file_format: Any = fmt
    if fmt == "jsonl":
        file_format = ds.JsonFileFormat(parse_options=json_options)
    if fmt == "csv":
        # File columns as text, an unquoted empty field as NULL and "" as the empty
        # string; the comparison then parses the text with the model's types.
        file_format = ds.CsvFileFormat(
            convert_options=pa.csv.ConvertOptions(
                column_types={c: pa.string() for c in csv_columns},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            )
        )
    schema = None
    if fmt == "jsonl":
        # The dataset takes its schema from the first file unless it is given one.
        schema = pa.schema([*json_options.explicit_schema, *partitioning.schema])
    dataset = ds.dataset(
        base, filesystem=fs, format=file_format, partitioning=partitioning, schema=schema
    )
    return dataset.to_table()


# --- comparison --------------------------------------------------------------


def normalise(table: pa.Table, types: dict[str, str], order_by: str) -> list[tuple[Any, ...]]:
    """Cast a read-back table to the model's column types and return its rows sorted.

    Text formats carry values as text or JSON; DuckDB's casts parse them back
    (``CAST(x AS JSON)`` first for lists and structs), which is what a user of
    those files does too.
    """
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("readback", table)
    have = {row[0]: row[1] for row in con.execute("describe readback").fetchall()}
    exprs = []
    for name, target in types.items():
        col = '"' + name.replace('"', '""') + '"'
        source = have[name]
        nested = "[" in target or target.startswith(("STRUCT", "MAP"))
        if source == target:
            expr = col
        elif nested and source == "VARCHAR":
            expr = f"CAST(CAST({col} AS JSON) AS {target})"
        elif nested:
            expr = f"CAST(to_json({col}) AS {target})"
        elif target == "BOOLEAN" and source == "VARCHAR":
            expr = f"CAST(lower({col}) AS BOOLEAN)"
        else:
            expr = f"CAST({col} AS {target})"
        exprs.append(f"{expr} AS {col}")
    rows = con.execute(f'select {", ".join(exprs)} from readback order by "{order_by}"').fetchall()
    con.close()
    return [tuple(canonical(v) for v in row) for row in rows]


def canonical(value: Any) -> Any:
    """NaN compares unequal to itself; give it a stable stand-in."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, list):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    return value


def model_types(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"describe {relation}").fetchall()}


def assert_same_rows(
    got: list[tuple[Any, ...]], want: list[tuple[Any, ...]], columns: list[str], reader: str
) -> None:
    assert len(got) == len(want), f"{reader}: {len(got)} rows, expected {len(want)}"
    for g, w in zip(got, want, strict=True):
        if g != w:
            diffs = {c: (gv, wv) for c, gv, wv in zip(columns, g, w, strict=True) if gv != wv}
            raise AssertionError(f"{reader}: row {w[0]} differs (got, want): {diffs}")


# --- engine-level tests against the S3 server ---------------------------------


def export(
    server: S3Server, bucket: str, table: pa.Table, **options: Any
) -> tuple[ExportConfig, Any]:
    cfg = ExportConfig.parse(
        {
            "bucket": bucket,
            "endpoint_url": server.endpoint,
            "region": "us-east-1",
            "access_key_id": "testing",
            "secret_access_key": "testing",
            **options,
        }
    )
    client = ClientCache().get(ConnectionSettings.of(cfg))
    return cfg, run_export(cfg, ArrowSource(table), client, RunContext(model="engine_test"))


def nasty_table() -> pa.Table:
    n = len(NASTY)
    return pa.table(
        {
            "id": pa.array(range(n), pa.int32()),
            "p": pa.array(NASTY, pa.string()),
            "q": pa.array([i % 3 - 1 for i in range(n)], pa.int64()),
            "v": pa.array([f"row {i}" for i in range(n)], pa.string()),
        }
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_nasty_string_partitions_read_back_by_duckdb_and_pyarrow(
    fmt: str, s3_server: S3Server, s3: Any, bucket: str, tmp_path: Path
) -> None:
    table = nasty_table()
    export(
        s3_server,
        bucket,
        table,
        key="nasty",
        file_format=fmt,
        partition_cols=["p", "q"],
        empty_string_partitions="keep",  # DuckDB and pyarrow read "p=" back as ""
    )
    keys = list_keys(s3, bucket, "nasty/")
    assert "nasty/_manifest.json" in keys
    assert len([k for k in keys if DATA_FILE.search(k)]) == len(NASTY)
    assert "nasty/p=__HIVE_DEFAULT_PARTITION__/q=-1/" in "\n".join(keys)
    assert any(k.startswith("nasty/p=/q=0/") for k in keys)  # the empty string
    assert any(k.startswith("nasty/p=a%2Fb/") for k in keys)
    assert any(k.startswith("nasty/p=x%3Dy/") for k in keys)
    assert any(k.startswith("nasty/p=héllo%20wörld/") for k in keys)

    types = {"id": "INTEGER", "p": "VARCHAR", "q": "BIGINT", "v": "VARCHAR"}
    want = [tuple(r.values()) for r in table.to_pylist()]
    con = duckdb.connect()
    root = download(s3, bucket, "nasty/", tmp_path)
    got = normalise(duckdb_read(con, root, fmt, {"p": "VARCHAR", "q": "BIGINT"}), types, "id")
    assert_same_rows(got, want, list(types), "duckdb")

    partitioning = pyarrow_partitioning(table.schema, ["p", "q"])
    got = normalise(
        pyarrow_read(
            pyarrow_fs(s3_server),
            bucket,
            "nasty/",
            fmt,
            partitioning,
            table.schema.remove(1).remove(1),
        ),
        types,
        "id",
    )
    # pyarrow compares after decoding, so the literal sentinel string reads as NULL.
    want_pa = [(i, None if p == SENTINEL else p, q, v) for i, p, q, v in want]
    assert_same_rows(got, want_pa, list(types), "pyarrow")


def test_include_partition_cols_writes_them_into_the_files(
    s3_server: S3Server, s3: Any, bucket: str, tmp_path: Path
) -> None:
    table = nasty_table()
    export(
        s3_server,
        bucket,
        table,
        key="inside/",
        file_format="parquet",
        partition_cols=["p"],
        include_partition_cols=True,
        empty_string_partitions="keep",
    )
    root = download(s3, bucket, "inside/", tmp_path)
    con = duckdb.connect()
    # Read the files alone: every partition value is in them, the sentinel string too.
    files = con.sql(
        f"select id, p from read_parquet('{root}/*=*/**/*.parquet', hive_partitioning = false)"
        " order by id"
    ).fetchall()
    assert files == [(i, p) for i, p in enumerate(NASTY)]
    with_paths = con.sql(
        f"select * from read_parquet('{root}/*=*/**/*.parquet', hive_partitioning = false,"
        " filename = true) where p = '' "
    ).fetchall()
    assert len(with_paths) == 1 and "/p=/" in with_paths[0][-1]
    # pyarrow without partitioning takes the values from the files, the sentinel string too.
    from_files = ds.dataset(f"{bucket}/inside", filesystem=pyarrow_fs(s3_server), format="parquet")
    assert from_files.to_table().sort_by("id")["p"].to_pylist() == NASTY

    default = nasty_table()
    export(
        s3_server,
        bucket,
        default,
        key="outside/",
        file_format="csv",
        partition_cols=["p"],
        empty_string_partitions="keep",
    )
    root = download(s3, bucket, "outside/", tmp_path / "o")
    header = con.sql(
        f"select column_name from (describe select * from read_csv('{root}/*=*/**/*.csv',"
        " hive_partitioning = false))"
    ).fetchall()
    assert [h[0] for h in header] == ["id", "q", "v"]


def test_max_rows_per_file_splits_large_partitions(
    s3_server: S3Server, s3: Any, bucket: str, tmp_path: Path
) -> None:
    n = 2_500
    table = pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "big": pa.array(["big" if i < 2_300 else "small" for i in range(n)]),
        }
    )
    _, result = export(
        s3_server,
        bucket,
        table,
        key="split/",
        file_format="jsonl",
        partition_cols=["big"],
        max_rows_per_file=1_000,
        batch_size=1_024,
    )
    per_partition: dict[str, list[int]] = {}
    for f in result.files:
        per_partition.setdefault(f.partition, []).append(f.rows)
    assert per_partition == {"big=big/": [1_000, 1_000, 300], "big=small/": [200]}
    keys = [k for k in list_keys(s3, bucket, "split/") if DATA_FILE.search(k)]
    assert len(keys) == 4
    assert len({k.rsplit("/", 1)[1] for k in keys}) == 4  # file names unique across the export
    root = download(s3, bucket, "split/", tmp_path)
    rows = (
        duckdb.connect()
        .sql(
            f"select id, big from read_json('{root}/*=*/**/*.jsonl', hive_partitioning = true)"
            " order by id"
        )
        .fetchall()
    )
    assert rows == [(i, "big" if i < 2_300 else "small") for i in range(n)]


def test_thousands_of_partitions_one_file_each(
    s3_server: S3Server, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Count files opened and not yet committed: the export keeps at most one.
    open_now, most_open = set(), [0]
    real_open, real_commit = Uploader.open, ObjectSink.commit

    def counting_open(self: Uploader, key: str, content_type: str, **kw: Any) -> ObjectSink:
        open_now.add(key)
        most_open[0] = max(most_open[0], len(open_now))
        return real_open(self, key, content_type, **kw)

    def counting_commit(self: ObjectSink, *, wait: bool = False) -> None:
        open_now.discard(self.key)
        real_commit(self, wait=wait)

    monkeypatch.setattr(Uploader, "open", counting_open)
    monkeypatch.setattr(ObjectSink, "commit", counting_commit)

    n_parts, per_part = 1_000, 3
    ids = list(range(n_parts * per_part))
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            # Interleaved, so only the source's sort brings a partition's rows together.
            "part": pa.array([i % n_parts for i in ids], pa.int32()),
            "value": pa.array([f"v{i}" for i in ids]),
        }
    )
    _, result = export(
        s3_server, bucket, table, key="many", file_format="parquet", partition_cols=["part"]
    )
    assert len(result.files) == n_parts
    assert result.rows == len(ids)
    assert most_open == [1] and not open_now
    keys = [k for k in list_keys(s3, bucket, "many/") if DATA_FILE.search(k)]
    assert len(keys) == n_parts
    assert len({k.rsplit("/", 1)[0] for k in keys}) == n_parts

    dataset = ds.dataset(
        f"{bucket}/many",
        filesystem=pyarrow_fs(s3_server),
        format="parquet",
        partitioning=ds.partitioning(pa.schema([("part", pa.int32())]), flavor="hive"),
    )
    got = dataset.to_table().sort_by("id")
    assert got.select(["id", "part", "value"]).equals(table)


def test_partition_key_over_s3_limit_names_the_column(s3_server: S3Server, bucket: str) -> None:
    table = pa.table({"id": [1, 2], "note": ["short", "n" * 1_100]})
    with pytest.raises(PartitionError) as info:
        export(s3_server, bucket, table, key="long/", file_format="csv", partition_cols=["note"])
    message = str(info.value)
    assert "1024-byte limit" in message
    assert "partition column 'note'" in message
    assert "left(note, 100)" in message


def test_nested_partition_column_is_refused(s3_server: S3Server, bucket: str) -> None:
    con = duckdb.connect()
    con.execute("create table t as select 1 as id, [1, 2] as tags")
    cfg = ExportConfig.parse(
        {
            "bucket": bucket,
            "key": "nested/",
            "file_format": "csv",
            "partition_cols": ["tags"],
            "endpoint_url": s3_server.endpoint,
            "access_key_id": "testing",
            "secret_access_key": "testing",
        }
    )
    client = ClientCache().get(ConnectionSettings.of(cfg))
    with pytest.raises(PartitionError, match="partition column 'tags' has type list"):
        run_export(cfg, DuckDBSource(con, "t"), client, RunContext(model="nested"))


# --- through dbt --------------------------------------------------------------

PARTITION_COLS = ["p_str", "p_int", "p_date", "p_ts", "p_tstz", "p_bool", "p_dbl", "p_dec"]


def sql_text(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def wide_model_sql() -> str:
    """About 30 columns of mixed types; one row per nasty partition string, plus NULLs."""
    rows = []
    for i, text in enumerate(NASTY):
        sign = -1 if i % 2 else 1
        rows.append(
            ", ".join(
                [
                    str(i),
                    f"{sign * (i % 127)}::TINYINT",
                    f"{sign * i * 250}::SMALLINT",
                    f"{sign * i * 70_000}::INTEGER",
                    f"{sign * (9_007_199_254_740_993 - i)}::BIGINT",
                    f"{i * 2}::UTINYINT",
                    f"{4_000_000_000 - i}::UINTEGER",
                    f"{18_446_744_073_709_551_615 - i}::UBIGINT",
                    f"{sign * (10**37 + i)}::HUGEINT",
                    f"{sign * i}.{i:02d}::DECIMAL(10,2)",
                    f"{sign * (12_345_678_901_234_567_890 + i)}.0123456789::DECIMAL(38,10)",
                    f"{sign * i}.1::FLOAT",
                    f"{sign * i}e{i - 16}::DOUBLE",
                    f"DATE '2024-01-01' + {i * 37}",
                    f"TIMESTAMP '2024-02-29 23:59:59.123456' + INTERVAL {i} HOUR",
                    f"TIMESTAMPTZ '2024-03-31 01:30:00+02' + INTERVAL {i * 7} MINUTE",
                    f"epoch_ms({1_700_000_000_000 + i * 1001})",
                    f"TIME '00:00:01' + INTERVAL {i * 1234} SECOND",
                    "true" if i % 3 == 0 else "false",
                    sql_text(text),
                    sql_text(NASTY[-1 - i]),
                    f"[{i}, {-i}, NULL]",
                    f"[{sql_text(text)}, 'x']",
                    f"{{'a': {i}, 'b': {sql_text(text)}}}",
                    f"[{{'k': {sign * i}.5, 'd': DATE '2000-01-01' + {i}}}]",
                    f"'00000000-0000-0000-0000-{i:012d}'::UUID",
                    # partition columns
                    sql_text(text),
                    f"{sign * (i % 5) * 1_000_000_007}::BIGINT",
                    f"DATE '1999-12-31' + {i % 4 * 400}",
                    f"TIMESTAMP '2024-01-01 12:34:56' + INTERVAL {i % 3 * 1500} MILLISECOND",
                    f"TIMESTAMPTZ '2024-06-30 23:00:00+00' + INTERVAL {i % 2} HOUR",
                    "true" if i % 2 else "false",
                    ["-1.5", "0.1", "1e300", "'nan'", "'-inf'", "-0.000123"][i % 6] + "::DOUBLE",
                    f"{sign * (i % 4)}.25::DECIMAL(10,2)",
                ]
            )
        )
    n = len(NASTY)
    nulls = ["NULL"] * 33
    rows.append(", ".join([str(n), *nulls]))
    nulls[25] = "''"  # p_str: the empty string with everything else NULL
    rows.append(", ".join([str(n + 1), *nulls]))
    columns = (
        "id, c_tinyint, c_smallint, c_int, c_bigint, c_utinyint, c_uint, c_ubigint, c_hugeint,"
        " c_dec, c_dec38, c_float, c_double, c_date, c_ts, c_tstz, c_ts_ms, c_time, c_bool,"
        " c_str, c_str2, c_ints, c_strs, c_struct, c_structs, c_uuid, " + ", ".join(PARTITION_COLS)
    )
    body = ",\n    ".join(f"({r})" for r in rows)
    return "select * from (values\n    " + body + f"\n) t({columns})"


def exporting_model(bucket: str, key: str, fmt: str, extra: str = "", ref: str = "wide") -> str:
    sql = "select * from {{ ref('" + ref + "') }}\n"
    return exported_model(export_meta(bucket, key, fmt, extra), sql)


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> dict[str, Any]:
    """One dbt run exporting the wide model, partitioned, in every format."""
    s3 = s3_client(s3_server.endpoint)
    bucket = "partitioned-exports"
    s3.create_bucket(Bucket=bucket)
    project = DbtProject(tmp_path_factory.mktemp("wide"), s3_server.endpoint, threads=2)
    project.model("wide", wide_model_sql())
    cols = "[" + ", ".join(f"'{c}'" for c in PARTITION_COLS) + "]"
    for fmt in FORMATS:
        project.model(
            f"wide_{fmt}",
            exporting_model(
                bucket,
                f"lake/wide_{fmt}",
                fmt,
                f", 'partition_cols': {cols}, 'empty_string_partitions': 'keep'",
            ),
        )
    result = project.dbt("run")
    return {"project": project, "s3": s3, "bucket": bucket, "output": result.output}


@pytest.mark.dbt
@pytest.mark.parametrize("fmt", FORMATS)
def test_wide_model_partitioned_reads_back_exactly(
    fmt: str, wide_run: dict[str, Any], s3_server: S3Server, tmp_path: Path
) -> None:
    project: DbtProject = wide_run["project"]
    s3, bucket = wide_run["s3"], wide_run["bucket"]
    model = f"wide_{fmt}"
    prefix = f"lake/{model}/"
    with duckdb.connect(str(project.database), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        types = model_types(con, f"main.{model}")
        want = [
            tuple(canonical(v) for v in row)
            for row in con.execute(f"select * from main.{model} order by id").fetchall()
        ]
        arrow_schema = con.sql(f"select * from main.{model} limit 0").to_arrow_table().schema
    assert len(types) >= 30
    keys = list_keys(s3, bucket, prefix)
    data_keys = [k for k in keys if DATA_FILE.search(k)]
    assert len(data_keys) == len({k.rsplit("/", 1)[0] for k in data_keys})  # one file each
    assert all(k.startswith(prefix + "p_str=") for k in data_keys)
    columns = list(types)

    hive_types = {c: types[c] for c in PARTITION_COLS}
    file_types = {c: t for c, t in types.items() if c not in PARTITION_COLS}
    root = download(s3, bucket, prefix, tmp_path)
    con = duckdb.connect()
    got = normalise(duckdb_read(con, root, fmt, hive_types, file_types), types, "id")
    assert_same_rows(got, want, columns, f"duckdb {fmt}")

    partitioning = pyarrow_partitioning(arrow_schema, PARTITION_COLS)
    file_schema = pa.schema([f for f in arrow_schema if f.name not in PARTITION_COLS])
    table = pyarrow_read(pyarrow_fs(s3_server), bucket, prefix, fmt, partitioning, file_schema)
    got = normalise(table, types, "id")
    p_str = columns.index("p_str")
    want_pa = [
        tuple(None if i == p_str and v == SENTINEL else v for i, v in enumerate(row))
        for row in want
    ]
    assert_same_rows(got, want_pa, columns, f"pyarrow {fmt}")


BAD_PARTITIONS = {
    "part_missing": (
        "['region', 'v']",
        "select 1 as id, 'x' as v, 2 as amount",
        "partition column 'region' not in the model; its columns are: id, v, amount. "
        "Fix 'partition_cols'",
    ),
    "part_everything": (
        "['id', 'v']",
        "select 1 as id, 'x' as v",
        "every column of the model is a partition column",
    ),
    "part_twice": (
        "['v', 'id', 'v']",
        "select 1 as id, 'x' as v, 2 as amount",
        "option 'partition_cols': names column 'v' twice. List each partition column once",
    ),
    "part_nested": (
        "['tags']",
        "select 1 as id, [1, 2] as tags",
        "partition column 'tags' has type list",
    ),
    "part_bad_name": (
        "['_v']",
        "select 1 as id, 'x' as _v",
        "column name '_v' starts with '_'",
    ),
}


def failure_sections(output: str) -> dict[str, str]:
    """dbt's end-of-run summary, one block of text per failed model."""
    sections: dict[str, str] = {}
    for block in output.split("Failure in model ")[1:]:
        sections[block.split(" ", 1)[0]] = block
    return sections


@pytest.mark.dbt
def test_bad_partition_columns_fail_each_model_clearly(
    project: DbtProject, s3: Any, bucket: str, s3_server: S3Server, request: pytest.FixtureRequest
) -> None:
    only_on_first_server(request, s3_server, "partition checks come before any request")
    for name, (cols, sql, _) in BAD_PARTITIONS.items():
        meta = export_meta(bucket, f"{name}/", "csv", f", 'partition_cols': {cols}")
        project.model(name, exported_model(meta, sql))
    result = project.dbt("run", check=False)
    assert not result.ok
    assert f"ERROR={len(BAD_PARTITIONS)}" in result.output
    sections = failure_sections(result.output)
    assert sorted(sections) == sorted(BAD_PARTITIONS)
    for name, (_, _, message) in BAD_PARTITIONS.items():
        text = " ".join(sections[name].split())  # dbt wraps long lines
        assert f"model '{name}'" in text, name
        assert message in text, (name, text)
    assert "Traceback" not in result.output
    assert list_keys(s3, bucket) == []
