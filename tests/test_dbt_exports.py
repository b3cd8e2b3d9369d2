"""End to end: real `dbt run`/`dbt build` on a DuckDB file, exports read back from the S3 server."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .support import (
    REPO,
    DbtProject,
    S3Server,
    export_meta,
    exported_model,
    list_keys,
    only_on_first_server,
    read_object,
    s3_client,
)

pytestmark = pytest.mark.dbt

TYPED_SQL = """
select * from (values
    (1, 'alice', 19.99::decimal(10,2), date '2024-01-03', timestamp '2024-01-03 10:15:00.5',
     timestamptz '2024-01-03 10:15:00+00', true, [1, 2], {'a': 1, 'b': 'x'}, 1.5::double,
     'quote " and, comma', 9007199254740993::bigint),
    (2, 'bøb ünïcode', -5.00::decimal(10,2), date '1999-12-31', timestamp '1999-12-31 23:59:59',
     timestamptz '2000-06-01 12:00:00+02', false, [], {'a': null, 'b': 'line
break'}, -0.25::double, '', -1::bigint),
    (3, null, null, null, null, null, null, null, null, null, null, null)
) t(id, name, amount, d, ts, tstz, flag, tags, info, score, note, big)
"""


def typed_model(fmt: str, key: str, extra: str = "") -> str:
    return exported_model(export_meta("__BUCKET__", key, fmt, extra), TYPED_SQL)


@pytest.fixture(scope="module")
def typed_run(tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server) -> dict[str, Any]:
    """One dbt run with threads: 4 that exports the typed model in every format and shape."""
    s3 = s3_client(s3_server.endpoint)
    bucket = "typed-exports"
    s3.create_bucket(Bucket=bucket)
    project = DbtProject(tmp_path_factory.mktemp("typed"), s3_server.endpoint, threads=4)
    models = {
        "typed_parquet": typed_model("parquet", "typed/typed.parquet"),
        "typed_csv": typed_model("csv", "typed/typed.csv"),
        "typed_json": typed_model("json", "typed/typed.json"),
        "typed_jsonl": typed_model("jsonl", "typed/typed.jsonl"),
        "typed_tsv": typed_model(
            "csv", "typed/typed_noheader.tsv", ", 'csv_delimiter': '\\\\t', 'csv_header': false"
        ),
        "empty_parquet": typed_model("parquet", "empty/empty.parquet").replace(") t(id", ") t(id")
        + "where false",
        "empty_csv": typed_model("csv", "empty/empty.csv") + "where false",
        "empty_json": typed_model("json", "empty/empty.json") + "where false",
        "empty_jsonl": typed_model("jsonl", "empty/empty.jsonl") + "where false",
    }
    for name, sql in models.items():
        project.model(name, sql.replace("__BUCKET__", bucket))
    result = project.dbt("run")
    return {"project": project, "s3": s3, "bucket": bucket, "output": result.output}


def model_rows(project: DbtProject, name: str) -> list[dict[str, Any]]:
    table = project.arrow(f"select * from main.{name} order by id")
    return table.to_pylist()  # type: ignore[no-any-return]


@pytest.mark.quick
def test_parquet_keeps_duckdb_types(typed_run: dict[str, Any]) -> None:
    project, s3, bucket = typed_run["project"], typed_run["s3"], typed_run["bucket"]
    data = read_object(s3, bucket, "typed/typed.parquet")
    table = pq.read_table(io.BytesIO(data))
    schema = table.schema
    assert schema.field("id").type == pa.int32()
    assert schema.field("amount").type == pa.decimal128(10, 2)
    assert schema.field("d").type == pa.date32()
    assert schema.field("ts").type == pa.timestamp("us")
    assert schema.field("tstz").type.tz is not None
    assert pa.types.is_list(schema.field("tags").type)
    assert pa.types.is_struct(schema.field("info").type)
    assert table.sort_by("id").to_pylist() == model_rows(project, "typed_parquet")


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value
    return value


def _parse_temporal(text: str) -> Any:
    if "T" in text:
        parsed = dt.datetime.fromisoformat(text)
        return parsed.astimezone(dt.timezone.utc) if parsed.tzinfo else parsed
    return dt.date.fromisoformat(text)


def _expected_text_row(row: dict[str, Any]) -> dict[str, Any]:
    """What a model row becomes once written as JSON text and parsed back."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, (dt.datetime, dt.date)):
            out[name] = _iso(value)
        elif isinstance(value, decimal.Decimal):
            out[name] = value
        else:
            out[name] = value
    return out


def _decode_json_row(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    for name in ("d", "ts", "tstz"):
        if out[name] is not None:
            out[name] = _parse_temporal(out[name])
    if out["amount"] is not None:
        out["amount"] = decimal.Decimal(str(out["amount"])).quantize(decimal.Decimal("0.01"))
    return out


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.quick
def test_json_formats_read_back_value_by_value(typed_run: dict[str, Any], fmt: str) -> None:
    project, s3, bucket = typed_run["project"], typed_run["s3"], typed_run["bucket"]
    text = read_object(s3, bucket, f"typed/typed.{fmt}").decode()
    if fmt == "json":
        objects = json.loads(text)
        assert isinstance(objects, list)
    else:
        lines = text.splitlines()
        assert all(line.startswith("{") for line in lines)
        objects = [json.loads(line) for line in lines]
    got = sorted((_decode_json_row(o) for o in objects), key=lambda r: r["id"])
    expected = [_expected_text_row(r) for r in model_rows(project, f"typed_{fmt}")]
    assert got == expected
    assert '"ts":"2024-01-03T10:15:00.5"' in text


def _decode_csv_row(row: dict[str, str]) -> dict[str, Any]:
    def maybe(name: str, fn: Any) -> Any:
        return None if row[name] == "" else fn(row[name])

    return {
        "id": int(row["id"]),
        "name": row["name"] or None,
        "amount": maybe("amount", decimal.Decimal),
        "d": maybe("d", _parse_temporal),
        "ts": maybe("ts", _parse_temporal),
        "tstz": maybe("tstz", _parse_temporal),
        "flag": maybe("flag", lambda v: v == "true"),
        "tags": maybe("tags", json.loads),
        "info": maybe("info", json.loads),
        "score": maybe("score", float),
        "note": row["note"],
        "big": maybe("big", int),
    }


@pytest.mark.quick
def test_csv_reads_back_value_by_value(typed_run: dict[str, Any]) -> None:
    project, s3, bucket = typed_run["project"], typed_run["s3"], typed_run["bucket"]
    text = read_object(s3, bucket, "typed/typed.csv").decode()
    assert text.splitlines()[0].replace('"', "") == (
        "id,name,amount,d,ts,tstz,flag,tags,info,score,note,big"
    )
    rows = [_decode_csv_row(r) for r in csv.DictReader(io.StringIO(text))]
    expected = [_expected_text_row(r) for r in model_rows(project, "typed_csv")]
    for got, want in zip(rows, expected, strict=True):
        # CSV cannot tell an empty string from a missing value.
        want["note"] = want["note"] or ""
        assert got == want


@pytest.mark.quick
def test_csv_delimiter_and_no_header(typed_run: dict[str, Any]) -> None:
    s3, bucket = typed_run["s3"], typed_run["bucket"]
    text = read_object(s3, bucket, "typed/typed_noheader.tsv").decode()
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    assert len(rows) == 3
    assert rows[0][0] == "1" and rows[0][1] == "alice"


@pytest.mark.quick
def test_empty_models_give_valid_files(typed_run: dict[str, Any]) -> None:
    s3, bucket = typed_run["s3"], typed_run["bucket"]
    table = pq.read_table(io.BytesIO(read_object(s3, bucket, "empty/empty.parquet")))
    assert table.num_rows == 0 and "tstz" in table.column_names
    assert read_object(s3, bucket, "empty/empty.csv").decode().replace('"', "").strip() == (
        "id,name,amount,d,ts,tstz,flag,tags,info,score,note,big"
    )
    assert json.loads(read_object(s3, bucket, "empty/empty.json")) == []
    assert read_object(s3, bucket, "empty/empty.jsonl") == b""


@pytest.mark.quick
def test_run_logs_a_summary_and_the_export_statement(typed_run: dict[str, Any]) -> None:
    output = typed_run["output"]
    summary = "s3_export: typed_parquet -> s3://typed-exports/typed/typed.parquet (parquet): "
    assert summary + "3 rows, 1 file," in output
    log = (typed_run["project"].root / "logs" / "dbt.log").read_text()
    assert 'TO "s3://typed-exports/typed/typed.csv"' in log
    assert "TYPE S3" in log


BASIC_EXAMPLE = """
{{ config(
    materialized='table',
    meta={"s3_export": {
        "bucket": "my-output-bucket",
        "key": "orders/all_orders.parquet",
        "file_format": "parquet",
        "region": "us-east-1"
    }},
    post_hook="{{ dbt_s3_export.export_to_s3() }}") }}
select range as order_id, 'customer_' || range as customer, range * 1.5 as amount
from range(1000)
"""


def test_reference_basic_export_example(project: DbtProject, s3: Any, s3_server: S3Server) -> None:
    s3_server.fresh_bucket("my-output-bucket")
    project.model("processed_orders", BASIC_EXAMPLE)
    project.dbt("run")
    table = pq.read_table(
        io.BytesIO(read_object(s3, "my-output-bucket", "orders/all_orders.parquet"))
    )
    assert (
        table.sort_by("order_id").to_pylist()
        == project.arrow("select * from main.processed_orders order by order_id").to_pylist()
    )


def test_materializations_hooks_and_config_styles(
    project: DbtProject, s3: Any, bucket: str
) -> None:
    """View, incremental, transaction: false, YAML meta, folder-wide hook and list exports."""
    project.project_config = {
        "models": {
            "export_test": {"exported": {"+post-hook": "{{ dbt_s3_export.export_to_s3() }}"}}
        }
    }
    project.write_project()
    project.model(
        "a_view",
        exported_model(
            export_meta(bucket, "view/a_view.csv", "csv"),
            "select range as id from range(5)",
            materialized="view",
        ),
    )
    project.model(
        "an_incremental",
        exported_model(
            export_meta(bucket, "inc/an_incremental.jsonl", "jsonl"),
            "select range as id from range({{ 3 if is_incremental() else 2 }})",
            materialized="incremental', unique_key='id",
        ),
    )
    project.model(
        "after_commit",
        exported_model(
            export_meta(bucket, "commit/after.parquet", "parquet"),
            "select 42 as answer",
            hook="post_hook=after_commit('{{ dbt_s3_export.export_to_s3() }}')",
        ),
    )
    project.model("in_folder", "select 1 as id, 'x' as v", folder="models/exported")
    project.model("no_meta", "select 1 as id", folder="models/exported")
    project.file(
        "models/exported/schema.yml",
        f"""
        version: 2
        models:
          - name: in_folder
            config:
              meta:
                s3_export:
                  - {{bucket: {bucket}, key: folder/in_folder.parquet, file_format: parquet}}
                  - {{bucket: {bucket}, key: folder/in_folder.json, file_format: json}}
        """,
    )
    project.dbt("run")
    project.dbt("run")  # the incremental model grows on the second run
    keys = list_keys(s3, bucket)
    assert keys == [
        "commit/after.parquet",
        "folder/in_folder.json",
        "folder/in_folder.parquet",
        "inc/an_incremental.jsonl",
        "view/a_view.csv",
    ]
    lines = read_object(s3, bucket, "inc/an_incremental.jsonl").decode().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == [0, 1, 2]
    assert json.loads(read_object(s3, bucket, "folder/in_folder.json")) == [{"id": 1, "v": "x"}]
    view_csv = read_object(s3, bucket, "view/a_view.csv").decode().split()
    assert view_csv[1:] == ["0", "1", "2", "3", "4"]


BAD_CONFIGS = {
    "bad_format": (
        "{'bucket': 'b-b-b', 'key': 'x.xlsx', 'file_format': 'xlsx'}",
        "option 'file_format': must be one of csv, parquet, json, jsonl, iceberg, delta, "
        "got 'xlsx'",
    ),
    "missing_bucket": (
        "{'key': 'x.csv', 'file_format': 'csv'}",
        "option 'bucket': is required but missing",
    ),
    "typo_option": (
        "{'bucket': 'b-b-b', 'key': 'x/', 'file_format': 'csv', 'partition_col': ['a']}",
        "option 'partition_col': unknown option. Did you mean 'partition_cols'?",
    ),
    "wrong_extension": (
        "{'bucket': 'b-b-b', 'key': 'x.csv', 'file_format': 'parquet'}",
        "has a csv extension but file_format is 'parquet'",
    ),
    "wrong_type": (
        "{'bucket': 'b-b-b', 'key': 'x.csv', 'file_format': 'csv', 'csv_header': 'no'}",
        "option 'csv_header': must be true or false",
    ),
    "not_a_dict": ("'s3://b-b-b/x.csv'", "s3_export must be a dict of options or a list of them"),
}


def test_bad_config_fails_only_that_model_with_a_clear_message(
    project: DbtProject, s3: Any, bucket: str, s3_server: S3Server, request: pytest.FixtureRequest
) -> None:
    only_on_first_server(request, s3_server, "config checks come before any request")
    for name, (meta, _) in BAD_CONFIGS.items():
        project.model(name, exported_model(meta, "select 1 as a"))
    project.model("good", exported_model(export_meta(bucket, "good.csv", "csv"), "select 1 as a"))
    result = project.dbt("run", check=False)
    assert not result.ok
    assert f"ERROR={len(BAD_CONFIGS)}" in result.output and "PASS=1" in result.output
    for name, (_, message) in BAD_CONFIGS.items():
        assert f"model '{name}'" in result.output, name
        assert message in result.output, name
    assert "Traceback" not in result.output
    assert list_keys(s3, bucket) == ["good.csv"]


def test_package_layout_is_what_users_install() -> None:
    assert (REPO / "dbt_project.yml").read_text().startswith("name: dbt_s3_export")
    assert Path(REPO / "macros" / "export_to_s3.sql").exists()
