"""The commit protocol driven through the engine: leases, ownership, hand-over, emulation."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pytest

from dbt_s3_export import (
    ArrowSource,
    CorruptManifest,
    ExportConfig,
    LeaseLost,
    OwnershipConflict,
    RunContext,
    run_export,
)
from dbt_s3_export.commit import (
    FolderCommit,
    Manifest,
    plan_commit,
    supports_conditional_writes,
)
from dbt_s3_export.commit.lease import Lease
from dbt_s3_export.s3.objects import StoredObject

from .concurrency import InvariantWatcher, check_settled, lease, wait_for_lease_holder
from .engine import engine_client, expected_rows, read_rows, table
from .faultproxy import STRIP_CONDITIONS, FaultProxy, Rule
from .support import MotoServer, S3Server, list_keys, read_object, s3_client


def run(
    client: Any, bucket: str, key: str, data: pa.Table, model: str = "m", **options: Any
) -> Any:
    cfg = ExportConfig.parse({"bucket": bucket, "key": key, "file_format": "parquet", **options})
    return run_export(
        cfg, ArrowSource(data), client, RunContext(model=model, unique_id=f"model.p.{model}")
    )


class SlowSource:
    """An Arrow table read a batch at a time, pausing before each batch."""

    def __init__(self, data: pa.Table, pause: float, started: threading.Event | None = None):
        self.data = data
        self.pause = pause
        self.started = started or threading.Event()

    def schema(self, order_by: Sequence[str] = ()) -> pa.Schema:
        return self.data.schema

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        def batches() -> Iterator[pa.RecordBatch]:
            self.started.set()
            for batch in self.data.to_batches(max_chunksize=max(1, self.data.num_rows // 4)):
                time.sleep(self.pause)
                yield batch

        return pa.RecordBatchReader.from_batches(self.data.schema, batches())


# -- the manifest and the modes, without a server -------------------------------------------

PREFIX_CFG = ExportConfig.parse({"bucket": "b-1", "key": "out/", "file_format": "csv"})


def stored(body: Any) -> StoredObject:
    import datetime as dt

    now = dt.datetime.now(dt.timezone.utc)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return StoredObject("out/_manifest.json", data, '"e"', now, now)


# A generation as runs make them (commit.new_generation).
G = "0190f3a2b4c5d6e7f8a9b0c1"
GOOD = {"format_version": 2, "generation": "g", "file_format": "csv", "files": []}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>", "it is not JSON"),
        ([1, 2], "it holds a JSON list, not an object"),
        ({**GOOD, "format_version": 9}, "format_version is 9, expected 1 or 2"),
        ({**GOOD, "files": "x"}, "'files' is a str, not a list"),
        ({**GOOD, "files": ["out/a.csv"]}, "files[0] is 'out/a.csv', not a data file"),
        ({**GOOD, "files": [{"key": f"elsewhere/part-{G}.csv"}]}, "not a data file"),
        ({**GOOD, "files": [{"key": "out/_manifest.json"}]}, "not a data file"),
        ({**GOOD, "files": [{"key": "out/_lease.json"}]}, "not a data file"),
        ({**GOOD, "files": [{"key": "out/sub/_lease.json"}]}, "not a data file"),
        ({**GOOD, "files": [{"key": f"out/_probe-{G}.json"}]}, "not a data file"),
        ({**GOOD, "files": [{"key": "out/part-1-00001.csv"}]}, "not a data file"),
        ({**GOOD, "files": [{"key": f"out/other/part-{G}.csv"}]}, "not a data file"),
        ({**GOOD, "partition_types": "date"}, "'partition_types' is 'date', not a list"),
        ({**GOOD, "generation": 7}, "'generation' is 7, not a string"),
        ({**GOOD, "partition_cols": "day"}, "'partition_cols' is 'day', not a list"),
    ],
)
def test_a_manifest_this_version_cannot_read_is_refused_by_name(body: Any, problem: str) -> None:
    with pytest.raises(CorruptManifest) as failure:
        Manifest.parse(stored(body), PREFIX_CFG)
    text = str(failure.value)
    assert text.startswith("s3://b-1/out/_manifest.json is not a manifest this version"), text
    assert problem in text and "Nothing was changed" in text, text


def test_each_mode_keeps_and_drops_what_it_should() -> None:
    files = [
        {"key": "out/d=1/a.csv", "partition": "d=1/"},
        {"key": "out/d=2/b.csv", "partition": "d=2/"},
    ]
    previous = Manifest({**GOOD, "files": files}, '"e"')
    assert plan_commit("replace", "out/", previous, ["d=1/"]).dropped == [
        "out/d=1/a.csv",
        "out/d=2/b.csv",
    ]
    assert plan_commit("append", "out/", previous, ["d=1/"]).kept == files
    overwrite = plan_commit("overwrite_partitions", "out/", previous, ["d=1/"])
    assert (overwrite.kept, overwrite.dropped) == ([files[1]], ["out/d=1/a.csv"])
    assert plan_commit("replace", "out/", None, []).dropped == []


# -- ownership and hand-over ----------------------------------------------------------------


def test_a_folder_is_handed_over_only_when_asked(s3: Any, bucket: str, s3_server: S3Server) -> None:
    client = engine_client(s3_server.endpoint)
    run(client, bucket, "out/", table(4, tag="a"), model="old_name")
    with pytest.raises(
        OwnershipConflict, match=re.escape("belongs to export 'model.p.old_name#0'")
    ):
        run(client, bucket, "out/", table(4, tag="b"), model="new_name")

    data = table(6, tag="b")
    run(client, bucket, "out/", data, model="new_name", take_over_from="model.p.old_name#0")
    settled = check_settled(s3, bucket, "out/")
    assert settled["export_id"] == "model.p.new_name#0"
    assert lease(s3, bucket, "out/")["export_id"] == "model.p.new_name#0"
    assert read_rows(s3, bucket, [f["key"] for f in settled["files"]]) == expected_rows(data)
    # The old owner lost the folder for good.
    with pytest.raises(OwnershipConflict):
        run(client, bucket, "out/", table(4, tag="c"), model="old_name")
    # An explicit export_id names an export whatever model writes it.
    run(client, bucket, "kept/", table(2, tag="d"), model="x", export_id="orders_feed")
    run(client, bucket, "kept/", table(2, tag="e"), model="y", export_id="orders_feed")


def test_single_objects_have_owners_too(s3: Any, bucket: str, s3_server: S3Server) -> None:
    client = engine_client(s3_server.endpoint)
    result = run(client, bucket, "files/orders.parquet", table(3, tag="a"), model="orders")
    head = s3.head_object(Bucket=bucket, Key="files/orders.parquet")
    assert head["Metadata"] == {
        "dbt-s3-export-id": "model.p.orders#0",
        "dbt-s3-export-run": result.generation,
    }
    # An id that headers cannot carry as it is (spaces, '%', not ASCII) reads back exactly.
    odd = "feed 50% Größe #1"
    run(client, bucket, "files/odd.parquet", table(1, tag="o"), model="o", export_id=odd)
    head = s3.head_object(Bucket=bucket, Key="files/odd.parquet")
    assert head["Metadata"]["dbt-s3-export-id"] == "feed%2050%25%20Gr%C3%B6%C3%9Fe%20#1"
    run(client, bucket, "files/odd.parquet", table(1, tag="p"), model="o2", export_id=odd)
    with pytest.raises(OwnershipConflict, match=re.escape(f"belongs to export '{odd}'")):
        run(client, bucket, "files/odd.parquet", table(1, tag="q"), model="o3")
    with pytest.raises(OwnershipConflict, match=re.escape("belongs to export 'model.p.orders#0'")):
        run(client, bucket, "files/orders.parquet", table(3, tag="b"), model="customers")
    run(client, bucket, "files/orders.parquet", table(5, tag="c"), model="orders")
    assert read_rows(s3, bucket, ["files/orders.parquet"]) == expected_rows(table(5, tag="c"))

    # A single object may not sit inside a folder another export owns.
    run(client, bucket, "lake/", table(2, tag="d"), model="lake")
    with pytest.raises(OwnershipConflict, match=f"s3://{bucket}/lake/ belongs to export"):
        run(client, bucket, "lake/extra.parquet", table(2, tag="e"), model="extra")
    assert "lake/extra.parquet" not in list_keys(s3, bucket, "lake/")


# -- leases ---------------------------------------------------------------------------------


def _export_in_background(
    cfg: ExportConfig, source: SlowSource, client: Any
) -> tuple[threading.Thread, list[BaseException]]:
    """The export running on a thread of its own, and where its failure goes."""
    failure: list[BaseException] = []

    def export() -> None:
        try:
            run_export(cfg, source, client, RunContext(model="m", unique_id="model.p.m"))
        except BaseException as e:
            failure.append(e)

    worker = threading.Thread(target=export)
    worker.start()
    return worker, failure


def _take_lease(s3: Any, bucket: str, prefix: str) -> None:
    """Hold the folder's lease for another run, whatever the lease says now."""
    record = lease(s3, bucket, prefix)
    record["holder"]["generation"] = "0" * 24
    record["token"] = "taken"
    s3.put_object(Bucket=bucket, Key=prefix + "_lease.json", Body=json.dumps(record).encode())


def test_a_run_that_loses_its_lease_does_not_commit(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    client = engine_client(s3_server.endpoint)
    run(client, bucket, "out/", table(4, tag="before"), lease_ttl_seconds=2)
    before = read_object(s3, bucket, "out/_manifest.json")
    cfg = ExportConfig.parse(
        {"bucket": bucket, "key": "out/", "file_format": "parquet", "lease_ttl_seconds": 2}
    )
    source = SlowSource(table(40, tag="slow"), pause=1.0)
    worker, failure = _export_in_background(cfg, source, client)
    assert source.started.wait(30)
    # The rows are read while the lease is taken: wait until this run holds it.
    wait_for_lease_holder(s3, bucket, "out/", timeout=30)
    # Someone (an operator, or a run that judged the lease expired) takes the lease over.
    _take_lease(s3, bucket, "out/")
    worker.join(60)
    assert failure and isinstance(failure[0], LeaseLost), failure
    assert "lost its lease" in str(failure[0]) and "did not commit" in str(failure[0])
    assert read_object(s3, bucket, "out/_manifest.json") == before


@pytest.mark.parametrize("renewing", [True, False])
def test_a_run_that_finds_its_lease_taken_sends_no_more_files(
    s3: Any, bucket: str, s3_server: S3Server, renewing: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files sent after the new holder swept the run's generation would be named by no
    record and stay: once the lease is found taken, nothing more is sent. Found by the
    renewals, or, when they stalled (``renewing`` False), by the upload that is next."""
    if not renewing:
        monkeypatch.setattr(Lease, "_renew_loop", lambda self: None)
    client = engine_client(s3_server.endpoint)
    cfg = ExportConfig.parse(
        {
            "bucket": bucket,
            "key": "taken/",
            "file_format": "parquet",
            "partition_cols": ["p"],
            "lease_ttl_seconds": 2,
        }
    )
    # Four batches 2.5 s apart; each row a file of its own (p changes every row). The
    # lease was taken before the first files went (they wait for it): by the second
    # batch it is more than its 2 s ttl old.
    source = SlowSource(table(40, tag="slow", partitions=4), pause=2.5)
    sent: list[float] = []
    client.meta.events.register(
        "before-parameter-build.s3.PutObject",
        lambda params, **_: sent.append(time.monotonic()) if "/p=" in params["Key"] else None,
    )
    worker, failure = _export_in_background(cfg, source, client)
    deadline = time.monotonic() + 30
    # The first batch's files but its last, which is sent when the next row opens a file.
    while len(sent) < 9 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sent) == 9, sent
    _take_lease(s3, bucket, "taken/")
    taken = time.monotonic()
    worker.join(60)
    assert failure and isinstance(failure[0], LeaseLost), failure
    assert "stopped writing" in str(failure[0]), failure[0]
    # Found before the next batch is sent.
    assert [t for t in sent if t > taken] == [], len([t for t in sent if t > taken])
    assert [k for k in list_keys(s3, bucket, "taken/") if "/p=" in k] == []


@pytest.mark.parametrize(
    ("mode", "twice"),
    [("replace", False), ("overwrite_partitions", False), ("replace", True)],
)
def test_a_run_killed_between_its_commit_and_its_clean_up(
    s3: Any,
    bucket: str,
    s3_server: S3Server,
    mode: str,
    twice: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What its commit took out of the export is deleted by the run that takes its lease
    over: the manifest names those keys, since no lease can. ``twice``: the run that took
    the lease over died too, before it could write down what it inherited."""
    client = engine_client(s3_server.endpoint)
    options = {"partition_cols": ["p"], "lease_ttl_seconds": 2, "mode": mode}
    run(client, bucket, "out/", table(8, tag="first", partitions=2), **options)
    first = {f["key"] for f in json.loads(read_object(s3, bucket, "out/_manifest.json"))["files"]}
    with monkeypatch.context() as killed:
        # Committed, then gone: no clean-up, and the lease neither freed nor renewed.
        killed.setattr(FolderCommit, "finish", lambda self: self.lease._stop.set() or 0)
        run(client, bucket, "out/", table(8, tag="second", partitions=2), **options)
    manifest = json.loads(read_object(s3, bucket, "out/_manifest.json"))
    assert sorted(manifest["superseded"]) == sorted(first)
    assert first <= set(list_keys(s3, bucket, "out/"))
    if twice:  # as the lease of a run that took it over and died at once looks
        time.sleep(3.5)
        record = lease(s3, bucket, "out/")
        assert record["holder"]["generation"] == manifest["generation"]
        record["holder"]["generation"] = "f" * 24
        record["garbage"]["generations"] = [manifest["generation"]]
        s3.put_object(Bucket=bucket, Key="out/_lease.json", Body=json.dumps(record).encode())
    time.sleep(3.5)  # the lease expires
    run(client, bucket, "out/", table(8, tag="third", partitions=2), **options)
    assert not first & set(list_keys(s3, bucket, "out/"))
    assert check_settled(s3, bucket, "out/")["generation"] != manifest["generation"]


# -- servers without conditional writes -----------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.mark.slow
def test_a_server_that_ignores_conditions_is_detected_and_emulated(moto: MotoServer) -> None:
    """moto over a proxy that drops If-Match/If-None-Match: a server without them."""
    s3 = s3_client(moto.endpoint)
    s3.create_bucket(Bucket="plain")
    proxy = FaultProxy(moto.endpoint).start()
    try:
        proxy.add(Rule(STRIP_CONDITIONS, times=None))
        client = engine_client(proxy.endpoint)
        assert supports_conditional_writes(client, "plain", "out/") is False
        assert supports_conditional_writes(engine_client(moto.endpoint), "plain", "out/")
        overlapping_runs(s3, "plain", client, conditional_writes="auto")
    finally:
        proxy.stop()


def test_emulated_conditional_writes_keep_runs_apart(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    overlapping_runs(s3, bucket, engine_client(s3_server.endpoint), conditional_writes="false")


def overlapping_runs(s3: Any, bucket: str, client: Any, **options: Any) -> None:
    """Three runs of one export at once: each waits its turn; the invariant always holds."""
    run(
        client, bucket, "out/", table(8, tag="first", partitions=2), partition_cols=["p"], **options
    )
    errors: list[BaseException] = []

    def export(tag: str) -> None:
        try:
            cfg = ExportConfig.parse(
                {
                    "bucket": bucket,
                    "key": "out/",
                    "file_format": "parquet",
                    "partition_cols": ["p"],
                    **options,
                }
            )
            source = SlowSource(table(8, tag=tag, partitions=2), pause=0.3)
            run_export(cfg, source, client, RunContext(model="m", unique_id="model.p.m"))
        except BaseException as e:
            errors.append(e)

    with InvariantWatcher(s3, bucket, "out/"):
        workers = [threading.Thread(target=export, args=(f"run{i}",)) for i in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
    assert not errors, errors
    settled = check_settled(s3, bucket, "out/")
    tags = {
        row[1].split("-")[0] for row in read_rows(s3, bucket, [f["key"] for f in settled["files"]])
    }
    assert len(tags) == 1 and tags <= {"run0", "run1", "run2"}


def test_a_probe_left_by_a_dead_run_is_deleted_by_a_later_probe_once_old(
    s3: Any, bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbt_s3_export.commit import store

    client = engine_client(s3_server.endpoint)
    s3.put_object(Bucket=bucket, Key="out/_probe-0123456789abcdef.json", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="out/part-0.csv", Body=b"a\n")
    # Young: a live run may be probing with it, so it stays.
    monkeypatch.setattr(store, "_PROBED", {})
    assert supports_conditional_writes(client, bucket, "out/")
    assert list_keys(s3, bucket) == ["out/_probe-0123456789abcdef.json", "out/part-0.csv"]
    # Old (the threshold lowered to below its age): deleted, and nothing else.
    time.sleep(1.5)
    monkeypatch.setattr(store, "_PROBED", {})
    monkeypatch.setattr(store, "STALE_PROBE_SECONDS", 0.5)
    assert supports_conditional_writes(client, bucket, "out/")
    assert list_keys(s3, bucket) == ["out/part-0.csv"]
