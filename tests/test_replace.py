"""mode: replace swaps generations without ever losing the previous export."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbt_s3_export.commit import new_generation

from .engine import (
    assert_export_is,
    engine_client,
    expected_rows,
    export,
    manifest,
    read_rows,
    table,
)
from .faultproxy import HOLD, FaultProxy, Rule
from .support import DbtProject, S3Server, list_keys, read_object


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_server.endpoint).start()
    yield p
    p.stop()


def foreign_objects(s3: Any, bucket: str) -> dict[str, bytes]:
    """Objects near the export that it does not own, some named like its own files."""
    stranger = new_generation()
    objects = {
        "events/notes.txt": b"kept: not named like an export file",
        "events/p=1/readme.txt": b"kept: inside a partition folder but not ours",
        f"events/sub/part-{stranger}-00001.parquet": b"kept: a nested prefix that is not Hive",
        f"events_archive/part-{stranger}-00001.parquet": b"kept: the neighbouring prefix",
        f"events_archive/p=1/part-{stranger}-00001.parquet": b"kept: neighbour's partition",
        "events.parquet": b"kept: a sibling object",
    }
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return objects


def test_shrinking_from_100_partitions_to_3_then_to_empty(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    client = engine_client(s3_server.endpoint)
    others = foreign_objects(s3, bucket)
    opts = {"partition_cols": ["p"], "include_partition_cols": True}

    first = table(200, tag="one", partitions=100)
    result = export(client, bucket, "events/", first, **opts)
    assert len(result.files) == 100
    assert_export_is(s3, bucket, "events/", first, others=others)

    second = table(9, tag="two", partitions=3)
    result = export(client, bucket, "events/", second, **opts)
    assert (len(result.files), result.removed) == (3, 100)
    current = assert_export_is(s3, bucket, "events/", second, others=others)
    assert sorted(f["partition"] for f in current["files"]) == ["p=0/", "p=1/", "p=2/"]

    empty = table(0, tag="three")
    result = export(client, bucket, "events/", empty, **opts)
    assert (len(result.files), result.removed) == (0, 3)
    current = assert_export_is(s3, bucket, "events/", empty, others=others)
    assert (current["files"], current["rows"]) == ([], 0)


def test_unpartitioned_folder_replaced_by_an_empty_model(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    client = engine_client(s3_server.endpoint)
    first = table(30, tag="one")
    export(client, bucket, "flat/", first, max_rows_per_file=10)
    assert len(manifest(s3, bucket, "flat/")["files"]) == 3

    empty = table(0, tag="two")
    export(client, bucket, "flat/", empty, max_rows_per_file=10)
    current = assert_export_is(s3, bucket, "flat/", empty)
    # Readers that expect a file get one, with the schema and no rows.
    assert [f["rows"] for f in current["files"]] == [0]


def test_more_than_1000_old_files_are_deleted_in_batches_of_1000(
    s3: Any, bucket: str, s3_server: S3Server, proxy: FaultProxy
) -> None:
    many = table(1050, tag="one")
    direct = engine_client(s3_server.endpoint)
    export(direct, bucket, "many/", many, max_rows_per_file=1, file_format="csv")
    assert len(list_keys(s3, bucket, "many/")) == 1052  # files, manifest and lease

    # The proxy counts the keys of each DeleteObjects request.
    few = table(2, tag="two")
    result = export(engine_client(proxy.endpoint), bucket, "many/", few)
    assert result.removed == 1050
    assert_export_is(s3, bucket, "many/", few)
    deletes = proxy.requests("POST", query=r"(^|&)delete")
    assert sorted(len(re.findall(rb"<Key>", d.body)) for d in deletes) == [50, 1000]


def test_files_named_like_ours_but_never_recorded_are_left_alone(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    """Only files a manifest or the lease records are ever deleted, not look-alikes."""
    client = engine_client(s3_server.endpoint)
    opts = {"partition_cols": ["p"], "include_partition_cols": True}
    export(client, bucket, "events/", table(4, tag="one", partitions=2), **opts)
    stray = new_generation()
    look_alikes = {
        f"events/p=0/part-{stray}-00001.parquet": b"someone else's file",
        f"events/p=7/part-{stray}-00002.parquet": b"someone else's file",
    }
    for key, body in look_alikes.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    data = table(6, tag="two", partitions=3)
    export(client, bucket, "events/", data, **opts)
    others = {**foreign_objects(s3, bucket), **look_alikes}
    assert_export_is(s3, bucket, "events/", data, others=others)


def test_files_of_a_run_that_died_holding_the_lease_go_once_it_expires(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    client = engine_client(s3_server.endpoint)
    others = foreign_objects(s3, bucket)
    opts = {"partition_cols": ["p"], "include_partition_cols": True, "lease_ttl_seconds": 2}
    export(client, bucket, "events/", table(4, tag="one", partitions=2), **opts)
    # What a run killed before its commit leaves: its lease, files and an unfinished upload.
    dead = new_generation()
    lease = json.loads(read_object(s3, bucket, "events/_lease.json"))
    lease["state"] = "held"
    lease["holder"] = {"generation": dead, "model": "m", "host": "gone", "pid": 1, "since": "-"}
    s3.put_object(Bucket=bucket, Key="events/_lease.json", Body=json.dumps(lease).encode())
    s3.put_object(Bucket=bucket, Key=f"events/p=0/part-{dead}-00001.parquet", Body=b"x")
    s3.put_object(Bucket=bucket, Key=f"events/p=7/part-{dead}-00002.parquet", Body=b"x")
    s3.create_multipart_upload(Bucket=bucket, Key=f"events/p=9/part-{dead}-00003.parquet")

    data = table(6, tag="two", partitions=3)
    started = time.monotonic()
    export(client, bucket, "events/", data, **opts)
    assert time.monotonic() - started >= 2, "the lease was taken before it expired"
    assert_export_is(s3, bucket, "events/", data, others=others)


def test_single_object_is_replaced_and_stale_uploads_at_its_key_aborted(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    client = engine_client(s3_server.endpoint)
    export(client, bucket, "one/data.parquet", table(5, tag="one"))
    s3.create_multipart_upload(Bucket=bucket, Key="one/data.parquet")
    s3.create_multipart_upload(Bucket=bucket, Key="one/data.parquet.bak")

    second = table(3, tag="two")
    export(client, bucket, "one/data.parquet", second)
    assert list_keys(s3, bucket, "one/") == ["one/data.parquet"]
    assert read_rows(s3, bucket, ["one/data.parquet"]) == expected_rows(second)
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="one/").get("Uploads", [])
    assert [u["Key"] for u in uploads] == ["one/data.parquet.bak"]


@pytest.mark.dbt
def test_dbt_run_killed_mid_export_keeps_the_previous_export(
    tmp_path: Path, s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    project = DbtProject(
        tmp_path / "project",
        proxy.endpoint,
        plugin_config={
            "bucket": bucket,
            "file_format": "csv",
            "part_size_mb": 5,
            # The killed run's lease expires 3 s after its last renewal.
            "lease_ttl_seconds": 3,
        },
    )
    # Partition 'a'..'t' are small files; in the second run 'z' is ~28 MB of CSV,
    # more than three 5 MiB parts: a multipart upload.
    project.model(
        "events",
        """
        {{ config(materialized='table', post_hook="{{ dbt_s3_export.export_to_s3() }}",
                  meta={'s3_export': {'key': 'events/', 'partition_cols': ['part']}}) }}
        select i as id, case when i < {{ var('small', 200) }}
                             then chr((97 + i % 20)::integer) else 'z' end as part,
               repeat('{{ var("tag", "one") }}', 10) || i::varchar as payload
        from range({{ var('rows', 400) }}) t(i)
        """,
    )
    project.dbt("run")
    before = manifest(s3, bucket, "events/")
    before_keys = list_keys(s3, bucket, "events/")
    # The lease changes hands with every run; the export's own objects must not.
    before_bodies = {k: read_object(s3, bucket, k) for k in before_keys if "_lease" not in k}
    assert len(before["files"]) == 21

    # The second run stalls on its first multipart part; kill it there.
    proxy.add(Rule(HOLD, method="PUT", query=r"partNumber=", times=1))
    run = project.start("run", "--vars", "{tag: two, rows: 700000}")
    try:
        assert proxy.held.wait(120), "the export never reached its multipart upload"
        # Some small files of the new generation are written by now.
        assert proxy.requests("PUT", query=r"^$")
    finally:
        run.kill()
    assert run.proc.returncode == -signal.SIGKILL
    assert list_keys(s3, bucket, "events/") != before_keys  # the dead run left files...
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix="events/").get("Uploads")
    # ...but the previous export is complete and unchanged.
    assert manifest(s3, bucket, "events/") == before
    for key, body in before_bodies.items():
        assert read_object(s3, bucket, key) == body

    proxy.clear()
    project.dbt("run", "--vars", "{tag: three}")
    after = manifest(s3, bucket, "events/")
    listed = {f["key"] for f in after["files"]}
    assert after["rows"] == 400 and len(listed) == 21
    control = {"events/_manifest.json", "events/_lease.json"}
    assert set(list_keys(s3, bucket, "events/")) == listed | control
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix="events/").get("Uploads", []) == []
    assert all(b"three" in read_object(s3, bucket, k) for k in listed)
