"""Small JSON objects written conditionally: with S3's conditions, or emulated.

A lease and a manifest are only ever created where nothing is (``If-None-Match: *``)
or replaced over the version read just before (``If-Match``). Where a server ignores
those headers, each write is emulated: read and compare, write, wait, read back.
Every body carries a token of its own write, which is how a write whose answer
was lost is told from another run's.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from ..errors import PreconditionFailed, S3ExportError, TransferError
from ..options.config import ExportConfig
from ..s3.objects import (
    StoredObject,
    delete_keys,
    delete_object,
    get_object,
    list_modified,
    put_object,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

# Without conditional writes: how long a write is left to settle before it is read back.
SETTLE_SECONDS = 1.0


def object_args(cfg: ExportConfig, owner: dict[str, str]) -> dict[str, Any]:
    """S3 request arguments every object of the export gets (data, manifest, lease)."""
    args: dict[str, Any] = {"Metadata": {**dict(cfg.metadata), **owner}}
    if cfg.sse:
        args["ServerSideEncryption"] = cfg.sse
    if cfg.sse_kms_key_id:
        args["SSEKMSKeyId"] = cfg.sse_kms_key_id
    if cfg.storage_class:
        args["StorageClass"] = cfg.storage_class
    if cfg.tags:
        args["Tagging"] = urlencode(cfg.tags)
    return args


class Store:
    """Small JSON objects written conditionally: with S3's conditions, or emulated.

    ``create`` writes only where there is nothing, ``replace`` only over the version
    with the given ETag, ``remove`` deletes only that version; each raises
    ``PreconditionFailed`` when the condition does not hold. ``token`` is a value in
    the body unique to this write: the emulation reads it back to know it won.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        conditional: bool,
        object_args: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.conditional = conditional
        # Encryption, storage class, metadata and tags, as the export's data files get them.
        self.object_args = object_args or {}

    def read(self, key: str) -> StoredObject | None:
        return get_object(self.client, self.bucket, key)

    def create(self, key: str, body: dict[str, Any]) -> str:
        data = encode(body)
        if self.conditional:
            try:
                return put_object(
                    self.client, self.bucket, key, data, if_absent=True, extra=self.object_args
                )
            except PreconditionFailed:
                return self._own_write(key, body)
        if self.read(key) is not None:
            raise PreconditionFailed(f"{key} exists", code="PreconditionFailed")
        return self._write_and_check(key, data, body)

    def replace(self, key: str, body: dict[str, Any], etag: str) -> str:
        data = encode(body)
        if self.conditional:
            try:
                return put_object(
                    self.client, self.bucket, key, data, if_match=etag, extra=self.object_args
                )
            except PreconditionFailed:
                return self._own_write(key, body)
        current = self.read(key)
        if current is None or current.etag != etag:
            raise PreconditionFailed(f"{key} changed", code="PreconditionFailed")
        return self._write_and_check(key, data, body)

    def _own_write(self, key: str, body: dict[str, Any]) -> str:
        """After a refused conditional write: the ETag if the object is this very write.

        botocore sends a write again when its answer is lost; the second try then
        finds the first one's object and is refused. The token in the body tells this
        write from any other, so the refusal is settled by reading the object back.
        """
        back = self.read(key)
        if back is None or decode(back.body).get("token") != body["token"]:
            raise PreconditionFailed(f"{key} changed", code="PreconditionFailed")
        return back.etag

    def remove(self, key: str, etag: str) -> None:
        if self.conditional:
            try:
                delete_object(self.client, self.bucket, key, if_match=etag)
            except PreconditionFailed:
                # Gone already: the first try of a delete whose answer was lost.
                if self.read(key) is not None:
                    raise
            return
        current = self.read(key)
        if current is None or current.etag != etag:
            raise PreconditionFailed(f"{key} changed", code="PreconditionFailed")
        delete_object(self.client, self.bucket, key)

    def _write_and_check(self, key: str, data: bytes, body: dict[str, Any]) -> str:
        put_object(self.client, self.bucket, key, data, extra=self.object_args)
        time.sleep(SETTLE_SECONDS)
        back = self.read(key)
        if back is None or decode(back.body).get("token") != body["token"]:
            raise PreconditionFailed(f"another run wrote {key} at once", code="Overwritten")
        return back.etag


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, indent=2).encode()


def decode(data: bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        value = json.loads(data)
        if isinstance(value, dict):
            return value
    return {}


# The probe's name in the folder: "_" so readers skip it, never a data file's name.
PROBE_PREFIX = "_probe-"
_PROBED: dict[tuple[str, str], bool] = {}
_PROBE_LOCK = threading.Lock()
# A probe lives for two PUTs and a DELETE of one run; one older than this was left by
# a run that died probing (each request gives up within its total deadline, 90 s).
STALE_PROBE_SECONDS = 600


def supports_conditional_writes(client: S3Client, bucket: str, folder: str) -> bool:
    """Whether the server honours ``If-None-Match`` (once per endpoint and bucket).

    Writes a probe object twice, the second time only-if-absent: a server that
    honours the condition refuses the second write.
    """
    cache_key = (str(client.meta.endpoint_url), bucket)
    with _PROBE_LOCK:
        if cache_key in _PROBED:
            return _PROBED[cache_key]
    key = f"{folder}{PROBE_PREFIX}{secrets.token_hex(8)}.json"
    what = f"write to {folder or 'the bucket root'}"
    put_object(client, bucket, key, b"{}", what=what)
    try:
        put_object(client, bucket, key, b"{}", if_absent=True, what=what)
        honoured = False
    except PreconditionFailed:
        honoured = True
    except TransferError as e:
        if e.code not in ("NotImplemented", "InvalidArgument", "400", "501"):
            raise
        honoured = False  # the server does not know the header
    finally:
        with contextlib.suppress(S3ExportError):
            _drop_stale_probes(client, bucket, folder, key)
        with contextlib.suppress(S3ExportError):
            delete_object(client, bucket, key)
    with _PROBE_LOCK:
        _PROBED[cache_key] = honoured
    return honoured


def _drop_stale_probes(client: S3Client, bucket: str, folder: str, own: str) -> None:
    """Delete the probes runs that died probing left in ``folder``, judged by server clock."""
    ages = list_modified(client, bucket, folder + PROBE_PREFIX)
    now = ages.get(own)
    if now is None:
        return
    stale = [
        k
        for k, modified in ages.items()
        if k != own
        and modified is not None
        and (now - modified).total_seconds() > STALE_PROBE_SECONDS
    ]
    if stale:
        delete_keys(client, bucket, stale)


def store_for(client: S3Client, cfg: ExportConfig, folder: str) -> Store:
    if cfg.conditional_writes == "auto":
        conditional = supports_conditional_writes(client, cfg.bucket, folder)
    else:
        conditional = cfg.conditional_writes == "true"
    return Store(client, cfg.bucket, conditional, object_args(cfg, {}))
