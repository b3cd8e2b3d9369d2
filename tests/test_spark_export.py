"""Spark for real: dbt-spark runs Spark in-process (method: session) and the models'
post-hooks unload them with Spark's own writers, from the same s3_export meta as on
DuckDB. Spark's S3 connector is not available here, so `location` points the same
statements at a local folder; on a cluster the statement is the same with s3://.

One project, two `dbt run`s (one JVM start each): the first writes everything, the
second changes the model and shows what each mode keeps.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as ds
import pytest
import yaml

from .support import REPO

pytestmark = [pytest.mark.dbt, pytest.mark.slow]

# (id, name, amount, day, flag): names that need CSV quoting, NULLs, two days.
FIRST = [
    (1, "alpha", "1.50", "2024-01-01", True),
    (2, 'say "hi", bob', "-2.25", "2024-01-01", False),
    (3, "tab\there", "100.00", "2024-01-02", None),
    (4, None, None, "2024-01-02", True),
    (5, "é 日本", "0.01", "2024-01-02", False),
]
# The second run rebuilds 2024-01-02 only, with other rows.
SECOND = [(6, "zeta", "6.00", "2024-01-02", True)]


def _values(rows: list[tuple[Any, ...]]) -> str:
    def lit(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'").replace("\t", "\\t") + "'"

    return ",\n".join(
        f"({lit(i)}, cast({lit(n)} as string), cast({lit(a)} as decimal(10,2)), {lit(d)}, "
        f"cast({lit(f)} as boolean))"
        for i, n, a, d, f in rows
    )


MODEL = """
{{{{ config(materialized='table', file_format='parquet') }}}}
{{% if var('second_run', false) %}}
select * from values
{second}
as t(id, name, amount, day, flag)
{{% else %}}
select * from values
{first}
as t(id, name, amount, day, flag)
{{% endif %}}
"""

EXPORTS: dict[str, dict[str, Any]] = {
    "events_parquet": {
        "file_format": "parquet",
        "partition_cols": ["day"],
        "max_rows_per_file": 1,
        "compression": "zstd",
    },
    "events_csv": {"file_format": "csv", "partition_cols": ["day"], "csv_delimiter": "\\t"},
    "events_jsonl": {"file_format": "jsonl", "compression": "gzip"},
    "events_overwrite": {
        "file_format": "parquet",
        "partition_cols": ["day"],
        "mode": "overwrite_partitions",
    },
    "events_append": {"file_format": "jsonl", "mode": "append"},
    # An incremental model: the warehouse unloads all of it on each run, and says so.
    "events_incremental": {"file_format": "jsonl", "mode": "append"},
}


def _exported_model(name: str, options: dict[str, Any], out: Path) -> str:
    meta = {
        "bucket": "lake-bucket",
        "key": f"spark/{name}/",
        "location": (out / name).as_uri() + "/",
        **options,
    }
    hook = "post_hook='{{ dbt_s3_export.export_to_s3() }}'"
    how = "table"
    if name == "events_incremental":
        how = "incremental', incremental_strategy='append"
    return (
        f"{{{{ config(materialized='{how}', file_format='parquet', "
        f"meta={{'s3_export': {json.dumps(meta)}}}, {hook}) }}}}\n"
        "select * from {{ ref('events') }}\n"
    )


@pytest.fixture(scope="module")
def spark_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("spark_project")
    out = root / "out"
    (root / "models").mkdir()
    (root / "dbt_packages").mkdir()
    (root / "dbt_packages" / "dbt_s3_export").symlink_to(REPO, target_is_directory=True)
    (root / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    project = {"name": "spark_export", "version": "1.0", "config-version": 2, "profile": "spark"}
    (root / "dbt_project.yml").write_text(yaml.safe_dump(project))
    profile = {
        "spark": {
            "target": "dev",
            "outputs": {
                "dev": {
                    "type": "spark",
                    "method": "session",
                    "host": "NA",
                    "schema": "exports",
                    "threads": 1,
                    "server_side_parameters": {
                        "spark.sql.session.timeZone": "UTC",
                        "spark.ui.enabled": "false",
                        "spark.sql.shuffle.partitions": "2",
                        "spark.sql.warehouse.dir": str(root / "warehouse"),
                    },
                }
            },
        }
    }
    (root / "profiles.yml").write_text(yaml.safe_dump(profile))
    (root / "models" / "events.sql").write_text(
        MODEL.format(first=_values(FIRST), second=_values(SECOND))
    )
    for name, options in EXPORTS.items():
        (root / "models" / f"{name}.sql").write_text(_exported_model(name, options, out))
    return root, out


def _dbt(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
        "PYSPARK_PYTHON": sys.executable,
    }
    dbt = str(Path(sys.executable).parent / "dbt")
    proc = subprocess.run(
        [dbt, *args, "--project-dir", str(root), "--profiles-dir", str(root)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


def _files(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in folder.rglob(f"*{suffix}") if not p.name.startswith((".", "_")))


def _rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted((i, n, Decimal(a) if a is not None else None, d, f) for i, n, a, d, f in rows)


def test_spark_unloads_partitioned_parquet_csv_and_jsonl(spark_project: tuple[Path, Path]) -> None:
    root, out = spark_project
    output = _dbt(root, "run")
    log = (root / "logs" / "dbt.log").read_text()
    # The EXPORT-style rendering and the native statements are both in the log.
    assert 'TO "s3://lake-bucket/spark/events_parquet/"' in log
    assert "INSERT OVERWRITE TABLE" in log and "USING parquet" in log
    assert "on spark: folder replaced in place" in output

    # Parquet, partitioned by day, one row per file (max_rows_per_file), zstd.
    parquet = out / "events_parquet"
    assert sorted(p.name for p in parquet.iterdir() if p.is_dir()) == [
        "day=2024-01-01",
        "day=2024-01-02",
    ]
    files = _files(parquet, ".parquet")
    assert len(files) == len(FIRST)
    with duckdb.connect() as con:
        got = con.sql(
            f"select id, name, amount, day, flag from read_parquet('{parquet}/*/*.parquet', "
            "hive_partitioning = true, hive_types = {'day': 'VARCHAR'})"
        ).fetchall()
        assert sorted(got) == _rows(FIRST)
        codecs = con.sql(
            f"select distinct compression from parquet_metadata('{parquet}/*/*.parquet')"
        ).fetchall()
        assert codecs == [("ZSTD",)]
    table = ds.dataset(str(parquet), format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("id").to_pylist()) == [r[0] for r in FIRST]

    # CSV with a tab delimiter and a header, partitioned: quoting survives the round trip.
    csv = out / "events_csv"
    with duckdb.connect() as con:
        got = con.sql(
            f"select id, name, amount, day, flag from read_csv('{csv}/*/*.csv', delim = '\t', "
            "header = true, hive_partitioning = true, hive_types = {'day': 'VARCHAR'}, "
            "columns = {'id': 'INTEGER', 'name': 'VARCHAR', 'amount': 'DECIMAL(10,2)', "
            "'flag': 'BOOLEAN'})"
        ).fetchall()
    assert sorted(got) == _rows(FIRST)

    # JSON Lines, gzip, not partitioned: NULL fields are kept, not dropped.
    jsonl = out / "events_jsonl"
    lines = [
        json.loads(line)
        for path in _files(jsonl, ".json.gz")
        for line in gzip.decompress(path.read_bytes()).decode().splitlines()
    ]
    assert len(lines) == len(FIRST)
    assert {"id": 4, "name": None, "amount": None, "day": "2024-01-02", "flag": True} in lines
    with duckdb.connect() as con:
        got = con.sql(
            f"select id, name, amount::decimal(10,2), day::varchar, flag "
            f"from read_json('{jsonl}/*.json.gz')"
        ).fetchall()
    assert sorted(got) == _rows(FIRST)

    # The scratch table is named for this run, created (never dropped first) and
    # dropped after the insert; the files stay.
    scratch = re.search(r"INSERT OVERWRITE TABLE (exports\.events_parquet__s3_export_\w+)", log)
    assert scratch, log
    assert re.fullmatch(r"exports\.events_parquet__s3_export_\d{8}t\d{6}z_[0-9a-f]{8}", scratch[1])
    assert f"CREATE TABLE {scratch[1]} (" in log[: scratch.start()]
    assert f"DROP TABLE IF EXISTS {scratch[1]}" in log[scratch.start() :]
    assert f"DROP TABLE IF EXISTS {scratch[1]}" not in log[: scratch.start()]


def test_spark_modes_on_the_second_run(spark_project: tuple[Path, Path]) -> None:
    root, out = spark_project
    output = _dbt(root, "run", "--vars", "{second_run: true}")
    with duckdb.connect() as con:

        def parquet(name: str) -> list[tuple[Any, ...]]:
            return con.sql(
                f"select id, name, amount, day, flag from read_parquet('{out / name}/*/*.parquet', "
                "hive_partitioning = true, hive_types = {'day': 'VARCHAR'})"
            ).fetchall()

        # replace: exactly the second run's rows, the old partition folder is gone.
        assert sorted(parquet("events_parquet")) == _rows(SECOND)
        assert not (out / "events_parquet" / "day=2024-01-01").exists()
        # overwrite_partitions: 2024-01-02 rebuilt, 2024-01-01 kept from the first run.
        kept = [r for r in FIRST if r[3] == "2024-01-01"]
        assert sorted(parquet("events_overwrite")) == _rows(kept + SECOND)
        # append: both runs' rows, in files of both runs.
        got = con.sql(
            f"select id from read_json('{out / 'events_append'}/*.json') order by id"
        ).fetchall()
    assert [r[0] for r in got] == [1, 2, 3, 4, 5, 6]
    # Incremental + append on a warehouse: the whole model again, announced in the log.
    notice = (
        "s3_export: events_incremental: the model is incremental, and spark unloads all of "
        "it on every run of an append export"
    )
    assert notice in " ".join(output.split())
