"""Every table has one owner: Iceberg and Delta tables through real ``dbt run``s.

Two dbt projects (so two unique ids for models of one name) point at the same tables:
the second is refused and the first's table stays as it was, until ``take_over_from``
hands the table over, after which the first is refused. A table may not lie inside a
folder a folder export owns, nor hold one. Glue tables: tests/test_glue.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .support import DbtProject, S3Server, list_keys, only_on_first_server, s3_client
from .test_tables import FORMATS, Reader, data_sql, delta_options, meta, model, rows

OWNER = "dbt_s3_export.export_id"


def owner(reader: Reader, fmt: str, name: str) -> str | None:
    if fmt == "iceberg":
        return reader.iceberg(name).properties.get(OWNER)
    return reader.delta(name).metadata().configuration.get(OWNER)


def two_projects(tmp_path: Path, endpoint: str) -> tuple[DbtProject, DbtProject]:
    catalog = {"type": "sql", "uri": f"sqlite:///{tmp_path / 'catalog.db'}"}
    first, second = (
        DbtProject(
            tmp_path / name,
            endpoint,
            plugin_config={"catalog": catalog},
            project_config={"name": name},
        )
        for name in ("first", "second")
    )
    return first, second


def write(project: DbtProject, bucket: str, r: int, **options: Any) -> None:
    for fmt in FORMATS:
        model(project, fmt, meta(fmt, bucket, f"shared_{fmt}", **options), data_sql(r))


@pytest.mark.dbt
def test_a_second_project_is_refused_until_it_takes_the_table_over(
    tmp_path: Path, s3_server: S3Server, bucket: str, request: pytest.FixtureRequest
) -> None:
    only_on_first_server(request, s3_server, "owner records are the formats' own")
    first, second = two_projects(tmp_path, s3_server.endpoint)
    reader = Reader(s3_server.endpoint, bucket, f"sqlite:///{tmp_path / 'catalog.db'}")
    write(first, bucket, 1)
    first.dbt("run")
    for fmt in FORMATS:
        assert owner(reader, fmt, f"shared_{fmt}") == f"model.first.{fmt}#0"
    versions = {fmt: reader.version(fmt, f"shared_{fmt}") for fmt in FORMATS}

    # The same tables from another project: refused before anything is written.
    write(second, bucket, 2)
    keys = list_keys(s3_client(s3_server.endpoint), bucket)
    result = second.dbt("run", check=False)
    assert not result.ok
    out = " ".join(result.output.split())
    assert (
        f"Delta table s3://{bucket}/lake/shared_delta belongs to export 'model.first.delta#0', "
        "and this export is 'model.second.delta#0'" in out
    ), out
    assert (
        "Iceberg table analytics.shared_iceberg belongs to export 'model.first.iceberg#0', "
        "and this export is 'model.second.iceberg#0'" in out
    ), out
    assert "set take_over_from: 'model.first.delta#0'" in out
    assert "model 'delta'" in out and "model 'iceberg'" in out
    assert list_keys(s3_client(s3_server.endpoint), bucket) == keys
    for fmt in FORMATS:
        assert reader.rows(fmt, f"shared_{fmt}") == sorted(rows(1))
        assert reader.version(fmt, f"shared_{fmt}") == versions[fmt]
        assert owner(reader, fmt, f"shared_{fmt}") == f"model.first.{fmt}#0"

    # take_over_from hands each table over; the commit names the new owner.
    for fmt in FORMATS:
        entry = meta(fmt, bucket, f"shared_{fmt}", take_over_from=f"model.first.{fmt}#0")
        model(second, fmt, entry, data_sql(2))
    result = second.dbt("run")
    assert "passes from export 'model.first.delta#0' to 'model.second.delta#0'" in result.output
    for fmt in FORMATS:
        assert reader.rows(fmt, f"shared_{fmt}") == sorted(rows(2))
        assert owner(reader, fmt, f"shared_{fmt}") == f"model.second.{fmt}#0"
        assert reader.properties(fmt, f"shared_{fmt}")["dbt.export_id"] == (f"model.second.{fmt}#0")
    # The second project's next run, take_over_from still set, is a plain run of the owner.
    second.dbt("run")

    # Now the first project is the stranger.
    versions = {fmt: reader.version(fmt, f"shared_{fmt}") for fmt in FORMATS}
    write(first, bucket, 3)
    result = first.dbt("run", check=False)
    assert not result.ok
    out = " ".join(result.output.split())
    for fmt in FORMATS:
        assert f"belongs to export 'model.second.{fmt}#0', and this export is " in out
        assert reader.rows(fmt, f"shared_{fmt}") == sorted(rows(2))
        assert reader.version(fmt, f"shared_{fmt}") == versions[fmt]
        assert owner(reader, fmt, f"shared_{fmt}") == f"model.second.{fmt}#0"


@pytest.mark.dbt
def test_tables_and_folder_exports_do_not_nest(
    tables_project: DbtProject, s3_server: S3Server, bucket: str
) -> None:
    project = tables_project
    s3 = s3_client(s3_server.endpoint)
    folder = {"bucket": bucket, "file_format": "csv"}
    model(project, "csv_outer", str({**folder, "key": "lake/csv/"}), data_sql(1))
    model(project, "csv_inner", str({**folder, "key": "lake/holder/inner/"}), data_sql(1))
    project.dbt("run")
    before = list_keys(s3, bucket)
    # A table inside a folder export's folder, and a table around one.
    for fmt in FORMATS:
        inside = meta(
            fmt, bucket, f"csv/{fmt}_in", **({"table": "inside"} if fmt == "iceberg" else {})
        )
        model(project, f"{fmt}_in", inside, data_sql(1))
        model(project, f"{fmt}_around", meta(fmt, bucket, "holder"), data_sql(1))
    result = project.dbt("run", "--select", "delta_in iceberg_in", check=False)
    assert not result.ok
    out = " ".join(result.output.split())
    for fmt, what in (
        ("delta", f"Delta table s3://{bucket}/lake/csv/delta_in"),
        ("iceberg", "Iceberg table analytics.inside"),
    ):
        assert (
            f"s3://{bucket}/lake/csv/ belongs to export "
            f"'model.export_test.csv_outer#0' (model csv_outer), and {what} at "
            f"s3://{bucket}/lake/csv/{fmt}_in lies inside it"
        ) in out, out
    assert "Give the table a key outside that folder" in out
    result = project.dbt("run", "--select", "delta_around iceberg_around", check=False)
    assert not result.ok
    out = " ".join(result.output.split())
    for what in (f"Delta table s3://{bucket}/lake/holder", "Iceberg table analytics.holder"):
        assert (
            f"s3://{bucket}/lake/holder/inner/ belongs to export "
            f"'model.export_test.csv_inner#0' (model csv_inner), and it lies inside the "
            f"location s3://{bucket}/lake/holder of {what}"
        ) in out, out
    assert list_keys(s3, bucket) == before


@pytest.fixture
def tables_project(tmp_path: Path, s3_server: S3Server) -> DbtProject:
    catalog = {"type": "sql", "uri": f"sqlite:///{tmp_path / 'catalog.db'}"}
    return DbtProject(tmp_path / "project", s3_server.endpoint, plugin_config={"catalog": catalog})


@pytest.mark.dbt
def test_tables_without_an_owner_record(
    tables_project: DbtProject, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    """A table an earlier version wrote for this export is adopted; one of another export
    or of none is refused, and ``take_over_from: '*'`` adopts the latter."""
    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    project = tables_project
    reader = Reader(s3_server.endpoint, bucket, f"sqlite:///{tmp_path / 'catalog.db'}")
    reader.catalog.create_namespace_if_not_exists("analytics")
    int32 = pa.int32()
    old = pa.table({"id": pa.array([100], int32), "p": ["old"], "v": pa.array([0], int32)})

    def written_by(fmt: str, name: str, properties: dict[str, str]) -> None:
        """A table as an earlier version (``properties``) or another tool (none) left it."""
        location = f"s3://{bucket}/lake/{name}"
        if fmt == "delta":
            write_deltalake(
                location,
                old,
                storage_options=delta_options(s3_server.endpoint),
                commit_properties=CommitProperties(custom_metadata=properties),
            )
            return
        table = reader.catalog.create_table(("analytics", name), old.schema, location=location)
        table.append(old, snapshot_properties=properties)

    for fmt in FORMATS:
        written_by(fmt, f"{fmt}_ours", {"dbt.export_id": f"model.export_test.{fmt}_ours#0"})
        written_by(fmt, f"{fmt}_theirs", {"dbt.export_id": "model.elsewhere.theirs#0"})
        written_by(fmt, f"{fmt}_nobody", {})
        for whose in ("ours", "theirs", "nobody"):
            name = f"{fmt}_{whose}"
            model(project, name, meta(fmt, bucket, name), data_sql(1))
    result = project.dbt("run", check=False)
    assert not result.ok
    out = " ".join(result.output.split())
    for what in (f"Delta table s3://{bucket}/lake/delta", "Iceberg table analytics.iceberg"):
        assert f"{what}_ours was written by an earlier version of dbt-s3-export" in out, out
        assert f"{what}_theirs belongs to export 'model.elsewhere.theirs#0'" in out
        assert (
            f"{what}_nobody exists and names no dbt-s3-export owner (it was made by something else)"
        ) in out
    assert "set take_over_from: '*' for one run" in out
    for fmt in FORMATS:
        assert reader.rows(fmt, f"{fmt}_ours") == sorted(rows(1))
        assert owner(reader, fmt, f"{fmt}_ours") == f"model.export_test.{fmt}_ours#0"
        for whose in ("theirs", "nobody"):
            assert reader.rows(fmt, f"{fmt}_{whose}") == [(100, "old", 0)]
            assert owner(reader, fmt, f"{fmt}_{whose}") is None
        name = f"{fmt}_nobody"
        model(project, name, meta(fmt, bucket, name, take_over_from="*"), data_sql(1))
    project.dbt("run", "--select", "delta_nobody iceberg_nobody")
    for fmt in FORMATS:
        assert reader.rows(fmt, f"{fmt}_nobody") == sorted(rows(1))
        assert owner(reader, fmt, f"{fmt}_nobody") == f"model.export_test.{fmt}_nobody#0"
