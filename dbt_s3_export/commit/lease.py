"""The lease on a folder: one run of its export writes there at a time.

Taken when free or when its holder stopped renewing it ``lease_ttl_seconds`` ago
(on the server's clock), renewed in the background, released with the garbage the
next run must delete. Its record is checked when read, since that garbage is
deleted on its word.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from ..errors import ExportFailed, PreconditionFailed, S3ExportError
from ..options.config import ExportConfig
from ..progress import utc_now
from ..s3.objects import StoredObject
from .manifest import CorruptManifest
from .ownership import (
    LEASE_NAME,
    RunContext,
    conflict,
    describe_owner,
    is_data_key,
    is_generation,
    shown,
)
from .store import Store, decode

LEASE_VERSION = 1
# How often a run waiting for a live lease looks again.
LEASE_POLL_SECONDS = 2.0
# A dead run's generation stays on record after its sweep, and later runs delete its
# files that landed since (uploads it had in flight when it was taken over), until a
# run this long after the sweep has looked; at most the newest SWEPT_MAX of them.
SWEPT_KEEP = dt.timedelta(days=1)
SWEPT_MAX = 100


class LeaseTimeout(ExportFailed):
    """Another run of the same export held the lease for longer than the run would wait."""


class LeaseLost(ExportFailed):
    """The run could not keep its lease, so it must not commit."""


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
        # Dead runs' generations already swept once: {"generation", "at"} (this run's clock).
        self.swept: list[dict[str, str]] = []
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
                "swept": self.swept,
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
                owned_by = describe_owner(record)
                raise conflict(self.cfg, self.export_id, self.cfg.prefix, owned_by, "same")
            holder = record.get("holder") if record.get("state") == "held" else None
            expired = holder is not None and self._expired(current, record)
            if holder is None or expired:
                # Inherited first: the claim checks' listing looks for the swept runs' files.
                self._inherit(record, expired_holder=holder if expired else None)
                claim_checks(False)
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
        record = decode(stored.body)
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
        self.swept = [
            {"generation": e["generation"], "at": e["at"]} for e in garbage.get("swept") or []
        ]
        if expired_holder is not None:
            self.garbage_generations.append(expired_holder["generation"])

    def swept_generations(self) -> set[str]:
        """The dead runs' generations swept before, whose late files are still deleted."""
        return {entry["generation"] for entry in self.swept}

    def mark_swept(self, generations: set[str]) -> None:
        """After a sweep of ``generations`` and of those on record: record the first,
        and forget those swept ``SWEPT_KEEP`` ago or more (this sweep was their last)."""
        now = utc_now()
        kept = [e for e in self.swept if e["generation"] not in generations]
        self.swept = _recent(kept + [{"generation": g, "at": now} for g in sorted(generations)])

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

    def still_held(self) -> None:
        """Raise ``LeaseLost`` once the lease is known gone (asked before each upload).

        A renewal overdue by a whole ttl (the process stalled, say) is tried here first,
        so that a run another has taken over learns it before it sends, not after; a
        renewal that is merely late still succeeds, and the run goes on.
        """
        if self.lost is None and time.monotonic() - self._renewed > self.ttl:
            try:
                self._renew()
            except PreconditionFailed:
                self.lost = "another run took the lease over"
            except S3ExportError:
                pass  # unknown: the renewals go on deciding
        if self.lost is not None:
            raise LeaseLost(
                f"this run lost its lease on {self.cfg.destination} ({self.lost}) while "
                "writing its files, so it stopped writing and did not commit. Run it again"
            )

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
        isinstance(holder, dict) and is_generation(holder.get("generation"))
    ):
        return f"it is held by {holder!r}, not by a run with a generation"
    garbage = record.get("garbage", {})
    if not isinstance(garbage, dict):
        return f"garbage is {garbage!r}, not an object"
    generations, keys = garbage.get("generations", []), garbage.get("keys", [])
    if not isinstance(generations, list) or not all(is_generation(g) for g in generations):
        return f"garbage.generations is {shown(generations)}, not a list of run generations"
    if not isinstance(keys, list) or not all(
        isinstance(k, str) and is_data_key(prefix, k) for k in keys
    ):
        return f"garbage.keys is {shown(keys)}, not a list of this export's data files"
    swept = garbage.get("swept", [])
    if not isinstance(swept, list) or not all(
        isinstance(e, dict) and is_generation(e.get("generation")) and _instant(e.get("at"))
        for e in swept
    ):
        return f"garbage.swept is {shown(swept)}, not a list of run generations with their times"
    return None


def _instant(value: Any) -> dt.datetime | None:
    """``value`` read as a time with its zone (as ``utc_now`` writes it), or None."""
    try:
        instant = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return instant if instant is not None and instant.tzinfo is not None else None


def _recent(swept: list[dict[str, str]]) -> list[dict[str, str]]:
    """The entries swept within ``SWEPT_KEEP``, the newest ``SWEPT_MAX`` of them."""
    oldest = dt.datetime.now(dt.timezone.utc) - SWEPT_KEEP
    recent = [e for e in swept if (_instant(e["at"]) or oldest) > oldest]
    recent.sort(key=lambda e: _instant(e["at"]) or oldest)
    return recent[-SWEPT_MAX:]


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
