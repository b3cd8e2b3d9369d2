"""The commit protocol's invariant, checked from outside, as a reader would see the bucket.

At every instant the newest manifest under a prefix lists only objects that exist.
``InvariantWatcher`` checks that over and over while runs overlap; ``check_settled``
checks, once every run has ended, that nothing but the manifest's files and the
export's two control objects is left.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from dbt_s3_export.commit import SYMLINK_FOLDER, is_symlink_key
from dbt_s3_export.commit.symlinks import symlink_bodies

from .support import list_keys, read_object


def lease(s3: Any, bucket: str, prefix: str) -> dict[str, Any]:
    return dict(json.loads(read_object(s3, bucket, prefix + "_lease.json")))


def wait_for_lease_holder(s3: Any, bucket: str, prefix: str, timeout: float = 120) -> str:
    """Wait until some run holds the lease on ``prefix``; return its generation."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            record = lease(s3, bucket, prefix)
        except ClientError:
            record = {}
        if record.get("state") == "held":
            return str(record["holder"]["generation"])
        time.sleep(0.05)
    raise AssertionError(f"no run took the lease on {prefix} within {timeout} s")


def check_invariant(s3: Any, bucket: str, prefix: str) -> dict[str, Any] | None:
    """The newest manifest lists only objects that exist (None: no manifest yet).

    The manifest is read, then the prefix listed, then the manifest's ETag read
    again: only when it is still the newest is the listing a fair test of it.
    """
    for _ in range(50):
        try:
            got = s3.get_object(Bucket=bucket, Key=prefix + "_manifest.json")
        except ClientError:
            return None
        manifest = json.loads(got["Body"].read())
        existing = set(list_keys(s3, bucket, prefix))
        if s3.head_object(Bucket=bucket, Key=prefix + "_manifest.json")["ETag"] != got["ETag"]:
            continue  # a newer manifest landed while we listed: look again
        listed = {f["key"] for f in manifest["files"]}
        missing = listed - existing
        assert not missing, f"the manifest lists missing objects: {sorted(missing)[:5]}"
        assert manifest["rows"] == sum(f["rows"] or 0 for f in manifest["files"])
        return dict(manifest)
    raise AssertionError("the manifest kept changing; could not check it")


def check_settled(
    s3: Any, bucket: str, prefix: str, *, others: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Every run has ended: only the manifest's files, the control objects and ``others``."""
    manifest = check_invariant(s3, bucket, prefix)
    assert manifest is not None
    listed = {f["key"] for f in manifest["files"]}
    control = {prefix + "_manifest.json", prefix + "_lease.json"}
    # Hive's symlink manifests, when the export writes them: exactly the manifest's files.
    symlinks = {
        k: read_object(s3, bucket, k)
        for k in list_keys(s3, bucket, prefix + SYMLINK_FOLDER)
        if is_symlink_key(prefix, k)
    }
    wanted = symlink_bodies(bucket, prefix, manifest["files"])
    assert symlinks == (wanted if manifest.get("symlink_manifests") else {})
    keys = set(list_keys(s3, bucket, prefix))
    # A run killed while probing for conditional writes leaves its probe: a later probe
    # deletes it once it is old (commit/store.py); never data, and readers skip "_" files.
    probes = {k for k in keys if k.rsplit("/", 1)[-1].startswith("_probe-")}
    left = keys - listed - control - set(symlinks) - probes - set(others)
    assert not left, f"left behind: {sorted(left)[:10]}"
    assert s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []) == []
    record = lease(s3, bucket, prefix)
    assert record["state"] == "free", record
    return manifest


@dataclass
class InvariantWatcher:
    """Checks the invariant in a loop on a thread of its own while runs overlap."""

    s3: Any
    bucket: str
    prefix: str
    checks: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> InvariantWatcher:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                check_invariant(self.s3, self.bucket, self.prefix)
                self.checks += 1
            except AssertionError as e:
                self.failures.append(str(e))
            except ClientError:  # a read that failed is not a violation
                time.sleep(0.05)
            self._stop.wait(0.02)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        assert not self.failures, self.failures[:3]
        assert self.checks > 0
