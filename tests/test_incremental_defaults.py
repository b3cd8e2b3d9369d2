"""An incremental model's exports through three ``dbt run``s: the defaults follow the model.

``append`` exports each run's batch once (``rows: auto``); ``overwrite_partitions``
rewrites the partitions the batch touched, each whole, by default and with
``rows: batch``, and leaves the other partitions' files alone; ``rows: all`` exports
the whole model every run. Batches add rows to partitions that already hold some,
the NULL partition included, and a ``merge`` model restates part of a day; a
``delete+insert`` model restates a whole day, exported with ``where``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .engine import manifest
from .support import HOOK, DbtProject, S3Server, read_object
from .test_modes import data_keys
from .test_tables import delta_options

# Each run's batch of ``events``: (first id, id after the last, day); None is NULL.
BATCHES: dict[int, list[tuple[int, int, int | None]]] = {
    1: [(1, 76, 0), (76, 151, 1)],  # 150 rows over days 0 and 1
    2: [(151, 201, 1), (201, 241, 2), (241, 251, None)],  # 100 more into 1, 2 and NULL
    3: [(251, 261, None), (261, 301, 3)],  # 50 more into NULL and 3
}
# The partitions each run's batch touches (the others' files must stay as they were).
TOUCHED = {2: {"1", "2", None}, 3: {None, "3"}}


def events_sql(run: int) -> str:
    parts = [
        f"select id::integer as id, {'NULL' if day is None else day}::integer as day, "
        f"'run{run}' as loaded_in from range({lo}, {hi}) t(id)"
        for lo, hi, day in BATCHES[run]
    ]
    return "\nunion all\n".join(parts)


def restated_sql(run: int) -> str:
    """Day ``run`` gets three new rows; two of day ``run - 1``'s three are restated."""
    return (
        f"select ({run} * 10 + n)::integer as id, {run}::integer as day, 'run{run}' as loaded_in "
        "from range(1, 4) t(n)\nunion all\n"
        f"select (({run} - 1) * 10 + n)::integer, ({run} - 1)::integer, 'run{run}' "
        "from range(1, 3) t(n)"
    )


# delete+insert (unique_key): each run adds day == run and restates day == run - 1.
LATE = """
{{ config(materialized='incremental', unique_key='id', meta={'s3_export': [
    {'bucket': '__B__', 'key': 'appended/', 'file_format': 'jsonl',
     'mode': 'append', 'rows': 'batch'},
    {'bucket': '__B__', 'key': 'by_day/', 'file_format': 'csv', 'partition_cols': ['day'],
     'mode': 'overwrite_partitions', 'where': 'day >= ' ~ (var('run') - 1)}
]}, post_hook="{{ dbt_s3_export.export_to_s3() }}") }}
select day * 100 + n as id, day, 'run' || {{ var('run') }} as loaded_in
from range(1, 4) as t(n), (select unnest([{{ var('run') - 1 }}, {{ var('run') }}]) as day)
{% if is_incremental() %} where true {% endif %}
"""


def entry(bucket: str, key: str, **options: Any) -> dict[str, Any]:
    return {"bucket": bucket, "key": key, "file_format": "parquet", **options}


def write_models(project: DbtProject, bucket: str, run: int) -> None:
    by_day = {"mode": "overwrite_partitions", "partition_cols": ["day"]}
    events = [
        entry(bucket, "append_auto/", mode="append"),
        entry(bucket, "append_all/", mode="append", rows="all"),
        entry(bucket, "parts_auto/", **by_day),
        entry(bucket, "parts_batch/", rows="batch", **by_day),
        entry(bucket, "parts_all/", rows="all", **by_day),
        {"bucket": bucket, "key": "lake/events/", "file_format": "delta", **by_day},
    ]
    config = f"materialized='incremental', meta={{'s3_export': {json.dumps(events)}}}, {HOOK}"
    project.model("events", "{{ config(" + config + ") }}\n" + events_sql(run))
    restated = json.dumps(entry(bucket, "restated/", **by_day))
    config = (
        "materialized='incremental', incremental_strategy='merge', unique_key='id', "
        f"meta={{'s3_export': {restated}}}, {HOOK}"
    )
    project.model("restated", "{{ config(" + config + ") }}\n" + restated_sql(run))
    project.model("late", LATE.replace("__B__", bucket))


Row = tuple[int, int | None, str]


def exported(s3: Any, bucket: str, prefix: str) -> list[Row]:
    """The rows the manifest lists, the partition value taken from the file's folder."""
    rows: list[Row] = []
    for f in manifest(s3, bucket, prefix)["files"]:
        data = pq.read_table(pa.BufferReader(read_object(s3, bucket, f["key"])))
        if f["partition"]:
            day = partition_value(f["partition"])
            days = [None if day is None else int(day)] * data.num_rows
        else:
            days = data.column("day").to_pylist()
        ids, loaded = data.column("id").to_pylist(), data.column("loaded_in").to_pylist()
        rows += list(zip(ids, days, loaded, strict=True))
    return sorted(rows, key=str)


def partition_value(partition: str) -> str | None:
    value = partition.removeprefix("day=").rstrip("/")
    return None if value == "__HIVE_DEFAULT_PARTITION__" else value


def files_by_partition(s3: Any, bucket: str, prefix: str) -> dict[str | None, list[str]]:
    """Each partition's file keys and ETags."""
    found: dict[str | None, list[str]] = {}
    for f in manifest(s3, bucket, prefix)["files"]:
        etag = s3.head_object(Bucket=bucket, Key=f["key"])["ETag"]
        found.setdefault(partition_value(f["partition"]), []).append(f"{f['key']} {etag}")
    return found


def model_rows(project: DbtProject, name: str) -> list[Row]:
    return sorted(project.query(f"select id, day, loaded_in from {name}"), key=str)


@pytest.mark.dbt
def test_incremental_defaults_over_three_runs(
    project: DbtProject, s3: Any, bucket: str, s3_server: S3Server
) -> None:
    from deltalake import DeltaTable

    snapshots: list[list[Row]] = []
    before: dict[str, dict[str | None, list[str]]] = {}
    for run in (1, 2, 3):
        write_models(project, bucket, run)
        output = project.dbt("run", "--vars", f"{{run: {run}}}").output
        events = model_rows(project, "events")
        snapshots.append(events)
        assert len(events) == (150, 250, 300)[run - 1]

        # append exports each run's batch once; rows: all the whole model every run.
        assert exported(s3, bucket, "append_auto/") == events
        assert exported(s3, bucket, "append_all/") == sorted(
            (row for snapshot in snapshots for row in snapshot), key=str
        )
        # overwrite_partitions: every partition holds all its rows, however chosen.
        for prefix in ("parts_auto/", "parts_batch/", "parts_all/"):
            assert exported(s3, bucket, prefix) == events, prefix
        assert exported(s3, bucket, "restated/") == model_rows(project, "restated")
        table = DeltaTable(
            f"s3://{bucket}/lake/events", storage_options=delta_options(s3_server.endpoint)
        )
        got = table.to_pyarrow_table()
        delta_rows = zip(
            *(got.column(c).to_pylist() for c in ("id", "day", "loaded_in")), strict=True
        )
        assert sorted(delta_rows, key=str) == events

        # The files of partitions the batch did not touch are the ones the last run left.
        for prefix in ("parts_auto/", "parts_batch/"):
            now = files_by_partition(s3, bucket, prefix)
            if run > 1:
                for day, files in before[prefix].items():
                    if day not in TOUCHED[run]:
                        assert now[day] == files, (prefix, day)
                    else:
                        assert now[day] != files, (prefix, day)
            before[prefix] = now

        # Where the default chose the batch, the run says so once per export, and how
        # to choose otherwise; the first run (no batch) and rows: all/batch say nothing of it.
        told = Counter(
            line.split("s3_export: ")[1].split(":")[0]
            for line in output.splitlines()
            if "(rows: auto, the default). Set rows: all" in line
        )
        assert told == ({} if run == 1 else {"events": 3, "restated": 1, "late": 1})

    # Day 2 of restated: two rows restated by run 3, one kept from run 2.
    assert [r for r in exported(s3, bucket, "restated/") if r[1] == 2] == [
        (21, 2, "run3"),
        (22, 2, "run3"),
        (23, 2, "run2"),
    ]

    # append + rows: batch: every run's staged rows exactly once, in its own files.
    appended = manifest(s3, bucket, "appended/")
    lines = [
        json.loads(line)
        for f in appended["files"]
        for line in read_object(s3, bucket, f["key"]).decode().splitlines()
    ]
    got = sorted((r["id"], r["loaded_in"]) for r in lines)
    assert got == sorted(
        (day * 100 + n, f"run{run}")
        for run in (1, 2, 3)
        for day in (run - 1, run)
        for n in (1, 2, 3)
    )
    assert len(appended["files"]) == 3

    # overwrite_partitions + where: each day holds the rows of the last run that wrote it.
    by_day = manifest(s3, bucket, "by_day/")
    assert sorted(f["partition"] for f in by_day["files"]) == [f"day={d}/" for d in range(4)]
    assert set(data_keys(s3, bucket, "by_day/")) == {f["key"] for f in by_day["files"]}
    rows = []
    for f in by_day["files"]:
        text = read_object(s3, bucket, f["key"]).decode().splitlines()[1:]
        day = int(f["partition"][4:-1])
        rows += [(day, line.replace('"', "")) for line in text]
    last_writer = {0: 1, 1: 2, 2: 3, 3: 3}
    assert sorted(rows) == sorted(
        (d, f"{d * 100 + n},run{last_writer[d]}") for d in range(4) for n in (1, 2, 3)
    )
