"""The commit protocol: which export may write where, and when a run's files become the export.

A folder export (prefix ``P``) keeps two small objects beside its files:

- ``P_lease.json`` claims ``P`` for one export (its ``export_id``) and says which run,
  if any, is writing now. It is created once and from then on only replaced by
  conditional writes, so a claim is never lost.
- ``P_manifest.json`` lists the files that make up the export. Replacing it is the
  commit point: a reader that follows it sees one whole export, the old or the new.

Every write of either object is conditional on the version read just before it
(S3's ``If-None-Match: *`` and ``If-Match: <etag>``), so of two runs racing for the
same step exactly one wins. A run goes through these steps:

1. **Claim.** If ``P`` has no lease yet, create one, then make sure no other export
   claims a prefix around ``P`` (the leases and manifests of its parent folders, up to
   the bucket root) or inside it (a listing of ``P``). Because each export writes its
   claim before it looks for others, of two exports racing for nested prefixes at
   least one sees the other. A conflict fails the run before it writes anything and
   names both exports; ``take_over_from`` hands a prefix from one export to another.
2. **Lease.** Take the lease when it is free, or when the run holding it stopped
   renewing it ``lease_ttl_seconds`` ago (judged on the server's clock). A live lease
   is waited for, up to ``lease_wait_seconds``. While the run goes on, a background
   thread renews the lease; a run that cannot renew it in time stops before it commits.
3. **Read the manifest**, and with it the ETag the commit is conditional on. A
   manifest this version cannot read fails the run, naming the object.
4. **Write** this run's files, under names that carry its generation (export.py).
5. **Commit**: write the new manifest, listing this run's files and the earlier ones
   its mode keeps, conditional on the ETag read in step 3.
6. **Clean up**, only after the commit: delete what the superseded manifest listed and
   the new one does not, and the garbage the lease carries (files of runs that died
   holding it, keys an earlier clean-up could not delete), but never a key the new
   manifest lists. Release the lease, carrying over what could not be deleted.

A run that fails before step 5 deletes its own files and releases the lease; what it
cannot delete goes into the lease as garbage for the run after it. A run that is
killed leaves its lease to expire; the next run takes the lease over and adds the dead
run's generation to the garbage. Nothing is deleted for matching a naming pattern, and
garbage is deleted only by a run that has just committed, so a run that lost its lease
while paused can no longer commit (its conditional write fails) once its files go.

Servers without conditional writes (``conditional_writes: false``, or ``auto`` when a
probe finds that the server ignores them) get the same steps, each conditional write
replaced by: read, compare, write, wait ``SETTLE_SECONDS``, read back and check that
this run's token is there. That is safe as long as no run stalls for longer than the
pause between its read and its write.

A single-object export (``key`` names one file) has no lease: S3 replaces an object
atomically, and the object is written only where nothing was (``If-None-Match``) when
nothing was there at the start. Its owner is recorded in the object's metadata, and
it may not sit inside a folder another export claims.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import random
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlencode

from .config import ExportConfig
from .errors import ExportFailed, PreconditionFailed, S3ExportError, TransferError, brief
from .progress import utc_now
from .transfer import (
    StoredObject,
    abort_upload,
    delete_keys,
    delete_object,
    get_object,
    head_object,
    list_folder,
    list_keys,
    list_uploads,
    put_object,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

MANIFEST_NAME = "_manifest.json"
LEASE_NAME = "_lease.json"
CONTROL_NAMES = (MANIFEST_NAME, LEASE_NAME)
MANIFEST_VERSION = 2
LEASE_VERSION = 1
# Metadata keys naming the export that wrote a single object, and the run that wrote it.
OWNER_METADATA = "dbt-s3-export-id"
RUN_METADATA = "dbt-s3-export-run"
# A run's generation, exactly as new_generation makes it: the one form a lease's
# garbage may name, and part of the name of every data file a folder export writes.
GENERATION = re.compile(r"[0-9a-f]{24}")
# The folders a table format keeps in a table's location (Delta's log, Iceberg's metadata).
DELTA_LOG = "_delta_log/"
ICEBERG_METADATA = "metadata/"
# Without conditional writes: how long a write is left to settle before it is read back.
SETTLE_SECONDS = 1.0
# How often a run waiting for a live lease looks again.
LEASE_POLL_SECONDS = 2.0


class OwnershipConflict(ExportFailed):
    """Another export owns the prefix, or one around or inside it."""


class LeaseTimeout(ExportFailed):
    """Another run of the same export held the lease for longer than the run would wait."""


class LeaseLost(ExportFailed):
    """The run could not keep its lease, so it must not commit."""


class CorruptManifest(ExportFailed):
    """The manifest (or lease) is not one this version can read."""


class LayoutChanged(ExportFailed):
    """append / overwrite_partitions would mix files of two layouts or formats."""


_REWRITE = (
    "Rewrite the whole export once: run the model with --full-refresh, or with mode: "
    "replace for one run"
)


@dataclass(frozen=True)
class RunContext:
    """Who is exporting: what the plugin (or any other caller) knows of the run."""

    model: str = "export"
    unique_id: str | None = None
    invocation_id: str | None = None
    # The position of this export in the model's list of s3_export entries.
    entry: int = 0
    # The model was rebuilt from scratch (dbt's --full-refresh of an incremental model).
    full_refresh: bool = False
    # Where the run's progress and notices go (dbt's log, from the plugin); by default
    # the ``dbt_s3_export`` logger.
    log: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def info(self, message: str) -> None:
        (self.log or logging.getLogger("dbt_s3_export").info)(message)

    def export_id(self, cfg: ExportConfig) -> str:
        """The export's identity: ``export_id`` if set, else the model's id and the entry."""
        if cfg.export_id:
            return cfg.export_id
        return f"{self.unique_id or 'adhoc.' + self.model}#{self.entry}"


def owner_metadata(export_id: str, generation: str) -> dict[str, str]:
    """The object metadata that names the export and the run that wrote an object."""
    return {OWNER_METADATA: quote(export_id, safe=""), RUN_METADATA: generation}


def is_data_key(prefix: str, key: str) -> bool:
    """Whether ``key`` has the shape of a data file a folder export at ``prefix`` writes.

    ``<prefix>[<col>=<value>/...]<name>``, where the name is no control file, does not
    start with ``.`` or ``_`` (filename_template refuses those) and carries a
    generation. Nothing else is ever deleted on the word of a lease or a manifest.
    """
    if not key.startswith(prefix):
        return False
    *folders, name = key[len(prefix) :].split("/")
    return (
        bool(name)
        and not name.startswith((".", "_"))
        and GENERATION.search(name) is not None
        and all("=" in folder for folder in folders)
    )


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


def new_generation() -> str:
    """A run-unique id that sorts by time: 12 hex digits of milliseconds, 12 random."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def _ancestors(prefix: str) -> list[str]:
    """The folders around ``prefix`` (``a/b/`` -> ``a/``, then the bucket root ``''``)."""
    parts = prefix.rstrip("/").split("/") if prefix else []
    return ["/".join(parts[:i]) + "/" if i else "" for i in range(len(parts) - 1, -1, -1)]


def _describe_owner(record: dict[str, Any]) -> str:
    """``export '<export_id>' (model <name>)`` for a lease or manifest, in words safe to show."""
    owner = record.get("export_id") or record.get("unique_id")
    model = record.get("model")
    named = f"export '{owner}'" if owner else "an earlier export"
    return named + (f" (model {model})" if model else "")


# -- the manifest ---------------------------------------------------------------------------


@dataclass
class Manifest:
    """A folder export's manifest, parsed and checked."""

    body: dict[str, Any]
    etag: str

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.body["files"])

    @property
    def export_id(self) -> str | None:
        value = self.body.get("export_id")
        return str(value) if value else None

    @classmethod
    def parse(cls, stored: StoredObject, cfg: ExportConfig) -> Manifest:
        """Check the manifest's shape; a foreign or damaged one raises ``CorruptManifest``."""
        location = f"s3://{cfg.bucket}/{stored.key}"

        def bad(problem: str) -> CorruptManifest:
            return CorruptManifest(
                f"{location} is not a manifest this version of dbt-s3-export can read: {problem}. "
                "Nothing was changed. If it was edited by hand, restore it (from the bucket's "
                "versions or a backup). To start the folder afresh instead, delete it and "
                f"{cfg.prefix}{LEASE_NAME}: the next run then writes a new export and leaves "
                "every file that is there now in place"
            )

        try:
            body = json.loads(stored.body)
        except ValueError as e:
            raise bad(f"it is not JSON ({e})") from None
        if not isinstance(body, dict):
            raise bad(f"it holds a JSON {type(body).__name__}, not an object")
        version = body.get("format_version")
        if version not in (1, MANIFEST_VERSION):
            raise bad(f"format_version is {version!r}, expected 1 or {MANIFEST_VERSION}")
        files = body.get("files")
        if not isinstance(files, list):
            raise bad(f"'files' is a {type(files).__name__}, not a list")
        for i, entry in enumerate(files):
            key = entry.get("key") if isinstance(entry, dict) else None
            if not isinstance(key, str) or not is_data_key(cfg.prefix, key):
                shown = repr(entry) if len(repr(entry)) <= 200 else repr(entry)[:200] + "..."
                raise bad(
                    f"files[{i}] is {shown}, not a data file of this export (a key under "
                    f"{cfg.prefix} named by filename_template, no control file)"
                )
        for name in ("generation", "file_format"):
            if not isinstance(body.get(name), str):
                raise bad(f"'{name}' is {body.get(name)!r}, not a string")
        cols = body.get("partition_cols", [])
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise bad(f"'partition_cols' is {cols!r}, not a list of column names")
        types = body.get("partition_types")
        if types is not None and (
            not isinstance(types, list) or not all(isinstance(t, str) for t in types)
        ):
            raise bad(f"'partition_types' is {types!r}, not a list of type names")
        return cls(body, stored.etag)


def _partition_of(prefix: str, entry: dict[str, Any]) -> str:
    partition = entry.get("partition")
    if isinstance(partition, str):
        return partition
    rel = str(entry["key"])[len(prefix) :]
    return rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""


@dataclass(frozen=True)
class Plan:
    """What a commit does to the earlier files: which it keeps listing, which it drops."""

    kept: list[dict[str, Any]]
    dropped: list[str]


def plan_commit(mode: str, prefix: str, previous: Manifest | None, touched: Iterable[str]) -> Plan:
    """Each mode's effect on the earlier export, in one place.

    ``append`` keeps every file the previous manifest lists; ``overwrite_partitions``
    keeps those outside the partitions this run wrote; every other mode (``replace``,
    and ``error_if_exists``/``skip_if_exists`` once they go ahead) keeps none.
    """
    earlier = previous.files if previous is not None else []
    if mode == "append":
        return Plan(kept=earlier, dropped=[])
    if mode == "overwrite_partitions":
        written = set(touched)
        kept = [f for f in earlier if _partition_of(prefix, f) not in written]
        kept_keys = {f["key"] for f in kept}
        return Plan(kept=kept, dropped=[f["key"] for f in earlier if f["key"] not in kept_keys])
    return Plan(kept=[], dropped=[f["key"] for f in earlier])


# -- conditional writes, real or emulated ---------------------------------------------------


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
        data = _encode(body)
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
        data = _encode(body)
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
        if back is None or _decode(back.body).get("token") != body["token"]:
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
        if back is None or _decode(back.body).get("token") != body["token"]:
            raise PreconditionFailed(f"another run wrote {key} at once", code="Overwritten")
        return back.etag


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, indent=2).encode()


def _decode(data: bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        value = json.loads(data)
        if isinstance(value, dict):
            return value
    return {}


_PROBED: dict[tuple[str, str], bool] = {}
_PROBE_LOCK = threading.Lock()


def supports_conditional_writes(client: S3Client, bucket: str, folder: str) -> bool:
    """Whether the server honours ``If-None-Match`` (once per endpoint and bucket).

    Writes a probe object twice, the second time only-if-absent: a server that
    honours the condition refuses the second write.
    """
    cache_key = (str(client.meta.endpoint_url), bucket)
    with _PROBE_LOCK:
        if cache_key in _PROBED:
            return _PROBED[cache_key]
    key = f"{folder}_probe-{secrets.token_hex(8)}.json"
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
            delete_object(client, bucket, key)
    with _PROBE_LOCK:
        _PROBED[cache_key] = honoured
    return honoured


def _store(client: S3Client, cfg: ExportConfig, folder: str) -> Store:
    if cfg.conditional_writes == "auto":
        conditional = supports_conditional_writes(client, cfg.bucket, folder)
    else:
        conditional = cfg.conditional_writes == "true"
    return Store(client, cfg.bucket, conditional, object_args(cfg, {}))


# -- ownership ------------------------------------------------------------------------------


def claim_around(store: Store, key: str) -> tuple[str, str] | None:
    """(folder, owner) of the nearest export or table that claims a folder around ``key``."""
    for ancestor in _ancestors(key):
        owner = _claim_at(store, ancestor)
        if owner is not None:
            return ancestor, owner
    return None


def _claim_at(store: Store, folder: str) -> str | None:
    """Who claims ``folder`` itself: a folder export (its lease or manifest) or a table."""
    keys, subfolders = list_folder(store.client, store.bucket, folder + "_")
    for name in (LEASE_NAME, MANIFEST_NAME):
        if folder + name in keys:
            record = store.read(folder + name)
            if record is not None:
                return _describe_owner(_decode(record.body))
    if folder + DELTA_LOG in subfolders:
        return "a Delta table"
    keys, _ = list_folder(store.client, store.bucket, folder + ICEBERG_METADATA, max_keys=100)
    if any(_table_at(key) == (folder, "an Iceberg table") for key in keys):
        return "an Iceberg table"
    return None


def _table_at(key: str) -> tuple[str, str] | None:
    """(location, kind) of the Iceberg or Delta table whose log or metadata ``key`` is in."""
    parts = key.split("/")
    if DELTA_LOG.rstrip("/") in parts[:-1]:
        at = parts.index(DELTA_LOG.rstrip("/"))
        return "".join(p + "/" for p in parts[:at]), "a Delta table"
    if parts[-1].endswith(".metadata.json") and parts[-2:-1] == [ICEBERG_METADATA.rstrip("/")]:
        return "".join(p + "/" for p in parts[:-2]), "an Iceberg table"
    return None


def claim_inside(store: Store, prefix: str) -> tuple[str, str] | None:
    """(folder, owner) of an export or table that claims a folder inside ``prefix``, if any.

    The folder is ``prefix`` itself for a table there (a folder export's own lease and
    manifest are not claims against it).
    """
    for key in list_keys(store.client, store.bucket, prefix):
        table = _table_at(key)
        if table is not None and table[0].startswith(prefix):
            return table
        folder, _, name = key.rpartition("/")
        folder = folder + "/" if folder else ""
        if name in CONTROL_NAMES and folder != prefix:
            record = store.read(key)
            return folder, _describe_owner(_decode(record.body) if record else {})
    return None


def _conflict(cfg: ExportConfig, me: str, folder: str, owner: str, relation: str) -> Exception:
    here = f"s3://{cfg.bucket}/{folder}"
    if relation == "same":
        return OwnershipConflict(
            f"{here} belongs to {owner}, and this export is '{me}'. Two exports "
            "cannot share a destination: give this one another key, or, to hand it over "
            f"to this export, set take_over_from to the id of the export that owns it"
        )
    return OwnershipConflict(
        f"{here} belongs to {owner}, and it is {relation} this export's folder "
        f"{cfg.destination} (export '{me}'). An export owns everything under its folder, "
        "so the folders of two exports (or of an export and a table) may not be nested: "
        "give one of them a key outside the other's folder"
    )


# -- the lease ------------------------------------------------------------------------------


class Lease:
    """The lease on one folder: taken, renewed in the background, released with garbage."""

    def __init__(self, store: Store, cfg: ExportConfig, ctx: RunContext, generation: str):
        self.store = store
        self.cfg = cfg
        self.ctx = ctx
        self.key = cfg.prefix + LEASE_NAME
        self.export_id = ctx.export_id(cfg)
        self.generation = generation
        self.ttl = cfg.lease_ttl_seconds
        self.etag: str | None = None
        self.garbage_generations: list[str] = []
        self.garbage_keys: list[str] = []
        self.lost: str | None = None
        self._renewed = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self, state: Literal["held", "free"]) -> dict[str, Any]:
        holder = None
        if state == "held":
            holder = {
                "generation": self.generation,
                "model": self.ctx.model,
                "invocation_id": self.ctx.invocation_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "since": utc_now(),
            }
        return {
            "format_version": LEASE_VERSION,
            "export_id": self.export_id,
            "model": self.ctx.model,
            "destination": self.cfg.destination,
            "state": state,
            "ttl_seconds": self.ttl,
            "holder": holder,
            "garbage": {
                "generations": sorted(set(self.garbage_generations)),
                "keys": sorted(set(self.garbage_keys)),
            },
            "updated_at": utc_now(),
            "token": secrets.token_hex(8),
        }

    def acquire(self, claim_checks: Callable[[bool], None]) -> None:
        """Take the lease, creating the claim first if the folder has none.

        ``claim_checks`` (no other export claims a folder around or inside this one)
        run on every path that takes the lease: after creating it, so that of two
        exports racing for nested folders at least one sees the other, and before
        taking over an existing one, whose claim is already there for others to see.
        They are told whether this run created the lease.
        """
        deadline = time.monotonic() + self.cfg.lease_wait_seconds
        announced = False
        while True:
            current = self.store.read(self.key)
            if current is None:
                try:
                    self.etag = self.store.create(self.key, self._record("held"))
                except PreconditionFailed:
                    continue  # another run created it first: look again
                self._renewed = time.monotonic()
                try:
                    claim_checks(True)
                except BaseException:
                    with contextlib.suppress(S3ExportError):
                        self.store.remove(self.key, self.etag)
                    raise
                return
            record = self._parse(current)
            owner = str(record.get("export_id") or "")
            if owner != self.export_id and owner != self.cfg.take_over_from:
                owned_by = _describe_owner(record)
                raise _conflict(self.cfg, self.export_id, self.cfg.prefix, owned_by, "same")
            holder = record.get("holder") if record.get("state") == "held" else None
            expired = holder is not None and self._expired(current, record)
            if holder is None or expired:
                claim_checks(False)
                self._inherit(record, expired_holder=holder if expired else None)
                try:
                    self.etag = self.store.replace(self.key, self._record("held"), current.etag)
                except PreconditionFailed:
                    continue  # another run took it first
                self._renewed = time.monotonic()
                if holder is not None:
                    self.ctx.info(
                        f"s3_export: took over the lease on {self.cfg.destination} from run "
                        f"{holder.get('generation')} ({_describe_holder(holder)}), which stopped "
                        "renewing it; its files are removed after this run commits"
                    )
                if owner != self.export_id:
                    self.ctx.info(
                        f"s3_export: {self.cfg.destination} passes from export '{owner}' to "
                        f"'{self.export_id}' (take_over_from)"
                    )
                return
            if time.monotonic() >= deadline:
                raise LeaseTimeout(
                    f"another run of this export ({_describe_holder(holder)}) is writing to "
                    f"{self.cfg.destination}; this run waited {self.cfg.lease_wait_seconds} s "
                    "for it to finish. Run again later, or raise lease_wait_seconds. If that "
                    f"run was killed, its lease expires {self.ttl} s after its last renewal"
                )
            if not announced:
                self.ctx.info(
                    f"s3_export: waiting for another run of this export to finish writing to "
                    f"{self.cfg.destination} ({_describe_holder(holder)})"
                )
                announced = True
            time.sleep(min(LEASE_POLL_SECONDS * random.uniform(0.5, 1.5), max(self.ttl / 3, 0.2)))

    def _parse(self, stored: StoredObject) -> dict[str, Any]:
        """The lease's record, checked: its garbage is deleted on its word, so nothing
        but this export's own data files may be named there."""
        record = _decode(stored.body)
        problem = lease_problem(record, self.cfg.prefix)
        if problem is not None:
            raise CorruptManifest(
                f"s3://{self.cfg.bucket}/{self.key} is not a lease this version of "
                f"dbt-s3-export can read: {problem}. Nothing was changed. If no export is "
                "running, delete the lease: the next run claims the folder again (files "
                "that dead runs left behind then stay until you delete them)"
            )
        return record

    def _expired(self, stored: StoredObject, record: dict[str, Any]) -> bool:
        ttl = record.get("ttl_seconds")
        ttl = ttl if isinstance(ttl, (int, float)) and ttl > 0 else self.ttl
        # LastModified and Date have whole seconds: one more second of patience.
        return stored.server_time > stored.last_modified + dt.timedelta(seconds=ttl + 1)

    def _inherit(self, record: dict[str, Any], expired_holder: dict[str, Any] | None) -> None:
        garbage = record.get("garbage") or {}
        self.garbage_generations = list(garbage.get("generations") or [])
        self.garbage_keys = list(garbage.get("keys") or [])
        if expired_holder is not None:
            self.garbage_generations.append(expired_holder["generation"])

    def start_renewing(self) -> None:
        self._thread = threading.Thread(
            target=self._renew_loop, name="s3-export-lease", daemon=True
        )
        self._thread.start()

    def _renew_loop(self) -> None:
        interval = max(self.ttl / 3, 0.2)
        while not self._stop.wait(interval):
            try:
                self._renew()
            except PreconditionFailed:
                self.lost = "another run took the lease over"
                return
            except S3ExportError:
                pass  # tried again at the next tick; too many misses make it lost
            if time.monotonic() - self._renewed > self.ttl:
                self.lost = f"the lease could not be renewed for {self.ttl} s"
                return

    def _renew(self) -> None:
        with self._lock:
            if self.etag is None or self._stop.is_set():
                return
            self.etag = self.store.replace(self.key, self._record("held"), self.etag)
            self._renewed = time.monotonic()

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease is still this run's (called before committing)."""
        if self.lost is None and time.monotonic() - self._renewed > self.ttl:
            self.lost = f"the lease was last renewed more than {self.ttl} s ago"
        if self.lost is not None:
            raise LeaseLost(
                f"this run lost its lease on {self.cfg.destination} ({self.lost}), so another "
                "run may be writing there now; it did not commit. Run it again"
            )

    def release(self) -> None:
        """Stop renewing and free the lease, carrying the garbage. Best effort, never raises."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self.etag is None or self.lost is not None:
                return
            with contextlib.suppress(S3ExportError):
                self.store.replace(self.key, self._record("free"), self.etag)
            self.etag = None


def lease_problem(record: dict[str, Any], prefix: str) -> str | None:
    """What is wrong with a lease record read from the bucket, or None."""
    if not record:
        return "it is not a JSON object"
    if record.get("format_version") != LEASE_VERSION:
        return f"format_version is {record.get('format_version')!r}, expected {LEASE_VERSION}"
    if not isinstance(record.get("export_id"), str) or not record["export_id"]:
        return f"export_id is {record.get('export_id')!r}, not an export's id"
    state, holder = record.get("state"), record.get("holder")
    if state not in ("held", "free"):
        return f"state is {state!r}, not 'held' or 'free'"
    if state == "held" and not (
        isinstance(holder, dict) and _is_generation(holder.get("generation"))
    ):
        return f"it is held by {holder!r}, not by a run with a generation"
    garbage = record.get("garbage", {})
    if not isinstance(garbage, dict):
        return f"garbage is {garbage!r}, not an object"
    generations, keys = garbage.get("generations", []), garbage.get("keys", [])
    if not isinstance(generations, list) or not all(_is_generation(g) for g in generations):
        return f"garbage.generations is {_shown(generations)}, not a list of run generations"
    if not isinstance(keys, list) or not all(
        isinstance(k, str) and is_data_key(prefix, k) for k in keys
    ):
        return f"garbage.keys is {_shown(keys)}, not a list of this export's data files"
    return None


def _is_generation(value: Any) -> bool:
    return isinstance(value, str) and GENERATION.fullmatch(value) is not None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _describe_holder(holder: dict[str, Any]) -> str:
    parts = [
        f"model {holder.get('model')}",
        f"host {holder.get('host')}",
        f"pid {holder.get('pid')}",
    ]
    if holder.get("invocation_id"):
        parts.append(f"dbt invocation {holder.get('invocation_id')}")
    parts.append(f"since {holder.get('since')}")
    return ", ".join(parts)


# -- the commits ----------------------------------------------------------------------------


class _Commit:
    """What the commits of folders and of single objects share."""

    def __init__(self, client: S3Client, cfg: ExportConfig, ctx: RunContext) -> None:
        self.client = client
        self.cfg = cfg
        self.ctx = ctx
        self.generation = new_generation()
        self.export_id = ctx.export_id(cfg)
        self.mode: str = cfg.mode
        # Whether the run writes its files only where nothing is (single objects).
        self.if_absent = False

    def _exists(self, key: str) -> str:
        """Something is at key: the skip reason (skip_if_exists), or the error_if_exists error."""
        if self.cfg.mode == "skip_if_exists":
            return f"s3://{self.cfg.bucket}/{key} already exists"
        raise ExportFailed(
            f"mode is error_if_exists and s3://{self.cfg.bucket}/{key} already exists. "
            f"Delete what is at {self.cfg.destination}, or use mode replace or skip_if_exists"
        )

    def _manifest(self, listed: Sequence[dict[str, Any]], fields: dict[str, Any]) -> dict[str, Any]:
        """A manifest listing ``listed``, with the ``fields`` the caller gives."""
        return {
            "format_version": MANIFEST_VERSION,
            "export_id": self.export_id,
            "generation": self.generation,
            **fields,
            "mode": self.mode,
            "rows": sum(f.get("rows") or 0 for f in listed),
            "bytes": sum(f.get("bytes") or 0 for f in listed),
            "files": list(listed),
        }


class FolderCommit(_Commit):
    """Steps 1-3, 5 and 6 of the protocol for one run of a folder export.

    ``partition_types`` are the types of the partition columns (Arrow's names): with
    the columns and the format they make the layout that append and
    overwrite_partitions must keep, since a value's folder name follows its type.
    """

    def __init__(
        self,
        client: S3Client,
        cfg: ExportConfig,
        ctx: RunContext,
        partition_types: Sequence[str] = (),
    ) -> None:
        super().__init__(client, cfg, ctx)
        self.partition_types = list(partition_types)
        self.store: Store | None = None
        self.lease: Lease | None = None
        self.previous: Manifest | None = None
        self.plan: Plan | None = None
        self.listed: set[str] = set()
        self.manifest_key = cfg.prefix + MANIFEST_NAME

    def begin(self) -> str | None:
        """Claim, lease, read the manifest; a reason to skip the export, or None."""
        if_exists = self.cfg.mode in ("error_if_exists", "skip_if_exists")
        # Something there already: skip or fail without so much as taking the lease.
        existing = self._anything_there() if if_exists else None
        if existing is not None:
            return self._exists(existing)
        store = self.store = _store(self.client, self.cfg, self.cfg.prefix)
        lease = self.lease = Lease(store, self.cfg, self.ctx, self.generation)
        lease.acquire(self._claim_checks)
        lease.start_renewing()
        stored = store.read(self.manifest_key)
        self.previous = Manifest.parse(stored, self.cfg) if stored is not None else None
        if self.previous is not None:
            self._check_owner(self.previous)
        # Looked at again under the lease: another run may have written meanwhile.
        existing = self._anything_there() if if_exists else None
        if existing is not None:
            return self._exists(existing)
        self.mode = self._effective_mode()
        return None

    def _claim_checks(self, created: bool) -> None:
        assert self.store is not None
        claim = claim_around(self.store, self.cfg.prefix)
        if claim is not None:
            raise _conflict(self.cfg, self.export_id, *claim, "around")
        claim = claim_inside(self.store, self.cfg.prefix)
        if claim is not None:
            relation = "same" if claim[0] == self.cfg.prefix else "inside"
            raise _conflict(self.cfg, self.export_id, *claim, relation)
        if created:  # a manifest written before folders had leases names its owner
            stored = self.store.read(self.manifest_key)
            if stored is not None:
                self._check_owner(Manifest.parse(stored, self.cfg))

    def _check_owner(self, manifest: Manifest) -> None:
        owner = manifest.export_id
        if owner is None:
            # A manifest from before export ids: it names the model's unique id, if any.
            theirs = manifest.body.get("unique_id")
            if theirs is None or theirs == self.ctx.unique_id or self.cfg.take_over_from:
                return
            owner = str(theirs)
        if owner not in (self.export_id, self.cfg.take_over_from):
            raise _conflict(
                self.cfg, self.export_id, self.cfg.prefix, _describe_owner(manifest.body), "same"
            )

    def _anything_there(self) -> str | None:
        """A key under the prefix other than the lease (which a failed run leaves too)."""
        for key in list_keys(self.client, self.cfg.bucket, self.cfg.prefix):
            if key != self.cfg.prefix + LEASE_NAME and not _is_probe(key):
                return key
        return None

    def _effective_mode(self) -> str:
        """The mode this run applies: a rebuilt model or a changed layout replaces all."""
        mode, previous = self.cfg.mode, self.previous
        if mode not in ("append", "overwrite_partitions") or previous is None:
            return mode
        if self.ctx.full_refresh:
            self.ctx.info(
                f"s3_export: {self.ctx.model} was rebuilt from scratch (full refresh): its "
                f"{mode} export replaces everything at {self.cfg.destination}"
            )
            return "replace"
        was = (list(previous.body.get("partition_cols") or []), previous.body["file_format"])
        now = (list(self.cfg.partition_cols), self.cfg.file_format)
        # Manifests written before partition types were recorded have none to compare.
        types_were = previous.body.get("partition_types")
        if was != now:
            raise LayoutChanged(
                f"mode {mode} would add files partitioned by {now[0]} as {now[1]} to an export "
                f"partitioned by {was[0]} as {was[1]}, and readers would see rows twice or fail. "
                f"{_REWRITE}"
            )
        if types_were is not None and types_were != self.partition_types:
            changed = [
                f"partition column {col} was {old} and is now {new}"
                for col, old, new in zip(now[0], types_were, self.partition_types, strict=False)
                if old != new
            ]
            raise LayoutChanged(
                f"mode {mode}: {'; '.join(changed)}, so the same value would get another "
                f"folder name and readers would see its rows twice. {_REWRITE}, or cast the "
                "column back in the model"
            )
        return mode

    def publish(self, files: Sequence[dict[str, Any]], manifest: dict[str, Any]) -> None:
        """Step 5: commit this run's ``files`` with the ``manifest`` fields the caller gives."""
        assert self.store is not None and self.lease is not None
        touched = {str(f["partition"]) for f in files}
        plan = self.plan = plan_commit(self.mode, self.cfg.prefix, self.previous, touched)
        listed = [*plan.kept, *files]
        body = {**self._manifest(listed, manifest), "token": secrets.token_hex(8)}
        self.listed = {str(f["key"]) for f in listed}
        self.lease.check()
        try:
            if self.previous is None:
                self.store.create(self.manifest_key, body)
            else:
                self.store.replace(self.manifest_key, body, self.previous.etag)
        except S3ExportError as e:
            self._settle_lost_answer(e)

    def _settle_lost_answer(self, error: S3ExportError) -> None:
        """The manifest write failed, or its answer was lost: read it back to know which."""
        assert self.store is not None
        try:
            current = self.store.read(self.manifest_key)
        except S3ExportError:
            raise ManifestInDoubt(
                f"writing the manifest s3://{self.cfg.bucket}/{self.manifest_key} failed "
                f"({brief(error)}) and it could not be read back, so it may list this run's "
                "files or the previous run's. Both sets of files are kept; the next successful "
                "run removes the stale one"
            ) from error
        if current is not None and _decode(current.body).get("generation") == self.generation:
            return  # the write landed; only its answer was lost
        if isinstance(error, PreconditionFailed):
            raise LeaseLost(
                f"another run committed to {self.cfg.destination} while this one was writing "
                "(this run's lease must have expired), so this run did not commit. Run it again"
            ) from error
        raise error

    def finish(self) -> int:
        """Step 6, after the commit: delete the dead files, release the lease. Returns the count."""
        assert self.lease is not None and self.plan is not None
        live = self.listed
        # Both come from a manifest or a lease that was checked when read: data files only.
        dead = set(self.plan.dropped) | set(self.lease.garbage_keys)
        generations = set(self.lease.garbage_generations)
        removed = 0
        try:
            if generations:
                dead |= self._sweep(generations)
            removed = delete_keys(self.client, self.cfg.bucket, sorted(dead - live))
            self.lease.garbage_generations, self.lease.garbage_keys = [], []
        except S3ExportError:
            # Carried to the next run; the export itself is committed and whole.
            self.lease.garbage_keys = sorted(dead - live)
            self.lease.garbage_generations = sorted(generations)
            raise
        finally:
            self.lease.release()
        return removed

    def _sweep(self, generations: set[str]) -> set[str]:
        """The folder's files of these generations; their unfinished uploads are aborted."""
        prefix = self.cfg.prefix
        keys = {
            key
            for key in list_keys(self.client, self.cfg.bucket, prefix)
            if is_data_key(prefix, key) and _generation_in(key, generations)
        }
        for key, upload_id in list(list_uploads(self.client, self.cfg.bucket, prefix)):
            if is_data_key(prefix, key) and _generation_in(key, generations):
                abort_upload(self.client, self.cfg.bucket, key, upload_id)
        return keys

    def abort(self, written: Iterable[str], *, in_doubt: bool) -> None:
        """A failure before the commit: delete this run's files, release the lease.

        What cannot be deleted (or, when the manifest is in doubt, everything this
        run wrote and everything it meant to drop) goes into the lease as garbage:
        the next run deletes it after its commit, except what its manifest lists.
        """
        if self.lease is None or self.lease.etag is None:
            return
        if in_doubt:
            self.lease.garbage_generations.append(self.generation)
            if self.plan is not None:
                self.lease.garbage_keys += self.plan.dropped
        else:
            try:
                own = set(written) | self._sweep({self.generation})
                delete_keys(self.client, self.cfg.bucket, sorted(own))
            except S3ExportError:
                self.lease.garbage_generations.append(self.generation)
        self.lease.release()

    def close(self) -> None:
        if self.lease is not None:
            self.lease.release()


def _is_probe(key: str) -> bool:
    return key.rsplit("/", 1)[-1].startswith("_probe-")


def _generation_in(key: str, generations: set[str]) -> bool:
    """Whether ``key``'s file name carries one of ``generations`` (24 hex digits each)."""
    name = key.rsplit("/", 1)[-1]
    return any(_is_generation(g) and g in name for g in generations)


class ManifestInDoubt(ExportFailed):
    """Writing the manifest failed and reading it back failed too: it may or may not be ours."""


class ObjectCommit(_Commit):
    """A single-object export: ownership and the only-if-absent condition."""

    def __init__(self, client: S3Client, cfg: ExportConfig, ctx: RunContext) -> None:
        super().__init__(client, cfg, ctx)
        self._manifest_body: dict[str, Any] | None = None

    @property
    def folder(self) -> str:
        return self.cfg.key.rsplit("/", 1)[0] + "/" if "/" in self.cfg.key else ""

    def begin(self) -> str | None:
        store = _store(self.client, self.cfg, self.folder)
        # The object's own folder counts too: a folder export owns everything under it.
        claim = claim_around(store, self.cfg.key)
        if claim is not None:
            raise _conflict(self.cfg, self.export_id, *claim, "around")
        existing = head_object(self.client, self.cfg.bucket, self.cfg.key)
        if existing is not None:
            owner = unquote(existing.metadata.get(OWNER_METADATA, ""))
            if owner and owner not in (self.export_id, self.cfg.take_over_from):
                raise _conflict(self.cfg, self.export_id, self.cfg.key, f"export '{owner}'", "same")
            if self.cfg.mode in ("error_if_exists", "skip_if_exists"):
                return self._exists(self.cfg.key)
        # Where nothing is, write only if nothing appears meanwhile (another export's file).
        self.if_absent = existing is None and store.conditional
        return None

    def publish(self, files: Sequence[dict[str, Any]], manifest: dict[str, Any]) -> None:
        """The object itself was the commit; its manifest, if asked for, follows it."""
        if self.cfg.manifest:
            self._manifest_body = self._manifest(files, manifest)

    def finish(self) -> int:
        """Abort uploads left at the key by killed runs; write the manifest if asked."""
        for key, upload_id in list(list_uploads(self.client, self.cfg.bucket, self.cfg.key)):
            if key == self.cfg.key:
                abort_upload(self.client, self.cfg.bucket, key, upload_id)
        if self._manifest_body is not None:
            put_object(
                self.client,
                self.cfg.bucket,
                self.cfg.key + ".manifest.json",
                _encode(self._manifest_body),
                extra=object_args(self.cfg, {}),
            )
        return 0

    def abort(self, written: Iterable[str], *, in_doubt: bool) -> None:
        """Nothing to undo: an object that did not land was never visible."""

    def close(self) -> None:
        pass


Commit = FolderCommit | ObjectCommit


def open_commit(
    client: S3Client, cfg: ExportConfig, ctx: RunContext, partition_types: Sequence[str] = ()
) -> Commit:
    if cfg.is_prefix:
        return FolderCommit(client, cfg, ctx, partition_types)
    return ObjectCommit(client, cfg, ctx)


__all__ = [
    "LEASE_NAME",
    "MANIFEST_NAME",
    "Commit",
    "CorruptManifest",
    "FolderCommit",
    "LayoutChanged",
    "LeaseLost",
    "LeaseTimeout",
    "Manifest",
    "ManifestInDoubt",
    "ObjectCommit",
    "OwnershipConflict",
    "RunContext",
    "new_generation",
    "open_commit",
    "owner_metadata",
    "plan_commit",
]
