"""The Glue Data Catalog through real ``dbt run``s: Iceberg tables in a Glue catalog, and
file exports registered as external tables, read back from Glue and checked against S3.

Only moto emulates Glue, so these tests run against moto's server (S3 and Glue on one
endpoint) rather than once per S3 server.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest

from .faultproxy import STRIP_CONDITIONS, FaultProxy, Rule
from .support import HOOK, DbtProject, MotoServer, free_port, list_keys, s3_client
from .test_secrets import DBT_META_COPIES
from .test_tables import data_sql, rows, storage

# Starts servers or dbt of its own: the fast lane (scripts/test --quick) leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


def glue(endpoint: str) -> Any:
    return boto3.client(
        "glue",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def model(project: DbtProject, name: str, entry: dict[str, Any], sql: str) -> None:
    config = f"materialized='table', meta={{'s3_export': {json.dumps(entry)}}}, {HOOK}"
    project.model(name, "{{ config(" + config + ") }}\n" + sql)


def partitions(client: Any, database: str, table: str) -> dict[tuple[str, ...], str]:
    found = client.get_partitions(DatabaseName=database, TableName=table)["Partitions"]
    return {tuple(p["Values"]): p["StorageDescriptor"]["Location"] for p in found}


@pytest.mark.dbt
def test_iceberg_table_in_a_glue_catalog(tmp_path: Path, moto: MotoServer) -> None:
    from pyiceberg.catalog.glue import GlueCatalog

    moto.create_bucket("glue-lake")
    catalog = {"type": "glue", "endpoint_url": moto.endpoint, "region": "us-east-1"}
    project = DbtProject(tmp_path / "project", moto.endpoint, plugin_config={"catalog": catalog})
    entry = {
        "bucket": "glue-lake",
        "key": "warehouse/orders",
        "file_format": "iceberg",
        "namespace": "lake",
        "table": "orders",
        "partition_cols": ["p", "bucket(4, id)"],
        "mode": "append",
    }
    for r in (1, 2):
        model(project, "orders", entry, data_sql(r))
        project.dbt("run")
    client = glue(moto.endpoint)
    table = client.get_table(DatabaseName="lake", Name="orders")["Table"]
    assert table["Parameters"]["table_type"] == "ICEBERG"
    assert table["Parameters"]["metadata_location"].startswith("s3://glue-lake/warehouse/orders/")
    iceberg = GlueCatalog("glue", client=client, **storage(moto.endpoint)).load_table("lake.orders")
    assert [str(f.transform) for f in iceberg.spec().fields] == ["identity", "bucket[4]"]
    got = iceberg.scan().to_arrow().sort_by([("id", "ascending"), ("v", "ascending")])
    found = zip(got["id"].to_pylist(), got["p"].to_pylist(), got["v"].to_pylist(), strict=True)
    assert sorted(found) == sorted(rows(1) + rows(2))
    assert len(iceberg.snapshots()) == 2
    assert iceberg.current_snapshot().summary.additional_properties["dbt.model"] == "orders"


@pytest.mark.dbt
def test_file_exports_registered_in_glue(tmp_path: Path, moto: MotoServer) -> None:
    moto.create_bucket("glue-files")
    s3 = s3_client(moto.endpoint)
    client = glue(moto.endpoint)
    glue_defaults = {"endpoint_url": moto.endpoint, "region": "us-east-1"}
    project = DbtProject(tmp_path / "project", moto.endpoint, plugin_config={"glue": glue_defaults})
    exports = {
        "pq": {"file_format": "parquet", "partition_cols": ["p"]},
        "csv": {"file_format": "csv", "csv_delimiter": "|", "compression": "gzip"},
        "jl": {"file_format": "jsonl", "partition_cols": ["p"], "mode": "overwrite_partitions"},
    }
    for r in (1, 2):
        for name, options in exports.items():
            entry = {
                "bucket": "glue-files",
                "key": f"files/{name}/",
                **options,
                "glue": {"database": "files", "table": name},
            }
            model(project, name, entry, data_sql(r))
        project.dbt("run")
        for name, options in exports.items():
            table = client.get_table(DatabaseName="files", Name=name)["Table"]
            descriptor = table["StorageDescriptor"]
            assert descriptor["Location"] == f"s3://glue-files/files/{name}/"
            partitioned = "partition_cols" in options
            columns = [(c["Name"], c["Type"]) for c in descriptor["Columns"]]
            keys = [(c["Name"], c["Type"]) for c in table.get("PartitionKeys", [])]
            if partitioned:
                assert columns == [("id", "int"), ("v", "int")]
                assert keys == [("p", "string")]
            else:
                assert columns == [("id", "int"), ("p", "string"), ("v", "int")]
                assert keys == []
            # The registered partitions are exactly the folders of the committed export.
            manifest = json.loads(
                s3.get_object(Bucket="glue-files", Key=f"files/{name}/_manifest.json")[
                    "Body"
                ].read()
            )
            folders = {f["partition"] for f in manifest["files"]}
            got = partitions(client, "files", name)
            if partitioned:
                assert got == {
                    (folder.split("=", 1)[1].rstrip("/"),): f"s3://glue-files/files/{name}/{folder}"
                    for folder in folders
                }
                for location in got.values():
                    prefix = location[len("s3://glue-files/") :]
                    assert list_keys(s3, "glue-files", prefix)
            else:
                assert got == {}
        # replace drops the partition the new run no longer has; overwrite_partitions keeps it.
        assert set(partitions(client, "files", "pq")) == {(f"p{r}",), (f"p{r + 1}",)}
        assert set(partitions(client, "files", "jl")) == {(f"p{k}",) for k in range(1, r + 2)}
    csv = client.get_table(DatabaseName="files", Name="csv")["Table"]
    serde = csv["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"] == "org.apache.hadoop.hive.serde2.OpenCSVSerde"
    assert serde["Parameters"]["separatorChar"] == "|"
    assert csv["Parameters"]["skip.header.line.count"] == "1"
    assert csv["Parameters"]["compressionType"] == "gzip"
    jl = client.get_table(DatabaseName="files", Name="jl")["Table"]
    assert jl["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"] == (
        "org.openx.data.jsonserde.JsonSerDe"
    )
    # The definition is only replaced when it changes: two runs, one version per table.
    versions = client.get_table_versions(DatabaseName="files", TableName="pq")["TableVersions"]
    assert len(versions) == 1


@pytest.mark.dbt
def test_refusals_before_anything_is_written(tmp_path: Path, moto: MotoServer) -> None:
    """A Glue table of another export, a server that ignores conditional writes (Delta
    would lose commits there), and a REST catalog whose token must not leak."""
    moto.create_bucket("glue-owned")
    client = glue(moto.endpoint)
    client.create_database(DatabaseInput={"Name": "owned"})
    client.create_table(
        DatabaseName="owned",
        TableInput={"Name": "orders", "Parameters": {"dbt_s3_export.export_id": "someone.else#0"}},
    )
    project = DbtProject(tmp_path / "project", moto.endpoint)
    entry = {
        "bucket": "glue-owned",
        "key": "orders/",
        "file_format": "parquet",
        "glue": {"database": "owned", "table": "orders", "endpoint_url": moto.endpoint},
    }
    model(project, "orders", entry, data_sql(1))
    proxy = FaultProxy(moto.endpoint).start()
    proxy.add(Rule(STRIP_CONDITIONS, times=None))
    unsafe = {"bucket": "glue-owned", "key": "delta/", "file_format": "delta"}
    model(project, "unsafe", {**unsafe, "endpoint_url": proxy.endpoint}, data_sql(1))
    token = "rest-token-0123456789"
    rest = {
        "bucket": "glue-owned",
        "key": "rest/",
        "file_format": "iceberg",
        "namespace": "lake",
        "table": "rest",
        "catalog": {"type": "rest", "uri": f"http://127.0.0.1:{free_port()}", "token": token},
    }
    model(project, "rest", rest, data_sql(1))
    try:
        result = project.dbt("run", check=False)
    finally:
        proxy.stop()
    assert not result.ok
    output = result.output
    assert "Glue table owned.orders belongs to export 'someone.else#0'" in " ".join(output.split())
    assert "ignores conditional writes (If-None-Match), which delta-rs relies on" in output
    assert "model 'rest' exporting to s3://glue-owned/rest/: the rest catalog failed" in output
    # Refused before anything was written.
    assert list_keys(s3_client(moto.endpoint), "glue-owned") == []
    # The token is in the model's meta (dbt keeps meta in manifest.json and its parse cache; the
    # plugin warns about that); everywhere else it is hidden.
    assert "has credentials (catalog) in its meta" in output
    assert token not in output
    for path in [
        *project.root.joinpath("target").rglob("*"),
        *project.root.joinpath("logs").rglob("*"),
    ]:
        if path.is_file() and path.name not in DBT_META_COPIES:
            assert token not in path.read_text(errors="replace"), path


def foreign_table(client: Any, database: str, table: str) -> None:
    """A Glue table made by something else: its own location, parameters and partitions."""
    with contextlib.suppress(client.exceptions.AlreadyExistsException):
        client.create_database(DatabaseInput={"Name": database})
    descriptor = {
        "Columns": [{"Name": "amount", "Type": "double"}],
        "Location": "s3://elsewhere/sales/",
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.serde2.OpenCSVSerde"},
    }
    client.create_table(
        DatabaseName=database,
        TableInput={
            "Name": table,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"owner": "etl", "classification": "csv"},
            "PartitionKeys": [{"Name": "region", "Type": "string"}],
            "StorageDescriptor": descriptor,
        },
    )
    for region in ("eu", "us"):
        client.create_partition(
            DatabaseName=database,
            TableName=table,
            PartitionInput={
                "Values": [region],
                "StorageDescriptor": {**descriptor, "Location": f"s3://elsewhere/sales/{region}/"},
            },
        )


def definition(client: Any, database: str, table: str) -> tuple[Any, ...]:
    """What an export could change of a table: its definition and its partitions."""
    found = client.get_table(DatabaseName=database, Name=table)["Table"]
    return (
        found["StorageDescriptor"],
        found.get("Parameters"),
        found.get("PartitionKeys"),
        partitions(client, database, table),
    )


@pytest.mark.dbt
def test_a_glue_table_made_by_something_else_is_left_alone(
    tmp_path: Path, moto: MotoServer
) -> None:
    moto.create_bucket("glue-foreign")
    client = glue(moto.endpoint)
    foreign_table(client, "foreign", "sales")
    before = definition(client, "foreign", "sales")
    project = DbtProject(tmp_path / "project", moto.endpoint)
    entry = {
        "bucket": "glue-foreign",
        "key": "sales/",
        "file_format": "parquet",
        "partition_cols": ["p"],
        "glue": {"database": "foreign", "table": "sales", "endpoint_url": moto.endpoint},
    }
    model(project, "sales", entry, data_sql(1))
    result = project.dbt("run", check=False)
    assert not result.ok
    out = " ".join(result.output.split())
    assert (
        "Glue table foreign.sales exists and names no dbt-s3-export owner (it was made by "
        "something else), and this export is 'model.export_test.sales#0'. Nothing was written"
    ) in out, out
    assert "set take_over_from: '*' for one run" in out
    assert definition(client, "foreign", "sales") == before
    assert list_keys(s3_client(moto.endpoint), "glue-foreign") == []
    # take_over_from: '*' adopts it: this export's definition, owner and partitions.
    model(project, "sales", {**entry, "take_over_from": "*"}, data_sql(1))
    result = project.dbt("run")
    assert "which named no owner, passes to export 'model.export_test.sales#0'" in result.output
    table = client.get_table(DatabaseName="foreign", Name="sales")["Table"]
    assert table["Parameters"]["dbt_s3_export.export_id"] == "model.export_test.sales#0"
    assert table["StorageDescriptor"]["Location"] == "s3://glue-foreign/sales/"
    assert set(partitions(client, "foreign", "sales")) == {("p1",), ("p2",)}


@pytest.mark.dbt
def test_two_projects_and_one_glue_table(tmp_path: Path, moto: MotoServer) -> None:
    """The second project is refused until take_over_from, then the first is refused."""
    moto.create_bucket("glue-shared")
    client = glue(moto.endpoint)
    projects = {
        name: DbtProject(tmp_path / name, moto.endpoint, project_config={"name": name})
        for name in ("first", "second")
    }

    def entry(name: str, **options: Any) -> dict[str, Any]:
        return {
            "bucket": "glue-shared",
            "key": f"{name}/",
            "file_format": "parquet",
            "partition_cols": ["p"],
            "glue": {"database": "shared", "table": "orders", "endpoint_url": moto.endpoint},
            **options,
        }

    model(projects["first"], "orders", entry("first"), data_sql(1))
    projects["first"].dbt("run")
    before = definition(client, "shared", "orders")
    assert before[1]["dbt_s3_export.export_id"] == "model.first.orders#0"

    model(projects["second"], "orders", entry("second"), data_sql(2))
    result = projects["second"].dbt("run", check=False)
    assert not result.ok
    out = " ".join(result.output.split())
    assert (
        "Glue table shared.orders belongs to export 'model.first.orders#0', and this export is "
        "'model.second.orders#0'"
    ) in out, out
    assert "set take_over_from: 'model.first.orders#0'" in out
    assert definition(client, "shared", "orders") == before
    assert list_keys(s3_client(moto.endpoint), "glue-shared", "second/") == []

    model(
        projects["second"],
        "orders",
        entry("second", take_over_from="model.first.orders#0"),
        data_sql(2),
    )
    projects["second"].dbt("run")
    taken = definition(client, "shared", "orders")
    assert taken[0]["Location"] == "s3://glue-shared/second/"
    assert taken[1]["dbt_s3_export.export_id"] == "model.second.orders#0"
    assert set(taken[3]) == {("p2",), ("p3",)}

    model(projects["first"], "orders", entry("first"), data_sql(3))
    result = projects["first"].dbt("run", check=False)
    assert not result.ok
    assert "Glue table shared.orders belongs to export 'model.second.orders#0'" in " ".join(
        result.output.split()
    )
    assert definition(client, "shared", "orders") == taken


def test_a_table_created_meanwhile_is_checked_before_it_is_written(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another creator makes the table between the run's check and its create: the run's
    create fails with AlreadyExists, and the table it finds there is refused as well."""
    from dbt_s3_export import ExportConfig, RunContext, run_export
    from dbt_s3_export.source.base import ArrowSource
    from dbt_s3_export.tables import glue as glue_module

    from .engine import engine_client, table

    moto.create_bucket("glue-race")
    real = glue_module.glue_client

    class Racing:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def create_table(self, **kwargs: Any) -> Any:
            foreign_table(glue(moto.endpoint), "race", "orders")
            return self.inner.create_table(**kwargs)

    monkeypatch.setattr(glue_module, "glue_client", lambda *a, **k: Racing(real(*a, **k)))
    cfg = ExportConfig.parse(
        {
            "bucket": "glue-race",
            "key": "orders/",
            "file_format": "parquet",
            "partition_cols": ["p"],
            "endpoint_url": moto.endpoint,
            "region": "us-east-1",
            "glue": {"database": "race", "table": "orders", "endpoint_url": moto.endpoint},
        }
    )
    client = engine_client(moto.endpoint)
    with pytest.raises(Exception, match="names no dbt-s3-export owner") as raised:
        run_export(cfg, ArrowSource(table(10, tag="a", partitions=2)), client, RunContext())
    assert "the export is committed, but registering it as Glue table race.orders" in str(
        raised.value
    )
    found = glue(moto.endpoint).get_table(DatabaseName="race", Name="orders")["Table"]
    assert found["StorageDescriptor"]["Location"] == "s3://elsewhere/sales/"
    assert set(partitions(glue(moto.endpoint), "race", "orders")) == {("eu",), ("us",)}


def test_a_symlink_table_is_registered_and_switched_back(moto: MotoServer) -> None:
    """symlink_manifests: Athena reads the partitions' symlink manifests, not the folders."""
    from dbt_s3_export import ArrowSource, ExportConfig, run_export
    from dbt_s3_export.tables.glue import SYMLINK_INPUT

    moto.create_bucket("glue-links")
    s3, client = s3_client(moto.endpoint), glue(moto.endpoint)
    where = {"database": "links", "table": "events", "endpoint_url": moto.endpoint}
    base = {"bucket": "glue-links", "key": "ev/", "file_format": "parquet", "glue": where}
    base |= {"partition_cols": ["p"], "endpoint_url": moto.endpoint, "region": "us-east-1"}
    for parts, linked in ((["a", "b"], True), (["b", "c"], True), (["c"], False)):
        data = pa.table({"id": list(range(len(parts))), "p": parts})
        config = ExportConfig.parse({**base, "symlink_manifests": linked})
        run_export(config, ArrowSource(data), s3)
        table = client.get_table(DatabaseName="links", Name="events")["Table"]
        descriptor = table["StorageDescriptor"]
        links = [k for k in list_keys(s3, "glue-links", "ev/") if "_symlink" in k]
        if linked:
            assert descriptor["InputFormat"] == SYMLINK_INPUT
            assert descriptor["Location"] == "s3://glue-links/ev/_symlink_format_manifest/"
            assert partitions(client, "links", "events") == {
                (p,): f"s3://glue-links/ev/_symlink_format_manifest/p={p}/" for p in parts
            }
            assert links == [f"ev/_symlink_format_manifest/p={p}/manifest" for p in parts]
        else:
            assert descriptor["InputFormat"].endswith("MapredParquetInputFormat")
            assert partitions(client, "links", "events") == {("c",): "s3://glue-links/ev/p=c/"}
            assert links == []
