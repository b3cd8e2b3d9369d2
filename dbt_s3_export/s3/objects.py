"""One S3 request at a time: small objects read and written whole, listings, deletes.

Manifests, leases and probes are read and written whole here, conditionally where
the commit protocol needs it (``If-Match``, ``If-None-Match``). Every request goes
through ``call``, which turns what botocore raises into one of our errors
(error_table.py); retries of transient faults are botocore's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ..errors import ObjectNotFound, PreconditionFailed, S3ExportError, TransferError
from ..pools import shared_pool
from .error_table import S3Request
from .translate import BOTOCORE_ERRORS, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

T = TypeVar("T")
DELETE_BATCH = 1000
BODY_READ_ATTEMPTS = 3


def describe_error(err: BaseException, bucket: str, what: str) -> S3ExportError:
    """The error of ours for a failed request to ``what`` in ``bucket`` (see s3_errors)."""
    return translate(err, S3Request(bucket, what))


def call(bucket: str, what: str, fn: Callable[[], T]) -> T:
    """Run one S3 request, turning what botocore raises into one of our errors."""
    try:
        return fn()
    except BOTOCORE_ERRORS as e:
        raise describe_error(e, bucket, what) from e


# Independent requests (the claim checks of a run) are sent together, on threads
# the process keeps: a few small reads cost one round trip instead of one each.
TOGETHER_THREADS = 8


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent ``calls`` at once; their outcomes in order, after all have ended.

    An outcome is the call's result, or the ``Exception`` it raised (returned, not
    raised), so that the caller judges the outcomes in the order it would have made
    the calls one after the other. The first call runs on the caller's thread, the
    others on a pool the process keeps. None of the calls may itself wait on
    ``together``: the pool is bounded.
    """
    if len(calls) > 1:
        pool = shared_pool("s3-export-together", TOGETHER_THREADS)
        futures = [pool.submit(_outcome, fn) for fn in calls[1:]]
    else:
        futures = []
    first = [_outcome(calls[0])] if calls else []
    return first + [future.result() for future in futures]


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as e:
        return e


def list_objects(client: S3Client, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every object under ``prefix`` as S3 lists it (Key, ETag, LastModified, ...), across pages."""
    paginator = client.get_paginator("list_objects_v2")
    what = f"list s3://{bucket}/{prefix}"
    pages = call(bucket, what, lambda: iter(paginator.paginate(Bucket=bucket, Prefix=prefix)))
    while True:
        page = call(bucket, what, lambda: next(pages, None))
        if page is None:
            return
        yield from cast("list[dict[str, Any]]", page.get("Contents", []))


def list_keys(client: S3Client, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under ``prefix`` (which should end with ``/``), across pages."""
    return (obj["Key"] for obj in list_objects(client, bucket, prefix))


def list_etags(client: S3Client, bucket: str, prefix: str) -> dict[str, str]:
    """Every key under ``prefix`` with its ETag, across pages."""
    return {o["Key"]: str(o.get("ETag", "")) for o in list_objects(client, bucket, prefix)}


def list_modified(client: S3Client, bucket: str, prefix: str) -> dict[str, Any]:
    """Every key under ``prefix`` with its LastModified (the server's clock), across pages."""
    return {o["Key"]: o.get("LastModified") for o in list_objects(client, bucket, prefix)}


def list_folder(
    client: S3Client, bucket: str, prefix: str, *, max_keys: int = 1000
) -> tuple[list[str], list[str]]:
    """One page of the keys and the subfolders directly under ``prefix`` (no recursion)."""
    response = call(
        bucket,
        f"list s3://{bucket}/{prefix}",
        lambda: client.list_objects_v2(
            Bucket=bucket, Prefix=prefix, Delimiter="/", MaxKeys=max_keys
        ),
    )
    keys = [obj["Key"] for obj in response.get("Contents", [])]
    folders = [p["Prefix"] for p in response.get("CommonPrefixes", [])]
    return keys, folders


def list_uploads(client: S3Client, bucket: str, prefix: str) -> Iterator[tuple[str, str]]:
    """(key, upload id) of the incomplete multipart uploads under ``prefix``."""
    paginator = client.get_paginator("list_multipart_uploads")
    pages = iter(paginator.paginate(Bucket=bucket, Prefix=prefix))
    while True:
        page = call(bucket, f"list uploads under s3://{bucket}/{prefix}", lambda: next(pages, None))
        if page is None:
            return
        for upload in page.get("Uploads", []):
            yield upload["Key"], upload["UploadId"]


def abort_upload(client: S3Client, bucket: str, key: str, upload_id: str) -> None:
    call(
        bucket,
        f"abort the upload of {key}",
        lambda: client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id),
    )


def delete_keys(client: S3Client, bucket: str, keys: Iterable[str]) -> int:
    """Delete keys in batches of 1,000; raise if S3 reports any key it could not delete."""
    batch: list[str] = []
    deleted = 0

    def flush() -> None:
        nonlocal deleted
        objects: list[Any] = [{"Key": k} for k in batch]
        response = call(
            bucket,
            f"delete {len(batch)} objects",
            lambda: client.delete_objects(
                Bucket=bucket, Delete={"Objects": objects, "Quiet": True}
            ),
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise TransferError(
                f"S3 could not delete {len(errors)} of {len(batch)} objects in s3://{bucket}, "
                f"e.g. {first.get('Key')}: {first.get('Code')} {first.get('Message')}",
                code=str(first.get("Code")),
            )
        deleted += len(batch)
        batch.clear()

    for key in keys:
        batch.append(key)
        if len(batch) == DELETE_BATCH:
            flush()
    if batch:
        flush()
    return deleted


@dataclass(frozen=True)
class StoredObject:
    """An object read back whole (manifests, leases): its bytes and what S3 said of it."""

    key: str
    body: bytes
    etag: str
    last_modified: dt.datetime
    # The server's clock when it answered (its Date header): lease expiry is judged
    # on the server's clock, so that the clocks of the machines running exports
    # never matter.
    server_time: dt.datetime
    metadata: dict[str, str] = field(default_factory=dict)


def _server_time(response: Mapping[str, Any]) -> dt.datetime:
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(str(date))
    except (TypeError, ValueError):
        return dt.datetime.now(dt.timezone.utc)


def get_object(client: S3Client, bucket: str, key: str) -> StoredObject | None:
    """The object at ``key``, read whole, or None when there is none.

    botocore retries requests, not the reading of a streamed body: a connection
    reset halfway through the body is retried here, a few times.
    """
    what = f"read {key}"
    for attempt in range(1, BODY_READ_ATTEMPTS + 1):
        try:
            response = call(bucket, what, lambda: client.get_object(Bucket=bucket, Key=key))
        except ObjectNotFound:
            return None
        try:
            body = response["Body"].read()
        except BOTOCORE_ERRORS as e:
            if attempt == BODY_READ_ATTEMPTS:
                raise describe_error(e, bucket, what) from e
            continue
        return _stored(key, cast(Mapping[str, Any], response), body)
    raise AssertionError("unreachable")


def head_object(client: S3Client, bucket: str, key: str) -> StoredObject | None:
    """What S3 says of the object at ``key`` (no body), or None when there is none."""
    try:
        response = call(
            bucket, f"look at {key}", lambda: client.head_object(Bucket=bucket, Key=key)
        )
    except ObjectNotFound:
        return None
    return _stored(key, cast(Mapping[str, Any], response))


def _stored(key: str, response: Mapping[str, Any], body: bytes = b"") -> StoredObject:
    """A GET's or HEAD's answer: version, times and metadata (and the body of a GET)."""
    return StoredObject(
        key=key,
        body=body,
        etag=response["ETag"],
        last_modified=response["LastModified"],
        server_time=_server_time(response),
        metadata=dict(response.get("Metadata", {})),
    )


def conditions(*, if_match: str | None = None, if_absent: bool = False) -> dict[str, Any]:
    """Request arguments for S3's conditional writes and deletes."""
    condition: dict[str, Any] = {}
    if if_match is not None:
        condition["IfMatch"] = if_match
    if if_absent:
        condition["IfNoneMatch"] = "*"
    return condition


def put_object(
    client: S3Client,
    bucket: str,
    key: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    if_match: str | None = None,
    if_absent: bool = False,
    what: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Write a small object whole; return its ETag.

    ``extra`` are further request arguments (encryption, storage class, metadata, tags).

    ``if_match`` writes only over the object with that ETag, ``if_absent`` only
    where there is none; otherwise ``PreconditionFailed`` is raised and nothing
    changes. (Servers answer an ``If-Match`` on a missing object with 412 or 404;
    both mean the same here.)
    """
    condition = conditions(if_match=if_match, if_absent=if_absent)
    try:
        response = call(
            bucket,
            what or f"write {key}",
            lambda: client.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                **condition,
                **(extra or {}),
            ),
        )
    except ObjectNotFound as e:
        if if_match is None:
            raise
        raise PreconditionFailed(str(e), code=e.code) from e
    return str(response["ETag"])


def delete_object(client: S3Client, bucket: str, key: str, *, if_match: str | None = None) -> None:
    """Delete one object; with ``if_match``, only if it is still that version."""
    condition = conditions(if_match=if_match)
    try:
        call(
            bucket,
            f"delete {key}",
            lambda: client.delete_object(Bucket=bucket, Key=key, **condition),
        )
    except ObjectNotFound:
        if if_match is not None:
            raise PreconditionFailed(f"{key} is gone", code="NoSuchKey") from None
