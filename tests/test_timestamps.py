"""Timestamps of S3's answers read as botocore reads them, without its slow parser."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from dbt_s3_export.s3 import timestamps
from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings
from dbt_s3_export.s3.timestamps import parse_timestamp

from .support import S3Server


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-06T10:29:26.000Z",
        "2026-12-06T10:29:26Z",
        "2026-12-06T10:29:26.123456Z",
        "2026-12-06T10:29:26+02:00",
        "Sun, 06 Dec 2026 10:29:26 GMT",
        "Sun, 06 Dec 2026 10:29:26 +0100",
        "Sun, 06 Dec 2026 10:29:26 -0000",
        "2026-12-06T10:29:26",
        "2026-12-06",
        "1733481000",
        1733481000,
        1733481000.5,
    ],
)
def test_every_form_reads_as_the_instant_botocore_reads(value: Any) -> None:
    ours, theirs = parse_timestamp(value), botocore_parse_timestamp(value)
    assert ours == theirs
    assert (ours.utcoffset() is None) == (theirs.utcoffset() is None)


def test_what_no_parser_reads_fails_as_botocore_fails() -> None:
    with pytest.raises(ValueError):
        botocore_parse_timestamp("not a date")
    with pytest.raises(ValueError):
        parse_timestamp("not a date")


def test_clients_read_s3_timestamps_with_it(
    bucket: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    def noted(value: Any) -> dt.datetime:
        seen.append(value)
        return parse_timestamp(value)

    monkeypatch.setattr(timestamps, "parse_timestamp", noted)
    client = ClientCache().get(
        ConnectionSettings(region="us-east-1", endpoint_url=s3_server.endpoint)
    )
    client.put_object(Bucket=bucket, Key="stamps/a", Body=b"a")
    listed = client.list_objects_v2(Bucket=bucket, Prefix="stamps/")["Contents"][0]["LastModified"]
    head = client.head_object(Bucket=bucket, Key="stamps/a")["LastModified"]
    # The listing's ISO 8601 and the header's HTTP date: the same second, in UTC.
    assert listed.utcoffset() == head.utcoffset() == dt.timedelta(0)
    assert listed.replace(microsecond=0) == head
    assert abs(head - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=5)
    assert any(isinstance(v, str) and v[:1].isdigit() for v in seen), seen
    assert any(isinstance(v, str) and v.endswith("GMT") for v in seen), seen
