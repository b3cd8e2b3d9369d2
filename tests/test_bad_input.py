"""Every bad input we know of, and the message it gets.

The same cases make the table in docs/errors.md ("Errors you may see"); a test checks
that each row of that table is what the code says today.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export import (
    ArrowSource,
    DuckDBSource,
    ExportConfig,
    RunContext,
    S3ExportError,
    run_export,
)
from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings

from .bad_servers import SilentServer
from .engine import engine_client
from .faultproxy import STATUS, FaultProxy, Rule
from .support import REPO, DbtProject, S3Server

CONTEXT = ""  # a model's only s3_export entry; the plugin names the model itself
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
    "`symlink_manifests: true` with a single-object key": {"symlink_manifests": True},
    "`symlink_manifests: true` with `file_format: json`": {
        "symlink_manifests": True,
        "key": "out/",
        "file_format": "json",
    },
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
    "`endpoint_url: http://user:secret@minio:9000`": {
        "endpoint_url": "http://user:secret@minio:9000"
    },
    "`access_key_id` with a space inside": {
        "access_key_id": "AKIA EXAMPLE",
        "secret_access_key": "x" * 40,
    },
    "`where: true); COPY (SELECT 1) TO 'owned.txt'; SELECT (true`": {
        "where": "true); COPY (SELECT 1) TO 'owned.txt'; SELECT (true"
    },
    "`where: id > 0 UNION SELECT * FROM other`": {"where": "id > 0 UNION SELECT * FROM other"},
    "`where: id IN (SELECT id FROM other)`": {"where": "id IN (SELECT id FROM other)"},
    "`metadata: {source system: dbt}` (a space in the key)": {"metadata": {"source system": "dbt"}},
    "`metadata: {city: Zürich}` (not ASCII)": {"metadata": {"city": "Zürich"}},
    "`metadata` over 2 KB": {"metadata": {"notes": "x" * 2100}},
    "`tags: {team: a&b}`": {"tags": {"team": "a&b"}},
    "`content_type: csv`": {"content_type": "csv"},
    "`max_partitions: 0`": {"max_partitions": 0, "key": "out/"},
    "`read_timeout: 0`": {"read_timeout": 0},
    "`total_timeout: 20` with the default connect and read timeouts": {"total_timeout": 20},
    "`filename_template: part-{run_id-{part}`": {
        "key": "out/",
        "filename_template": "part-{run_id-{part}",
    },
    "`filename_template: {part:03}-{run_id}`": {
        "key": "out/",
        "filename_template": "{part:03}-{run_id}",
    },
    "a `filename_template` too long for S3 keys": {
        "key": "out/",
        "filename_template": "x" * 1000 + "-{run_id}-{part}",
    },
}


def config_message(case: str) -> str:
    options = {**BASE, **CONFIG_CASES[case]}
    options = {k: v for k, v in options.items() if v is not None}
    with pytest.raises(S3ExportError) as failure:
        ExportConfig.parse(options, context=CONTEXT)
    return str(failure.value)


# Cases that need data or an S3 endpoint: name -> function(context) returning the message.
RUNTIME_CASES: dict[str, Callable[[Any], str]] = {}


def runtime_case(name: str) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    def register(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        RUNTIME_CASES[name] = fn
        return fn

    return register


def _export(
    ctx: Any,
    data: pa.Table | Any,
    endpoint: str | None = None,
    model: str = "orders",
    fails: bool = True,
    **options: Any,
) -> str:
    opts = {"bucket": ctx.bucket, "key": "out/", "file_format": "csv", **options}
    cfg = ExportConfig.parse(opts, context=CONTEXT)
    client = engine_client(endpoint or ctx.endpoint)
    source = ArrowSource(data) if isinstance(data, pa.Table) else data
    run = RunContext(model=model, unique_id=f"model.shop.{model}")
    if not fails:
        run_export(cfg, source, client, run)
        return ""
    with pytest.raises(S3ExportError) as failure:
        run_export(cfg, source, client, run)
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


@runtime_case("`where: amount` (a number, not a condition)")
def _not_a_condition(ctx: Any) -> str:
    con = duckdb.connect()
    con.execute("create table orders as select 1 as id, 2.5 as amount")
    return _export(ctx, DuckDBSource(con, "orders", "amount"))


@runtime_case("a model with more partitions than `max_partitions`")
def _too_many_partitions(ctx: Any) -> str:
    con = duckdb.connect()
    con.execute("create table orders as select i as id, i as day from range(12) t(i)")
    source = DuckDBSource(con, "orders", max_partitions=10)
    return _export(ctx, source, partition_cols=["day"], max_partitions=10)


@runtime_case("S3 takes connections but never answers")
def _silent(ctx: Any) -> str:
    with SilentServer() as silent:
        cfg = ExportConfig.parse(
            {
                "bucket": ctx.bucket,
                "key": "out/",
                "file_format": "csv",
                "endpoint_url": silent.endpoint,
                "read_timeout": 2,
                "total_timeout": 13,  # a second attempt might end after 13 s: none is made
            },
            context=CONTEXT,
        )
        client = ClientCache().get(ConnectionSettings.of(cfg))
        with pytest.raises(S3ExportError) as failure:
            run_export(cfg, ArrowSource(ORDERS), client, RunContext(model="orders"))
    return str(failure.value)


@runtime_case("the temporary directory (TMPDIR) runs out of space")
def _no_spill_space(ctx: Any) -> str:
    from .test_hostile import spill_failure

    text = spill_failure(ctx.tmp / "small", ctx.endpoint, ctx.bucket)
    return text.removeprefix("LocalSpaceError ").replace(str(ctx.tmp / "small"), "/tmp")


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


@runtime_case("the secret access key is wrong")
def _wrong_secret(ctx: Any) -> str:
    ctx.proxy.add(Rule(STATUS, times=None, status=403, code="SignatureDoesNotMatch"))
    return _export(ctx, ORDERS, endpoint=ctx.proxy.endpoint)


@runtime_case("S3 keeps answering 500 Internal Error")
def _server_error(ctx: Any) -> str:
    ctx.proxy.add(Rule(STATUS, times=None, status=500, code="InternalError"))
    return _export(ctx, ORDERS, endpoint=ctx.proxy.endpoint)


@runtime_case("two models export to the same folder")
def _same_folder(ctx: Any) -> str:
    _export(ctx, ORDERS, model="customers", fails=False)
    return _export(ctx, ORDERS)


@runtime_case("one model's folder is inside another's")
def _nested_folder(ctx: Any) -> str:
    _export(ctx, ORDERS, model="customers", fails=False)
    return _export(ctx, ORDERS, key="out/daily/")


@runtime_case("another run of the same export is still writing")
def _lease_held(ctx: Any) -> str:
    _export(ctx, ORDERS, fails=False)
    s3 = engine_client(ctx.endpoint)
    lease = json.loads(s3.get_object(Bucket=ctx.bucket, Key="out/_lease.json")["Body"].read())
    lease["state"] = "held"
    lease["holder"] = {
        "generation": "01a2105852e252eebed31898",
        "model": "orders",
        "host": "ci-runner-7",
        "pid": 4242,
        "invocation_id": "5f1e-...",
        "since": "2024-05-01T12:00:00+00:00",
    }
    s3.put_object(Bucket=ctx.bucket, Key="out/_lease.json", Body=json.dumps(lease).encode())
    return _export(ctx, ORDERS, lease_wait_seconds=0)


@runtime_case("`_manifest.json` was edited by hand (`files` is not a list)")
def _damaged_manifest(ctx: Any) -> str:
    _export(ctx, ORDERS, fails=False)
    s3 = engine_client(ctx.endpoint)
    manifest = json.loads(s3.get_object(Bucket=ctx.bucket, Key="out/_manifest.json")["Body"].read())
    manifest["files"] = {"see": "elsewhere"}
    s3.put_object(Bucket=ctx.bucket, Key="out/_manifest.json", Body=json.dumps(manifest).encode())
    return _export(ctx, ORDERS)


@runtime_case("`partition_cols` changed under `mode: overwrite_partitions`")
def _layout_changed(ctx: Any) -> str:
    mode = {"mode": "overwrite_partitions"}
    data = ORDERS.append_column("shop", pa.array(["north", "south"]))
    _export(ctx, data, partition_cols=["day"], fails=False, **mode)
    return _export(ctx, data, partition_cols=["day", "shop"], **mode)


def normalise(message: str, bucket: str = "") -> str:
    """Stable text for the table: fixed bucket, port and generation."""
    if bucket:
        message = message.replace(bucket, "exports")
    message = re.sub(r"part-[0-9a-f]{24}-\d{5}", "part-<generation>-00001", message)
    message = re.sub(r"_probe-[0-9a-f]{16}", "_probe-<random>", message)
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:9", message)


class Context:
    def __init__(self, bucket: str, endpoint: str, proxy: FaultProxy, tmp: Path) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        self.proxy = proxy
        self.tmp = tmp


@pytest.fixture
def ctx(bucket: str, s3_server: S3Server, tmp_path: Path) -> Iterator[Context]:
    proxy = FaultProxy(s3_server.endpoint).start()
    yield Context(bucket, s3_server.endpoint, proxy, tmp_path)
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
    assert message.startswith("option '")
    assert_documented(case, message)


@pytest.mark.parametrize("case", list(RUNTIME_CASES))
def test_runtime_error_message(case: str, ctx: Context) -> None:
    bucket = ctx.bucket
    message = RUNTIME_CASES[case](ctx)
    assert "\n" not in message and "Traceback" not in message
    assert "model 'orders'" not in message  # the plugin names the model, once
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
        "bucket 'no-such-bucket' does not exist (write to out/). Create it or fix 'bucket'"
    )
    unreachable = [line for line in lines if "s3_export failed for model 'unreachable'" in line]
    assert len(unreachable) == 1, result.output
    assert "cannot reach the S3 endpoint" in unreachable[0]
    assert "Check endpoint_url/region and the network" in unreachable[0]
