"""Uploads: the bytes of a run's files streamed into S3 objects.

``Uploader`` streams bytes into objects: objects up to SINGLE_PUT_PARTS parts go
up in one PUT, larger ones as multipart uploads whose parts are sent by a small
thread pool while the caller keeps encoding. The bytes in flight at once are
bounded, so memory does not grow with the table. Retries of transient faults are
botocore's (standard mode); what still fails is mapped to a ``TransferError``
that says what went wrong and keeps the botocore error as ``__cause__``.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import TYPE_CHECKING, Any, cast

from ..errors import PreconditionFailed, TransferError
from ..pools import shared_pool
from .objects import call, conditions, head_object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

# An object goes up in one PUT when it ends within this many parts' worth of bytes.
# One request instead of a multipart upload's three or more: S3 needs parts only
# to send a big object in parallel, and stores that copy every part again on
# completion (MinIO on a single disk, moto) take about twice the CPU for them.
SINGLE_PUT_PARTS = 3

# The upload threads are the process's, started as needed and kept: a small export
# sent its few PUTs on threads it started and stopped. Each uploader still has at
# most its max_concurrency uploads running (a slot taken before each is queued).
# Uploads wait on no other task of their pool; completions wait on parts only.
UPLOAD_THREADS = 64
COMPLETE_THREADS = 16


class Uploader:
    """Runs the uploads of one export on a bounded pool; collects what it wrote."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        part_size: int,
        max_concurrency: int,
        object_args: Mapping[str, Any] | None = None,
        ready: Future[Any] | None = None,
        may_write: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        # Asked before each request that sends a file's bytes: raises once the run may no
        # longer write (a folder's lease found lost), and nothing more is sent.
        self._may_write = may_write
        # What must have happened before anything is sent (a folder's commit begun:
        # its lease held); the files are encoded meanwhile. If it failed, nothing is
        # sent, and each upload fails with its error.
        self._ready = ready
        self.bucket = bucket
        # Attributes every object gets: encryption, storage class, metadata, tags.
        self.object_args: dict[str, Any] = dict(object_args or {})
        self.part_size = part_size
        self.single_put_max = SINGLE_PUT_PARTS * part_size
        self._pool = shared_pool("s3-export", UPLOAD_THREADS)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        # Completes multipart uploads once their parts are in, so that the caller
        # goes on encoding the next file instead of waiting at each file's end.
        # A pool of its own: it waits on parts that run on the other.
        self._completer = shared_pool("s3-export-complete", COMPLETE_THREADS)
        # Bounds the bytes held for upload, from the moment a file's bytes are
        # written until they are sent: a part per running upload, and at least one
        # part more than a single PUT holds. Writing waits while the budget is
        # spent, so memory does not depend on the file sizes.
        self.budget = ByteBudget(max(max_concurrency, SINGLE_PUT_PARTS + 1) * part_size)
        self._pending: list[Future[None]] = []
        self._completions: list[Future[None]] = []
        self._lock = threading.Lock()
        self.completed: list[str] = []
        self._failure: BaseException | None = None

    def wait_ready(self) -> None:
        """Wait until requests may be sent; raise what stopped them."""
        if self._ready is not None:
            self._ready.result()
        if self._may_write is not None:
            self._may_write()

    def submit(self, fn: Callable[[], None], held: int) -> Future[None]:
        """Queue work that sends ``held`` bytes of the budget, given back when it ends."""
        self.raise_if_failed()
        self._slots.acquire()
        try:
            return self._track(self._pool.submit(self._recorded(fn, held, slot=True)))
        except BaseException:
            self._slots.release()
            raise

    def complete_later(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` (which waits for parts already queued) after the caller moves on."""
        self.raise_if_failed()
        future = self._track(self._completer.submit(self._recorded(fn, 0)))
        with self._lock:
            self._completions.append(future)

    def _recorded(
        self, fn: Callable[[], None], taken: int, *, slot: bool = False
    ) -> Callable[[], None]:
        """``fn`` that keeps its first failure for the export to raise; gives back its bytes."""

        def run() -> None:
            try:
                fn()
            except BaseException as e:
                with self._lock:
                    self._failure = self._failure or e
                raise
            finally:
                self.budget.give(taken)
                if slot:
                    self._slots.release()

        return run

    def _track(self, future: Future[None]) -> Future[None]:
        with self._lock:
            self._pending = [f for f in self._pending if not f.done()] + [future]
        return future

    def raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    def wait(self) -> None:
        """Wait for every queued upload; raise the first failure."""
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.exception()
        self.raise_if_failed()

    def close(self) -> None:
        """As shutting down pools of its own did: queued work cancelled, running work ended."""
        # Completions first, while their parts still run: a running completion ends
        # (with its parts), a queued one is cancelled; then the uploads left.
        with self._lock:
            completions, self._completions = self._completions, []
        for future in completions:
            future.cancel()
        wait_futures(completions)
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.cancel()
        wait_futures(pending)

    def open(self, key: str, content_type: str, *, if_absent: bool = False) -> ObjectSink:
        """A sink for one object; ``if_absent`` publishes it only if nothing is at the key."""
        return ObjectSink(self, key, content_type, if_absent=if_absent)

    def put_bytes(
        self, key: str, data: bytes | bytearray, content_type: str, *, if_absent: bool = False
    ) -> None:
        condition = conditions(if_absent=if_absent)
        self.wait_ready()
        try:
            call(
                self.bucket,
                f"write {key}",
                lambda: self.client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=cast(bytes, data),  # botocore sends any bytes-like body
                    ContentType=content_type,
                    **self.object_args,
                    **condition,
                ),
            )
        except PreconditionFailed:
            if not self.landed(key):
                raise

    def landed(self, key: str) -> bool:
        """Whether the object at ``key`` is this uploader's own write.

        An only-if-absent write whose answer was lost is sent again by botocore, and
        the second try finds the first one's object there. The metadata every object
        of the uploader carries names its run, so reading it back tells the run's
        own object from another writer's.
        """
        mine = self.object_args.get("Metadata") or {}
        if not mine:
            return False
        there = head_object(self.client, self.bucket, key)
        return there is not None and all(there.metadata.get(k) == v for k, v in mine.items())

    def _record(self, key: str) -> None:
        with self._lock:
            self.completed.append(key)


class ObjectSink(io.RawIOBase):
    """A writable file whose bytes become one S3 object when ``commit`` is called.

    Until then nothing is visible at the key: a failed export calls ``abort``
    and whatever was at the key before stays as it was.
    """

    def __init__(
        self, uploader: Uploader, key: str, content_type: str, *, if_absent: bool = False
    ) -> None:
        super().__init__()
        self._up = uploader
        self.key = key
        self._content_type = content_type
        self._if_absent = if_absent
        self._buffer = bytearray()
        self._held = 0  # bytes of the uploader's budget the buffer holds
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._part_futures: list[Future[None]] = []
        self.size = 0
        self.committed = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        n = view.nbytes
        self._held += self._up.budget.take(n, held=self._held)
        self._buffer += view
        self.size += n
        if self._upload_id is None:
            if len(self._buffer) > self._up.single_put_max:  # too big for one PUT
                self._send_part()
        elif len(self._buffer) >= self._up.part_size:
            self._send_part()
        return n

    def _start_multipart(self) -> str:
        bucket, key = self._up.bucket, self.key
        self._up.wait_ready()
        response = call(
            bucket,
            f"start an upload of {key}",
            lambda: self._up.client.create_multipart_upload(
                Bucket=bucket, Key=key, ContentType=self._content_type, **self._up.object_args
            ),
        )
        return response["UploadId"]

    def _send_part(self) -> None:
        """Send the whole buffer as the next part: no copy, and its memory goes with it.

        The first part is what outgrew a single PUT (up to SINGLE_PUT_PARTS parts'
        worth), the next ones part_size each; S3 takes parts of any size from 5 MiB.
        """
        if self._upload_id is None:
            self._upload_id = self._start_multipart()
        number = len(self._parts) + 1
        body, self._buffer = self._buffer, bytearray()
        held, self._held = self._held, 0
        entry: dict[str, Any] = {"PartNumber": number}
        self._parts.append(entry)
        bucket, key, upload_id = self._up.bucket, self.key, self._upload_id

        def send() -> None:
            self._up.wait_ready()
            response = call(
                bucket,
                f"upload part {number} of {key}",
                lambda: self._up.client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=cast(bytes, body),  # botocore sends any bytes-like body
                ),
            )
            entry["ETag"] = response["ETag"]

        self._part_futures.append(self._up.submit(send, held))

    def close(self) -> None:
        # Closing the file (as Arrow streams do when they finish) does not publish it.
        super().close()

    def commit(self, *, wait: bool = False) -> None:
        """Publish the object, in the background unless ``wait``: ``Uploader.wait`` tells."""
        if self._upload_id is None:
            body, self._buffer = self._buffer, bytearray()
            held, self._held = self._held, 0

            def put() -> None:
                self._up.put_bytes(self.key, body, self._content_type, if_absent=self._if_absent)
                self._up._record(self.key)

            if wait:
                try:
                    put()
                finally:
                    self._up.budget.give(held)
            else:
                self._up.submit(put, held)
            self.committed = True
            return
        if self._buffer:
            self._send_part()
        parts = list(self._part_futures)
        bucket, key, upload_id = self._up.bucket, self.key, self._upload_id
        condition = conditions(if_absent=self._if_absent)

        def complete() -> None:
            for future in parts:
                future.exception()
            try:
                self._up.raise_if_failed()
                try:
                    call(
                        bucket,
                        f"complete the upload of {key}",
                        lambda: self._up.client.complete_multipart_upload(
                            Bucket=bucket,
                            Key=key,
                            UploadId=upload_id,
                            MultipartUpload={"Parts": cast(Any, self._parts)},
                            **condition,
                        ),
                    )
                except TransferError as e:
                    # A completion whose answer was lost is sent again and finds the upload
                    # gone (or, only-if-absent, the object there): it may be this one.
                    lost = isinstance(e, PreconditionFailed) or e.code == "NoSuchUpload"
                    if not (lost and self._up.landed(key)):
                        raise
            except BaseException:
                with contextlib.suppress(Exception):  # best effort; the first failure is reported
                    self._up.client.abort_multipart_upload(
                        Bucket=bucket, Key=key, UploadId=upload_id
                    )
                raise
            self._up._record(key)

        if wait:
            complete()
        else:
            self._up.complete_later(complete)
        self.committed = True

    def abort(self) -> None:
        """Drop a multipart upload in progress; best effort, never raises."""
        self._buffer = bytearray()
        self._up.budget.give(self._held)
        self._held = 0
        if self._upload_id is None or self.committed:
            return
        for future in self._part_futures:
            future.exception()
        with contextlib.suppress(Exception):  # best effort; the first failure is reported
            self._up.client.abort_multipart_upload(
                Bucket=self._up.bucket, Key=self.key, UploadId=self._upload_id
            )


class ByteBudget:
    """A count of bytes that may be held at once; a request over the total takes it all."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._cond = threading.Condition()

    def take(self, nbytes: int, *, held: int = 0) -> int:
        """Wait until ``nbytes`` are free, hold them, return what is held.

        A caller that already ``held`` bytes waits for no more than the rest of the
        total: it never waits on itself (its buffer is sent once it is full).
        """
        want = min(nbytes, max(self.total - held, 0))
        with self._cond:
            self._cond.wait_for(lambda: self._free >= want)
            self._free -= want
        return want

    def give(self, nbytes: int) -> None:
        with self._cond:
            self._free += nbytes
            self._cond.notify_all()
