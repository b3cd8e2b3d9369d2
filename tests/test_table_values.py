"""Iceberg and Delta tables as exact as file exports, through real ``dbt run``s.

Partition values of every kind (timestamps with and without a zone, NaN and
infinities, quotes, NULL), compatible changes of a column's type, and concurrent
first use of a SQL catalog.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from .support import DbtProject, S3Server, free_port, only_on_first_server
from .test_tables import Reader, meta, model, tables_project

pytestmark = pytest.mark.dbt

__all__ = ["tables_project"]  # the fixture, used by name below

# Partition columns of each type, their values (SQL literals) and the ones a second
# run writes again: overwrite_partitions must replace exactly those.
PARTITION_VALUES: dict[str, tuple[str, list[str]]] = {
    "ts": (
        "TIMESTAMP",
        [
            "TIMESTAMP '2024-01-01 00:00:00'",
            "TIMESTAMP '2024-12-31 23:59:59.999999'",
            "TIMESTAMP '1969-12-31 23:59:59.5'",
            "NULL",
        ],
    ),
    "tz": (
        "TIMESTAMPTZ",
        ["TIMESTAMPTZ '2024-01-01 00:00:00+00'", "TIMESTAMPTZ '2024-06-01 12:30:00.5+02'", "NULL"],
    ),
    "d": ("DOUBLE", ["'nan'::double", "'inf'::double", "'-inf'::double", "1.5", "-0.0", "NULL"]),
    "f": ("FLOAT", ["'nan'::float", "1.1::float", "0.0::float"]),
    "s": ("VARCHAR", ["'it''s'", "'nan'", "'a \"b\" \\ c'", "''", "NULL"]),
    "dt": ("DATE", ["DATE '2024-02-29'", "DATE '0001-01-01'", "DATE '9999-12-31'"]),
    "dec": ("DECIMAL(10, 2)", ["12.34", "0.01", "0"]),
    "i": ("INTEGER", ["-2147483648", "0", "NULL"]),
}


def partition_sql(column: str, run: int) -> str:
    """Run 1 writes a row to every value; run 2 writes again to every other value."""
    typ, values = PARTITION_VALUES[column]
    chosen = values if run == 1 else values[::2]
    return "\nUNION ALL ".join(
        f"SELECT {i}::integer AS id, CAST({v} AS {typ}) AS {column}, {run}::integer AS run"
        for i, v in enumerate(values)
        if v in chosen
    )


@pytest.mark.parametrize("fmt", ["delta"])
def test_overwrite_partitions_replaces_exactly_the_written_partitions(
    fmt: str, tables_project: DbtProject, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    project = tables_project
    reader = Reader(s3_server.endpoint, bucket, f"sqlite:///{tmp_path / 'catalog.db'}")
    for run in (1, 2):
        for column in PARTITION_VALUES:
            name = f"{fmt}_part_{column}"
            entry = meta(fmt, bucket, name, mode="overwrite_partitions", partition_cols=[column])
            model(project, name, entry, partition_sql(column, run))
        project.dbt("run")
    for column, (_, values) in PARTITION_VALUES.items():
        got = sorted(reader.rows(fmt, f"{fmt}_part_{column}", ("id", "run")))
        want = [(i, 2 if i % 2 == 0 else 1) for i in range(len(values))]
        assert got == want, column


def typed_sql(run: int) -> str:
    """Run 1 makes the table's columns; run 2 writes narrower or plainer types into them."""
    if run == 1:
        return (
            "SELECT 1::bigint AS id, 'p' AS p, 10::bigint AS v, 'a'::ENUM('a', 'b') AS e, "
            "'{\"k\": 1}'::JSON AS j, '9f1c1b3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b'::UUID AS u"
        )
    return (
        "SELECT 2::integer AS id, 'p' AS p, 20::integer AS v, 'b'::varchar AS e, "
        "'{\"k\": 2}'::varchar AS j, '0f1c1b3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b'::varchar AS u"
    )


def test_delta_accepts_compatible_types_in_every_mode(
    tables_project: DbtProject, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    project = tables_project
    reader = Reader(s3_server.endpoint, bucket, f"sqlite:///{tmp_path / 'catalog.db'}")
    modes = ("replace", "append", "overwrite_partitions")
    for run in (1, 2):  # one model per mode, all in the same two runs
        for mode in modes:
            name = f"delta_compatible_{mode}"
            entry = meta("delta", bucket, name, mode=mode, partition_cols=["p"])
            model(project, name, entry, typed_sql(run))
        project.dbt("run")
    second = (2, 20, "b", '{"k": 2}', "0f1c1b3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b")
    first = (1, 10, "a", '{"k": 1}', "9f1c1b3e-2c4d-4e5f-8a9b-0c1d2e3f4a5b")
    for mode in modes:
        name = f"delta_compatible_{mode}"
        got = reader.rows("delta", name, ("id", "v", "e", "j", "u"))
        assert got == ([first, second] if mode == "append" else [second]), mode
        schema = reader.delta(name).schema().to_arrow()
        assert str(pa.schema(schema).field("v").type) == "int64", mode  # the column stays wide


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server of its own (as the ``postgres`` user: it refuses root) on a
    free 127.0.0.1 port; yields its SQLAlchemy URI and stops it afterwards."""
    if not (PG_BIN / "postgres").exists() or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL 15 and runuser are needed")
    folder = Path(tempfile.mkdtemp(prefix="pg-", dir="/tmp"))
    shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()

    def as_postgres(*args: str) -> None:
        # No pipes: the server pg_ctl starts would hold them open, and this would wait.
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )

    as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-h 127.0.0.1 -p {port} -k {folder}"
    log = str(folder / "log")
    as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_four_iceberg_models_at_once_on_a_new_sql_catalog(
    catalog: str,
    request: pytest.FixtureRequest,
    s3_server: S3Server,
    bucket: str,
    tmp_path: Path,
) -> None:
    """Four threads open the new catalog at once: each creates its tables if absent."""
    uri = (
        f"sqlite:///{tmp_path / 'catalog.db'}"
        if catalog == "sqlite"
        else request.getfixturevalue("postgres")
    )
    if catalog == "postgres":  # a fresh catalog: the tables of an earlier test dropped
        from sqlalchemy import create_engine, text

        with create_engine(uri).begin() as con:
            con.execute(text("DROP TABLE IF EXISTS iceberg_tables, iceberg_namespace_properties"))
    project = DbtProject(
        tmp_path / "project",
        s3_server.endpoint,
        plugin_config={"catalog": {"type": "sql", "uri": uri}},
        threads=4,
    )
    names = [f"iceberg_first_{i}" for i in range(4)]
    for i, name in enumerate(names):
        model(project, name, meta("iceberg", bucket, name), f"select {i}::integer as id")
    project.dbt("run", "--threads", "4")
    reader = Reader(s3_server.endpoint, bucket, uri)
    for i, name in enumerate(names):
        assert reader.rows("iceberg", name, ("id",)) == [(i,)]


@pytest.mark.parametrize("mode", ["append", "replace"])
def test_overlapping_runs_on_one_iceberg_table_in_a_postgresql_catalog(
    mode: str,
    postgres: str,
    s3_server: S3Server,
    bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two runs of one export write the same table at once and reach the catalog's commit
    together (held at a barrier): each commit lands or is refused with a clear error, and
    the table is one consistent snapshot; appends that landed are all there."""
    import threading

    from dbt_s3_export import ArrowSource, ExportConfig, RunContext, run_export
    from dbt_s3_export.errors import S3ExportError
    from dbt_s3_export.tables.iceberg import IcebergWriter

    from .engine import engine_client

    name = f"overlap_{mode}"
    cfg = ExportConfig.parse(
        {
            "bucket": bucket,
            "key": f"lake/{name}/",
            "file_format": "iceberg",
            "namespace": "analytics",
            "table": name,
            "mode": mode,
            "partition_cols": ["p"],
            "endpoint_url": s3_server.endpoint,
            "region": "us-east-1",
            "catalog": {"type": "sql", "uri": postgres},
        }
    )

    def data(run: int) -> pa.Table:
        ids = [run * 100 + i for i in range(20)]
        return pa.table({"id": ids, "p": [i % 3 for i in ids], "run": [run] * 20})

    def export(run: int) -> None:
        client = engine_client(s3_server.endpoint)
        run_export(cfg, ArrowSource(data(run)), client, RunContext(model=name))

    export(0)  # the table exists before the race
    at_commit = threading.Barrier(2, timeout=60)
    commit = IcebergWriter._commit

    def held(self: IcebergWriter, tx: object) -> object:
        at_commit.wait()  # both runs have written their files and hold the same base
        return commit(self, tx)

    monkeypatch.setattr(IcebergWriter, "_commit", held)
    outcomes: dict[int, BaseException | None] = {}

    def race(run: int) -> None:
        try:
            export(run)
            outcomes[run] = None
        except BaseException as e:  # judged in the test thread
            outcomes[run] = e

    threads = [threading.Thread(target=race, args=(run,)) for run in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    landed = [run for run, error in outcomes.items() if error is None]
    assert sorted(outcomes) == [1, 2] and landed, outcomes
    for error in outcomes.values():
        if error is not None:
            assert isinstance(error, S3ExportError), repr(error)
            assert f"another writer committed to Iceberg table analytics.{name}" in str(error)
            assert "run again" in str(error)
    reader = Reader(s3_server.endpoint, bucket, postgres)
    table = reader.iceberg(name)
    got = sorted(reader.rows("iceberg", name, ("id", "run")))
    if mode == "append":  # pyiceberg commits the refused append again on top: none is lost
        assert sorted(landed) == [1, 2], outcomes
        runs = [0, 1, 2]
    else:  # one run's rows exactly, of a run that landed
        runs = sorted({run for _, run in got})
        assert len(runs) == 1 and runs[0] in landed, runs
    assert got == sorted((run * 100 + i, run) for run in runs for i in range(20))
    snapshots = table.snapshots()
    assert len(snapshots) == 1 + len(landed)


def test_iceberg_refuses_nan_in_an_identity_partition_and_case_only_renames(
    tables_project: DbtProject,
    s3_server: S3Server,
    bucket: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    only_on_first_server(request, s3_server, "refused before any commit")
    project = tables_project
    reader = Reader(s3_server.endpoint, bucket, f"sqlite:///{tmp_path / 'catalog.db'}")
    nan_new = meta("iceberg", bucket, "iceberg_nan_new", partition_cols=["d"])
    nan_old = meta("iceberg", bucket, "iceberg_nan_old", mode="append", partition_cols=["d"])
    renamed = meta("iceberg", bucket, "iceberg_renamed", mode="append")
    model(project, "iceberg_nan_old", nan_old, "select 1 as id, 1.5::float as d")
    model(project, "iceberg_renamed", renamed, "select 1 as id, 10 as v")
    project.dbt("run")
    model(project, "iceberg_nan_new", nan_new, "select 1 as id, 'nan'::float as d")
    model(project, "iceberg_nan_old", nan_old, "select 2 as id, 'nan'::float as d")
    model(project, "iceberg_renamed", renamed, 'select 2 as id, 20 as "V"')
    result = project.dbt("run", check=False)
    assert not result.ok
    for table in ("iceberg_nan_new", "iceberg_nan_old"):
        assert (
            f"column 'd' (FLOAT) holds NaN, and it is an identity partition column of "
            f"Iceberg table analytics.{table}" in result.output
        )
    assert "Map NaN to NULL in the model" in result.output
    assert (
        "column 'V' in the model is 'v' in Iceberg table analytics.iceberg_renamed: the names "
        "differ only in case" in result.output
    )
    # Nothing was committed: the tables are as the first run left them, or absent.
    assert reader.rows("iceberg", "iceberg_nan_old", ("id", "d")) == [(1, 1.5)]
    assert reader.rows("iceberg", "iceberg_renamed", ("id", "v")) == [(1, 10)]
    assert not reader.catalog.table_exists(("analytics", "iceberg_nan_new"))


ODD_PARTITION_VALUES = {  # model: (the value, as the message shows it)
    "delta_odd_decimal": ("-12.5::decimal(10, 2)", "-12.50"),
    "delta_odd_date": ("DATE '10000-01-01'", "10000-01-01"),
    "delta_odd_timestamp": ("TIMESTAMP '0044-03-15 (BC) 12:00:00'", "0044-03-15 (BC) 12:00:00"),
}


def test_delta_refuses_partition_values_delta_rs_cannot_hold(
    tables_project: DbtProject, s3_server: S3Server, bucket: str, request: pytest.FixtureRequest
) -> None:
    only_on_first_server(request, s3_server, "refused before any request")
    project = tables_project
    for name, (value, _) in ODD_PARTITION_VALUES.items():
        entry = meta("delta", bucket, name, partition_cols=["k"])
        model(project, name, entry, f"select 1 as id, {value} as k")
    result = project.dbt("run", check=False)
    assert not result.ok
    assert f"ERROR={len(ODD_PARTITION_VALUES)}" in result.output
    output = " ".join(result.output.split())  # dbt wraps long lines
    for _, shown in ODD_PARTITION_VALUES.values():
        assert f"holds {shown}, a partition value of Delta table" in output, shown
    assert "column 'k' (" in output
    assert "Partition by a text or integer form of it instead" in output
