"""Every bad input we know of, and the message it gets.

The same cases make the table in docs/errors.md ("Errors you may see"); a test checks
that each row of that table is what the code says today.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export import ArrowSource, DuckDBSource, ExportConfig, S3ExportError, run_export

from .engine import engine_client
from .faultproxy import STATUS, FaultProxy, Rule
from .support import REPO, DbtProject, S3Server

WHERE = "model 'orders' s3_export"
BASE = {"bucket": "exports", "key": "out/orders.csv", "file_format": "csv"}

# What was wrong (as the user wrote it) -> options laid over BASE (None removes one).
CONFIG_CASES: dict[str, dict[str, Any]] = {
    "no `bucket`": {"bucket": None},
    "`bucket: s3://exports`": {"bucket": "s3://exports"},
    "`bucket: My_Exports`": {"bucket": "My_Exports"},
    "no `key`": {"key": None},
    "`key: s3://exports/out/orders.csv`": {"key": "s3://exports/out/orders.csv"},
    "`key: /out/orders.csv`": {"key": "/out/orders.csv"},
    "`key: out//orders.csv`": {"key": "out//orders.csv"},
    "`key: out/orders` (no extension)": {"key": "out/orders"},
    "`key: out/orders.csv` with `file_format: parquet`": {"file_format": "parquet"},
    "`key: out/orders.csv` with `max_rows_per_file: 1000`": {"max_rows_per_file": 1000},
    "no `file_format`": {"file_format": None},
    "`file_format: xlsx`": {"file_format": "xlsx"},
    "`mode: upsert`": {"mode": "upsert"},
    "`mode: append` with a single-object key": {"mode": "append"},
    "`mode: overwrite_partitions` without `partition_cols`": {
        "mode": "overwrite_partitions",
        "key": "out/",
    },
    "`filename_template: data-{part}`": {"key": "out/", "filename_template": "data-{part}"},
    "`filename_template: {name}-{run_id}-{part}`": {
        "key": "out/",
        "filename_template": "{name}-{run_id}-{part}",
    },
    "`compression: gzip` with key `out/orders.csv`": {"compression": "gzip"},
    "`partition_col: [day]` (misspelt option)": {"partition_col": ["day"]},
    "`partition_cols: day` (not a list)": {"partition_cols": "day", "key": "out/"},
    "`partition_cols: [day, day]`": {"partition_cols": ["day", "day"], "key": "out/"},
    "`compression: snappy` with `file_format: csv`": {"compression": "snappy"},
    "`compression_level: 3` with csv": {"compression_level": 3},
    "`csv_delimiter: ab`": {"csv_delimiter": "ab"},
    "`csv_delimiter: '-'`": {"csv_delimiter": "-"},
    "`empty_string_partitions: drop`": {"empty_string_partitions": "drop"},
    "`include_partition_cols: 'yes'`": {"include_partition_cols": "yes"},
    "`max_rows_per_file: 0`": {"max_rows_per_file": 0, "key": "out/"},
    "`part_size_mb: 1`": {"part_size_mb": 1},
    "`max_concurrency: 0`": {"max_concurrency": 0},
    "`endpoint_url: localhost:9000`": {"endpoint_url": "localhost:9000"},
    "`access_key_id` without `secret_access_key`": {"access_key_id": "AKIAEXAMPLE"},
    "`external_id` without `role_arn`": {"external_id": "abc"},
    "`to: exports/out/` (no s3://)": {"to": "exports/out/", "bucket": None, "key": None},
    "`to: s3://exports/out/` with `key: other/`": {"to": "s3://exports/out/", "key": "other/"},
    "`rows: new`": {"rows": "new"},
    "`sse: kms`": {"sse": "kms"},
    "`sse_kms_key_id` without `sse: aws:kms`": {"sse_kms_key_id": "key-1"},
    "`storage_class: COLD`": {"storage_class": "COLD"},
    "11 `tags`": {"tags": {f"t{i}": "x" for i in range(11)}},
}


def config_message(case: str) -> str:
    options = {**BASE, **CONFIG_CASES[case]}
    options = {k: v for k, v in options.items() if v is not None}
    with pytest.raises(S3ExportError) as failure:
        ExportConfig.parse(options, where=WHERE)
    return str(failure.value)


# Cases that need data or an S3 endpoint: name -> function(context) returning the message.
RUNTIME_CASES: dict[str, Callable[[Any], str]] = {}


def runtime_case(name: str) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    def register(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        RUNTIME_CASES[name] = fn
        return fn

    return register


def _export(ctx: Any, data: pa.Table | Any, endpoint: str | None = None, **options: Any) -> str:
    opts = {"bucket": ctx.bucket, "key": "out/", "file_format": "csv", **options}
    cfg = ExportConfig.parse(opts, where=WHERE)
    client = engine_client(endpoint or ctx.endpoint)
    source = ArrowSource(data) if isinstance(data, pa.Table) else data
    with pytest.raises(S3ExportError) as failure:
        run_export(cfg, source, client, model="orders")
    return str(failure.value)


ORDERS = pa.table({"id": [1, 2], "day": ["2024-01-01", "2024-01-02"]})


@runtime_case("`partition_cols: [dya]` (not a column of the model)")
def _missing_column(ctx: Any) -> str:
    return _export(ctx, ORDERS, partition_cols=["dya"])


@runtime_case("`partition_cols` names every column of the model")
def _all_columns(ctx: Any) -> str:
    return _export(ctx, ORDERS, partition_cols=["id", "day"])


@runtime_case("`partition_cols: [tags]` where `tags` is a list column")
def _list_column(ctx: Any) -> str:
    con = duckdb.connect()
    con.execute("create table orders as select 1 as id, ['a', 'b'] as tags")
    return _export(ctx, DuckDBSource(con, "orders"), partition_cols=["tags"])


@runtime_case("a partition value too long for an S3 key")
def _long_value(ctx: Any) -> str:
    data = pa.table({"id": [1], "day": ["x" * 1100]})
    return _export(ctx, data, partition_cols=["day"])


@runtime_case("an empty-string value in a partition column")
def _empty_partition(ctx: Any) -> str:
    return _export(ctx, pa.table({"id": [1], "region": [""]}), partition_cols=["region"])


@runtime_case("a HUGEINT past 38 digits, exported as Parquet")
def _huge(ctx: Any) -> str:
    con = duckdb.connect()
    con.execute(
        "create table orders as select 170141183460469231731687303715884105727::HUGEINT AS h"
    )
    return _export(ctx, DuckDBSource(con, "orders", file_format="parquet"), file_format="parquet")


@runtime_case("NaN or an infinity in a JSON export")
def _nan(ctx: Any) -> str:
    con = duckdb.connect()
    con.execute("create table orders as select 'nan'::DOUBLE AS score")
    return _export(ctx, DuckDBSource(con, "orders", file_format="json"), file_format="json")


@runtime_case("an Arrow type Parquet cannot hold (an Arrow source)")
def _no_parquet_form(ctx: Any) -> str:
    data = pa.table({"span": pa.array([pa.MonthDayNano([1, 2, 3])])})
    return _export(ctx, data, file_format="parquet")


@runtime_case("the bucket does not exist")
def _no_bucket(ctx: Any) -> str:
    ctx.bucket = "no-such-bucket"
    return _export(ctx, ORDERS)


@runtime_case("nothing listens at `endpoint_url`")
def _unreachable(ctx: Any) -> str:
    return _export(ctx, ORDERS, endpoint="http://127.0.0.1:9")


@runtime_case("the credentials may not write to the bucket")
def _access_denied(ctx: Any) -> str:
    ctx.proxy.add(Rule(STATUS, times=None, status=403, code="AccessDenied"))
    return _export(ctx, ORDERS, endpoint=ctx.proxy.endpoint)


@runtime_case("the access key is unknown to S3")
def _bad_key(ctx: Any) -> str:
    ctx.proxy.add(Rule(STATUS, times=None, status=403, code="InvalidAccessKeyId"))
    return _export(ctx, ORDERS, endpoint=ctx.proxy.endpoint)


@runtime_case("S3 keeps answering 500 Internal Error")
def _server_error(ctx: Any) -> str:
    ctx.proxy.add(Rule(STATUS, times=None, status=500, code="InternalError"))
    return _export(ctx, ORDERS, endpoint=ctx.proxy.endpoint)


def normalise(message: str, bucket: str = "") -> str:
    """Stable text for the table: fixed bucket, port and generation."""
    if bucket:
        message = message.replace(bucket, "exports")
    message = re.sub(r"part-[0-9a-f]{24}-\d{5}", "part-<generation>-00001", message)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:9", message)


class Context:
    def __init__(self, bucket: str, endpoint: str, proxy: FaultProxy) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        self.proxy = proxy


@pytest.fixture
def ctx(bucket: str, s3_server: S3Server) -> Iterator[Context]:
    proxy = FaultProxy(s3_server.endpoint).start()
    yield Context(bucket, s3_server.endpoint, proxy)
    proxy.stop()


def assert_documented(case: str, message: str) -> None:
    """docs/errors.md shows ``message`` for ``case``, whole or cut short with a trailing "..."."""
    shown = documented_rows().get(case)
    row = f"| {case} | `{message}` |"
    assert shown is not None, f"docs/errors.md has no row for {case!r}; add: {row}"
    if shown.endswith("..."):
        assert message.startswith(shown[:-3]), (shown, message)
    else:
        assert shown == message


def documented_rows() -> dict[str, str]:
    """The table of docs/errors.md: what was wrong -> message."""
    section = (REPO / "docs" / "errors.md").read_text()
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 2 and cells[1].startswith("`") and cells[1].endswith("`"):
            rows[cells[0]] = cells[1][1:-1]
    return rows


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_error_message(case: str) -> None:
    message = config_message(case)
    assert "\n" not in message
    assert message.startswith(WHERE)
    assert_documented(case, message)


@pytest.mark.parametrize("case", list(RUNTIME_CASES))
def test_runtime_error_message(case: str, ctx: Context) -> None:
    bucket = ctx.bucket
    message = RUNTIME_CASES[case](ctx)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("model 'orders'")
    assert_documented(case, normalise(message, bucket))


def test_readme_table_has_no_stale_rows() -> None:
    assert set(documented_rows()) == set(CONFIG_CASES) | set(RUNTIME_CASES)


@pytest.mark.dbt
def test_dbt_run_shows_one_line_causes(tmp_path: Any, bucket: str, s3_server: S3Server) -> None:
    project = DbtProject(tmp_path / "project", s3_server.endpoint)
    project.model(
        "missing_bucket",
        """
        {{ config(materialized='table', post_hook="{{ dbt_s3_export.export_to_s3() }}",
                  meta={'s3_export': {'bucket': 'no-such-bucket', 'key': 'out/',
                                      'file_format': 'csv'}}) }}
        select 1 as id
        """,
    )
    project.model(
        "unreachable",
        """
        {{ config(materialized='table', post_hook="{{ dbt_s3_export.export_to_s3() }}",
                  meta={'s3_export': {'bucket': '"""
        + bucket
        + """', 'key': 'out/',
                                      'file_format': 'csv',
                                      'endpoint_url': 'http://127.0.0.1:9'}}) }}
        select 1 as id
        """,
    )
    result = project.dbt("run", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    missing = [line for line in lines if "s3_export failed for model 'missing_bucket'" in line]
    assert len(missing) == 1, result.output
    assert missing[0].strip() == (
        "s3_export failed for model 'missing_bucket' exporting to s3://no-such-bucket/out/: "
        "bucket 'no-such-bucket' does not exist "
        f"(write {_first_key(missing[0])}). Create it or fix 'bucket'"
    )
    unreachable = [line for line in lines if "s3_export failed for model 'unreachable'" in line]
    assert len(unreachable) == 1, result.output
    assert "cannot reach the S3 endpoint" in unreachable[0]
    assert "Check endpoint_url/region and the network" in unreachable[0]


def _first_key(line: str) -> str:
    match = re.search(r"out/part-[0-9a-f]{24}-\d{5}\.csv", line)
    assert match, line
    return match.group(0)
