"""Real S3 faults between boto3 and the server: transient ones are survived, persistent
ones fail the export cleanly, and in both cases the previous export stays intact."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pytest

from dbt_s3_export import ExportFailed, S3ExportError
from dbt_s3_export.s3 import transfer

from .engine import (
    assert_export_is,
    engine_client,
    expected_rows,
    export,
    manifest,
    read_rows,
    table,
)
from .faultproxy import CUT_ANSWER, DELAY, DROP_ANSWER, HOLD, PASS, RESET, STATUS, FaultProxy, Rule
from .support import S3Server, list_keys, read_object

PREFIX = "events/"
PARTITIONED = {"partition_cols": ["p"], "include_partition_cols": True}
FILE_PUT = r"/part-[0-9a-f]{24}-\d{5}\."
MANIFEST = r"/_manifest\.json$"
LEASE = r"/_lease\.json$"


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_server.endpoint).start()
    yield p
    p.stop()


@pytest.fixture
def previous(s3: Any, bucket: str, s3_server: S3Server) -> pa.Table:
    """A complete earlier export under PREFIX, written without faults."""
    data = table(40, tag="previous", partitions=4)
    export(engine_client(s3_server.endpoint), bucket, PREFIX, data, **PARTITIONED)
    return data


@pytest.fixture(scope="module")
def big_table() -> pa.Table:
    return table(300_000, tag="big")


@pytest.fixture
def big(big_table: pa.Table, monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    """Enough uncompressed parquet for a multipart upload of two 5 MiB parts.

    Objects of up to one part go up in one PUT here (three by default), so that
    the multipart path is taken with little data.
    """
    monkeypatch.setattr(transfer, "SINGLE_PUT_PARTS", 1)
    return big_table


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and "Traceback" not in text, text
    return text


TRANSIENT = {
    "503 SlowDown on file PUTs": Rule(STATUS, "PUT", FILE_PUT, times=2),
    "500 on file PUTs": Rule(STATUS, "PUT", FILE_PUT, times=3, status=500, code="InternalError"),
    "reset mid-body on file PUTs": Rule(RESET, "PUT", FILE_PUT, times=3),
    "reset on the manifest read": Rule(RESET, "GET", MANIFEST, times=1),
    "manifest answer cut halfway": Rule(CUT_ANSWER, "GET", MANIFEST, times=2),
    "500 on the manifest PUT": Rule(STATUS, "PUT", MANIFEST, times=2, status=500),
    "manifest PUT lands, its answer is lost": Rule(DROP_ANSWER, "PUT", MANIFEST, times=1),
    "503 on taking the lease": Rule(STATUS, "PUT", LEASE, times=2),
    "503 on reading the lease": Rule(STATUS, "GET", LEASE, times=2),
    "reset on the batch delete": Rule(RESET, "POST", query="delete", times=1),
    "delay under the timeout": Rule(DELAY, "PUT", FILE_PUT, times=2, delay=0.3),
}


@pytest.mark.parametrize("rule", TRANSIENT.values(), ids=list(TRANSIENT))
def test_transient_fault_is_retried(
    rule: Rule, s3: Any, bucket: str, proxy: FaultProxy, previous: pa.Table
) -> None:
    rule = proxy.add(replace(rule))
    data = table(30, tag="new", partitions=3)
    export(engine_client(proxy.endpoint), bucket, PREFIX, data, **PARTITIONED)
    assert rule.fired == rule.times
    assert_export_is(s3, bucket, PREFIX, data)


def test_a_lost_manifest_answer_is_settled_by_reading_it_back(
    s3: Any, bucket: str, proxy: FaultProxy, previous: pa.Table
) -> None:
    # Every manifest PUT reaches the server but no answer comes back, through all retries.
    rule = proxy.add(Rule(DROP_ANSWER, "PUT", MANIFEST, times=None))
    data = table(30, tag="new", partitions=3)
    export(engine_client(proxy.endpoint), bucket, PREFIX, data, **PARTITIONED)
    assert rule.fired == 5
    assert_export_is(s3, bucket, PREFIX, data)


def test_a_read_timeout_is_retried(
    s3: Any, bucket: str, proxy: FaultProxy, previous: pa.Table
) -> None:
    # The first file PUT is delayed past a 1 s read timeout; the retry goes through.
    rule = proxy.add(Rule(DELAY, "PUT", r"/p%3D0/part-", times=1, delay=2.5))
    data = table(30, tag="new", partitions=3)
    export(engine_client(proxy.endpoint, read_timeout=1), bucket, PREFIX, data, **PARTITIONED)
    assert rule.fired == 1
    assert read_rows(s3, bucket, [f["key"] for f in manifest(s3, bucket, PREFIX)["files"]]) == (
        expected_rows(data)
    )


PERSISTENT = {
    "500 on every file PUT": (
        Rule(STATUS, "PUT", FILE_PUT, times=None, status=500, code="InternalError"),
        "after 5 attempts: InternalError (HTTP 500)",
    ),
    "connection reset on every file PUT": (
        Rule(RESET, "PUT", FILE_PUT, times=None),
        "the connection to S3 kept breaking",
    ),
    "500 on every manifest PUT": (
        Rule(STATUS, "PUT", MANIFEST, times=None, status=500, code="InternalError"),
        "write events/_manifest.json",
    ),
    "no answer in time, ever": (
        Rule(HOLD, "PUT", FILE_PUT, times=None),
        "did not answer in time",
    ),
}


@pytest.mark.parametrize(("rule", "message"), PERSISTENT.values(), ids=list(PERSISTENT))
def test_persistent_fault_fails_and_keeps_the_previous_export(
    rule: Rule, message: str, s3: Any, bucket: str, proxy: FaultProxy, previous: pa.Table
) -> None:
    rule = proxy.add(replace(rule))
    client = engine_client(proxy.endpoint, read_timeout=1)
    with pytest.raises(S3ExportError) as failure:
        export(client, bucket, PREFIX, table(30, tag="new", partitions=3), **PARTITIONED)
    text = one_line(failure.value)
    assert message in text and text.endswith("The previous export is unchanged"), text
    assert rule.fired >= 5
    # What this run wrote is gone; the previous export is whole.
    assert_export_is(s3, bucket, PREFIX, previous)


def test_failed_delete_after_the_manifest_fails_the_model_and_next_run_cleans_up(
    s3: Any, bucket: str, proxy: FaultProxy, previous: pa.Table
) -> None:
    old_keys = [f["key"] for f in manifest(s3, bucket, PREFIX)["files"]]
    proxy.add(Rule(STATUS, "POST", query="delete", times=None, status=500, code="InternalError"))
    data = table(30, tag="new", partitions=3)
    with pytest.raises(ExportFailed) as failure:
        export(engine_client(proxy.endpoint), bucket, PREFIX, data, **PARTITIONED)
    text = one_line(failure.value)
    assert text.startswith("the new export is in place and its manifest lists it"), text
    assert "but cleaning up after it failed" in text, text
    assert "The next successful run finishes the clean-up" in text, text
    # Readers following the manifest see the new data; the old files are still there.
    listed = [f["key"] for f in manifest(s3, bucket, PREFIX)["files"]]
    assert read_rows(s3, bucket, listed) == expected_rows(data)
    assert set(old_keys) <= set(list_keys(s3, bucket, PREFIX))

    proxy.clear()
    again = table(20, tag="again", partitions=2)
    export(engine_client(proxy.endpoint), bucket, PREFIX, again, **PARTITIONED)
    assert_export_is(s3, bucket, PREFIX, again)


def test_manifest_in_doubt_keeps_both_generations_consistent(
    s3: Any, bucket: str, proxy: FaultProxy, previous: pa.Table
) -> None:
    # The manifest PUT lands but its answer is lost, and reading it back fails too.
    # The read before the write goes through, so only the read-back fails.
    proxy.add(Rule(PASS, "GET", MANIFEST, times=1))
    proxy.add(Rule(DROP_ANSWER, "PUT", MANIFEST, times=None))
    proxy.add(Rule(STATUS, "GET", MANIFEST, times=None, status=500, code="InternalError"))
    data = table(30, tag="new", partitions=3)
    with pytest.raises(ExportFailed) as failure:
        export(engine_client(proxy.endpoint), bucket, PREFIX, data, **PARTITIONED)
    text = one_line(failure.value)
    assert "could not be read back" in text and "Both sets of files are kept" in text, text
    # Whichever manifest is there, every file it lists is there.
    listed = [f["key"] for f in manifest(s3, bucket, PREFIX)["files"]]
    assert read_rows(s3, bucket, listed) == expected_rows(data)
    assert len(list_keys(s3, bucket, PREFIX)) == 2 + 4 + 3  # manifest and lease, both sets

    proxy.clear()
    again = table(20, tag="again", partitions=2)
    export(engine_client(proxy.endpoint), bucket, PREFIX, again, **PARTITIONED)
    assert_export_is(s3, bucket, PREFIX, again)


MULTIPART_TRANSIENT = {
    "500 on UploadPart": Rule(STATUS, "PUT", query="partNumber=", times=2, status=500),
    "reset mid-body on UploadPart": Rule(RESET, "PUT", query="partNumber=", times=2),
    "503 on CreateMultipartUpload": Rule(STATUS, "POST", query="uploads", times=1),
    "500 on CompleteMultipartUpload": Rule(STATUS, "POST", query="uploadId=", times=1, status=500),
}


@pytest.mark.parametrize("rule", MULTIPART_TRANSIENT.values(), ids=list(MULTIPART_TRANSIENT))
def test_single_object_multipart_survives_transient_faults(
    rule: Rule, s3: Any, bucket: str, s3_server: S3Server, proxy: FaultProxy, big: pa.Table
) -> None:
    key = "single/data.parquet"
    export(engine_client(s3_server.endpoint), bucket, key, table(5, tag="old"))
    rule = proxy.add(replace(rule))
    export(engine_client(proxy.endpoint), bucket, key, big, part_size_mb=5, compression="none")
    assert rule.fired == rule.times
    assert len(proxy.requests("PUT", query="partNumber=")) >= 2
    assert read_rows(s3, bucket, [key]) == expected_rows(big)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@pytest.mark.parametrize(
    "rule",
    [
        Rule(STATUS, "PUT", query="partNumber=2", times=None, status=500),
        Rule(RESET, "PUT", query="partNumber=", times=None),
        Rule(STATUS, "POST", query="uploadId=", times=None, status=500),
    ],
    ids=["500 on part 2", "reset on every part", "500 on completing"],
)
def test_single_object_keeps_the_old_object_through_persistent_faults(
    rule: Rule, s3: Any, bucket: str, s3_server: S3Server, proxy: FaultProxy, big: pa.Table
) -> None:
    key = "single/data.parquet"
    old = table(5, tag="old")
    export(engine_client(s3_server.endpoint), bucket, key, old)
    before = read_object(s3, bucket, key)
    proxy.add(replace(rule))
    with pytest.raises(S3ExportError) as failure:
        export(engine_client(proxy.endpoint), bucket, key, big, part_size_mb=5, compression="none")
    text = one_line(failure.value)
    assert text.endswith("The object is unchanged"), text
    assert read_object(s3, bucket, key) == before
    assert list_keys(s3, bucket, "single/") == [key]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
