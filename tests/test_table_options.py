"""Options of table formats and Glue registration: checked before any I/O."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from dbt_s3_export import ConfigError, ExportConfig
from dbt_s3_export.errors import ColumnError
from dbt_s3_export.options.config import (
    PartitionField,
    catalog_secret_values,
    parse_partition_field,
)
from dbt_s3_export.tables.common import table_types
from dbt_s3_export.tables.glue import hive_type, partition_values, table_input

ICEBERG = {
    "bucket": "lake",
    "key": "warehouse/orders/",
    "file_format": "iceberg",
    "namespace": "analytics",
    "table": "orders",
    "catalog": {"type": "sql", "uri": "sqlite:////tmp/catalog.db"},
}


def fails(options: dict[str, Any], option: str, text: str, defaults: Any = None) -> None:
    with pytest.raises(ConfigError) as info:
        ExportConfig.parse(options, defaults)
    assert info.value.option == option, str(info.value)
    assert text in str(info.value)


def test_iceberg_options_are_parsed() -> None:
    cfg = ExportConfig.parse({**ICEBERG, "partition_cols": ["region", "day(ts)", "bucket(16, id)"]})
    assert cfg.is_table and cfg.catalog is not None and cfg.catalog.type == "sql"
    assert cfg.codec == "zstd"
    assert [parse_partition_field(c) or PartitionField(c) for c in cfg.partition_cols] == [
        PartitionField("region"),
        PartitionField("ts", "day"),
        PartitionField("id", "bucket", 16),
    ]
    assert PartitionField("id", "bucket", 16).name == "id_bucket_16"
    assert PartitionField("ts", "day").name == "ts_day"


@pytest.mark.parametrize(
    ("change", "option", "text"),
    [
        ({"namespace": None}, "namespace", "is required for an iceberg table"),
        ({"catalog": None}, "catalog", "is required for an iceberg table"),
        ({"catalog": {"uri": "x"}}, "catalog", "needs a type"),
        ({"catalog": {"type": "hive"}}, "type", "must be one of glue, rest, sql"),
        ({"catalog": {"type": "sql"}}, "uri", "is required for a sql catalog"),
        ({"catalog": {"type": "sql", "uri": "mysql://h/db"}}, "uri", "sqlite or postgresql"),
        ({"catalog": {"type": "rest", "uri": "ftp://x"}}, "uri", "http:// or https://"),
        ({"catalog": {"type": "glue", "uri": "x"}}, "uri", "does not apply to a glue catalog"),
        (
            {"catalog": {"type": "glue"}, "table": "Orders"},
            "table",
            "'Orders' is not a Glue name",
        ),
        ({"partition_cols": ["week(ts)"]}, "partition_cols", "not an Iceberg partition transform"),
        ({"partition_cols": ["bucket(ts)"]}, "partition_cols", "bucket takes a width"),
        (
            {"partition_cols": ["day(ts)"], "mode": "overwrite_partitions"},
            "mode",
            "partition_cols of plain columns",
        ),
        ({"filename_template": "x-{run_id}-{part}"}, "filename_template", "pyiceberg"),
        ({"sse": "AES256"}, "sse", "shapes the files of a file export"),
        ({"key": "", "partition_cols": ["p"]}, "key", "not the bucket root"),
        ({"glue": {"database": "a", "table": "b"}}, "glue", "use catalog: {type: glue}"),
    ],
)
def test_bad_iceberg_options(change: dict[str, Any], option: str, text: str) -> None:
    options = {**ICEBERG, **change}
    fails({k: v for k, v in options.items() if v is not None}, option, text)


def test_delta_is_named_by_its_location() -> None:
    cfg = ExportConfig.parse({"bucket": "lake", "key": "delta/orders", "file_format": "delta"})
    assert cfg.is_table and cfg.codec == "snappy"
    fails(
        {"bucket": "lake", "key": "d/", "file_format": "delta", "table": "orders"},
        "table",
        "a delta table is named by its location",
    )
    # A profile's catalog serves its Iceberg exports and leaves the others alone.
    defaults = {"catalog": {"type": "glue", "region": "eu-west-1"}}
    ExportConfig.parse({"bucket": "lake", "key": "d/", "file_format": "delta"}, defaults)


def test_a_profile_catalog_is_laid_under_the_model_catalog() -> None:
    defaults = {"catalog": {"type": "glue", "region": "eu-west-1", "endpoint_url": "http://g:1"}}
    options = {k: v for k, v in ICEBERG.items() if k != "catalog"}
    cfg = ExportConfig.parse({**options, "catalog": {"catalog_id": "123"}}, defaults)
    assert cfg.catalog is not None
    assert (cfg.catalog.type, cfg.catalog.region, cfg.catalog.catalog_id) == (
        "glue",
        "eu-west-1",
        "123",
    )
    # Another type replaces the profile's catalog whole.
    cfg = ExportConfig.parse({**options, "catalog": ICEBERG["catalog"]}, defaults)
    assert cfg.catalog is not None and cfg.catalog.region is None


def test_catalog_secrets_are_found_and_never_shown() -> None:
    catalog = {"type": "rest", "uri": "https://user:pa55word@cat.example", "token": "tok-123"}
    assert sorted(catalog_secret_values(catalog)) == ["pa55word", "tok-123"]
    cfg = ExportConfig.parse({**ICEBERG, "catalog": catalog})
    for text in (repr(cfg), str(cfg.redacted())):
        assert "tok-123" not in text and "pa55word" not in text


@pytest.mark.parametrize(
    ("change", "option", "text"),
    [
        ({"file_format": "json", "key": "x/"}, "glue", "file_format jsonl"),
        ({"key": "one.parquet"}, "glue", "names one object"),
        ({"include_partition_cols": True, "partition_cols": ["p"]}, "glue", "defined twice"),
        ({"glue": {"database": "lake", "tabel": "x"}}, "tabel", "Did you mean 'table'?"),
        ({"glue": {"database": "Lake", "table": "x"}}, "database", "not a Glue name"),
        ({"glue": {"table": "x"}}, "database", "is required"),
    ],
)
def test_bad_glue_options(change: dict[str, Any], option: str, text: str) -> None:
    options = {
        "bucket": "lake",
        "key": "x/",
        "file_format": "parquet",
        "glue": {"database": "lake", "table": "x"},
        **change,
    }
    fails(options, option, text)


def test_a_profile_glue_endpoint_serves_models_that_name_a_table() -> None:
    defaults = {"glue": {"endpoint_url": "http://glue:1", "region": "eu-west-1"}}
    base = {"bucket": "lake", "key": "x/", "file_format": "csv"}
    assert ExportConfig.parse(base, defaults).glue is None
    cfg = ExportConfig.parse({**base, "glue": {"database": "lake", "table": "x"}}, defaults)
    assert cfg.glue is not None and cfg.glue.endpoint_url == "http://glue:1"


def test_hive_types_and_partitions() -> None:
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("big", pa.uint64()),
            ("amount", pa.decimal128(18, 2)),
            ("at", pa.timestamp("us", "UTC")),
            ("tags", pa.list_(pa.string())),
            ("pair", pa.struct([("a", pa.int32()), ("b", pa.dictionary(pa.int8(), pa.string()))])),
            ("day", pa.date32()),
        ]
    )
    assert [hive_type(f.type, "csv") for f in schema] == [
        "bigint",
        "decimal(20,0)",
        "decimal(18,2)",
        "timestamp",
        "array<string>",
        "struct<a:int,b:string>",
        "date",
    ]
    assert hive_type(pa.uint64(), "parquet") == "bigint"
    cfg = ExportConfig.parse(
        {
            "bucket": "lake",
            "key": "x/",
            "file_format": "parquet",
            "partition_cols": ["day"],
            "glue": {"database": "lake", "table": "x"},
        }
    )
    assert cfg.glue is not None
    made = table_input(cfg, cfg.glue, schema, "model.p.x#0")
    assert [c["Name"] for c in made["StorageDescriptor"]["Columns"]] == schema.names[:-1]
    assert made["PartitionKeys"] == [{"Name": "day", "Type": "date"}]
    assert made["Parameters"]["dbt_s3_export.export_id"] == "model.p.x#0"
    assert partition_values("a=x%2Fy/b=__HIVE_DEFAULT_PARTITION__/") == [
        "x/y",
        "__HIVE_DEFAULT_PARTITION__",
    ]


def test_table_types_widen_unsigned_and_refuse_what_tables_cannot_hold() -> None:
    schema = pa.schema(
        [("a", pa.uint32()), ("b", pa.uint64()), ("c", pa.dictionary(pa.int8(), pa.string()))]
    )
    assert table_types(schema, "iceberg").types == [pa.int64(), pa.decimal128(20, 0), pa.string()]
    with pytest.raises(ColumnError, match=r"column 'n' \(null\) has no type"):
        table_types(pa.schema([("n", pa.null())]), "delta")
    with pytest.raises(ColumnError, match=r"column 't' \(timestamp\[ns\]\) has nanosecond"):
        table_types(pa.schema([("t", pa.timestamp("ns"))]), "iceberg")
    with pytest.raises(ColumnError, match=r"column 't' \(time64\[us\]\) is a TIME"):
        table_types(pa.schema([("t", pa.time64("us"))]), "delta")


@pytest.mark.parametrize(
    ("recorded", "earlier", "take_over_from", "outcome"),
    [
        ("model.p.m#0", None, None, None),  # its own: nothing to rewrite
        ("model.p.m#0", "model.q.m#0", None, None),  # the record wins over older markers
        (None, "model.p.m#0", None, "written by an earlier version"),
        ("model.q.m#0", None, "model.q.m#0", "passes from export 'model.q.m#0'"),
        (None, "model.q.m#0", "model.q.m#0", "passes from export 'model.q.m#0'"),
        (None, None, "*", "which named no owner, passes to export 'model.p.m#0'"),
        ("model.q.m#0", None, None, "belongs to export 'model.q.m#0'"),
        ("model.q.m#0", None, "*", "belongs to export 'model.q.m#0'"),  # '*' adopts no owner's
        ("model.q.m#0", None, "model.r.m#0", "belongs to export 'model.q.m#0'"),
        (None, "model.q.m#0", None, "belongs to export 'model.q.m#0'"),
        (None, None, None, "names no dbt-s3-export owner"),
        (None, None, "model.q.m#0", "names no dbt-s3-export owner"),
    ],
)
def test_table_owners(
    recorded: str | None, earlier: str | None, take_over_from: str | None, outcome: str | None
) -> None:
    from dbt_s3_export import OwnershipConflict, RunContext
    from dbt_s3_export.tables.common import check_owner

    options = {"bucket": "lake", "key": "d/", "file_format": "delta"}
    cfg = ExportConfig.parse({**options, "take_over_from": take_over_from})
    ctx = RunContext(model="m", unique_id="model.p.m")

    def check() -> str | None:
        return check_owner(cfg, ctx, "Delta table t", recorded, earlier, elsewhere="another key")

    if outcome is None:
        assert check() is None
        return
    if "passes" in outcome or "earlier" in outcome:  # allowed, and the owner is rewritten
        assert outcome in str(check())
        return
    with pytest.raises(OwnershipConflict) as info:
        check()
    message = str(info.value)
    assert outcome in message
    assert "this export is 'model.p.m#0'" in message
    assert "Nothing was written" in message
    fix = "take_over_from: '*'" if "no dbt-s3-export owner" in outcome else "take_over_from: 'mo"
    assert fix in message


def test_star_is_no_export_id() -> None:
    fails(
        {"bucket": "lake", "key": "d/", "file_format": "delta", "export_id": "*"},
        "export_id",
        "'*' is not an export id",
    )
