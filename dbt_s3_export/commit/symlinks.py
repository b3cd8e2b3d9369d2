"""Hive's symlink layout beside a folder export's manifest, for readers that list folders.

Athena, Trino/Presto, Hive and Redshift Spectrum do not read ``_manifest.json``, but
a table whose input format is ``SymlinkTextInputFormat`` reads, for each partition,
the files a small text object names, one URI a line:

    P_symlink_format_manifest/manifest                 (an export without partitions)
    P_symlink_format_manifest/<col>=<value>/.../manifest

With ``symlink_manifests: true`` a run brings these in line with its manifest right
after the commit (step 5), while it still holds the lease and before the clean-up
(step 6) deletes anything. So a reader that follows them sees, in each partition,
either the files the previous manifest lists (all still there) or the new ones, and
a run that fails or dies before its commit leaves them as they were. Each is
written only over the one the run listed (``If-Match``, or ``If-None-Match`` for a
new one) and only while the run still holds the lease, so a run taken over while
writing them cannot put its list back over its successor's. They are
written one object per partition (16 at once), so for the moment between the first
and the last write, a query over several partitions may take some from each
generation; every partition is whole. Only partitions whose list changed are written (the listing's
ETags are the MD5 of a body written whole, so an unchanged one is not sent again):
a replace run writes one object per partition, an append run one per partition it
added to. Partitions the new manifest no longer lists lose their symlink manifest
right after the others are written (one request per 1,000), before their files go.

Nothing here is a data file (``is_data_key`` refuses the folder: its name starts with
``_`` and is no ``col=value``), so neither a manifest nor a lease can name one for
deletion, and the sweeps of dead runs never touch them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..errors import PreconditionFailed
from ..s3.objects import delete_keys, get_object, list_etags, put_object
from .lease import LeaseLost

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

SYMLINK_FOLDER = "_symlink_format_manifest/"
# How many symlink manifests are written at once.
PARALLEL = 16
SYMLINK_NAME = "manifest"


def symlink_key(prefix: str, partition: str) -> str:
    """Where the symlink manifest of ``partition`` (``''`` or ``a=1/b=2/``) is kept."""
    return f"{prefix}{SYMLINK_FOLDER}{partition}{SYMLINK_NAME}"


def is_symlink_key(prefix: str, key: str) -> bool:
    """Whether ``key`` has the shape of a symlink manifest of the export at ``prefix``."""
    root = prefix + SYMLINK_FOLDER
    if not key.startswith(root):
        return False
    *folders, name = key[len(root) :].split("/")
    return name == SYMLINK_NAME and all("=" in folder for folder in folders)


def symlink_bodies(
    bucket: str, prefix: str, files: Iterable[Mapping[str, Any]]
) -> dict[str, bytes]:
    """The symlink manifest of each partition the listed ``files`` fall in: key -> body."""
    by_partition: dict[str, list[str]] = {}
    for entry in files:
        key = str(entry["key"])
        rel = key[len(prefix) :]
        partition = entry.get("partition")
        if not isinstance(partition, str):
            partition = rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""
        by_partition.setdefault(partition, []).append(f"s3://{bucket}/{key}")
    return {
        symlink_key(prefix, partition): "".join(f"{uri}\n" for uri in sorted(uris)).encode()
        for partition, uris in by_partition.items()
    }


class SymlinkManifests:
    """One run's symlink manifests: written after its commit, the stale ones deleted later."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str,
        object_args: Mapping[str, Any],
        *,
        conditional: bool = False,
        may_write: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.object_args = dict(object_args)
        # Each written only over what the listing saw (the server's conditions, when
        # it has them), and only while ``may_write`` finds the lease still this run's.
        self.conditional = conditional
        self.may_write = may_write
        self.stale: list[str] = []
        self.written = 0

    def write(self, files: Iterable[Mapping[str, Any]]) -> None:
        """Make every partition's symlink manifest list exactly its ``files``."""
        wanted = symlink_bodies(self.bucket, self.prefix, files)
        have = list_etags(self.client, self.bucket, self.prefix + SYMLINK_FOLDER)
        changed = [
            (key, body)
            for key, body in sorted(wanted.items())
            if have.get(key, "").strip('"') != hashlib.md5(body, usedforsecurity=False).hexdigest()
        ]

        def put(item: tuple[str, bytes]) -> None:
            key, body = item
            self._still_ours(f"s3://{self.bucket}/{key} was written")
            try:
                put_object(
                    self.client,
                    self.bucket,
                    key,
                    body,
                    content_type="text/plain",
                    if_match=have.get(key) if self.conditional else None,
                    if_absent=self.conditional and key not in have,
                    what=f"write the symlink manifest {key}",
                    extra=self.object_args,
                )
            except PreconditionFailed as e:
                # A retry after a lost answer finds this run's own write there.
                landed = get_object(self.client, self.bucket, key)
                if landed is not None and landed.body == body:
                    return
                raise LeaseLost(
                    f"another run wrote s3://{self.bucket}/{key} after this run listed it; "
                    "that one is left in place"
                ) from e

        # Several at once: the moment in which partitions of two generations mix stays short.
        with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL, len(changed)))) as pool:
            for _ in pool.map(put, changed):
                self.written += 1
        self.stale = sorted(k for k in have if k not in wanted and is_symlink_key(self.prefix, k))

    def drop_all(self) -> None:
        """The export stopped writing them: every one there is stale."""
        have = list_etags(self.client, self.bucket, self.prefix + SYMLINK_FOLDER)
        self.stale = sorted(k for k in have if is_symlink_key(self.prefix, k))

    def _still_ours(self, before: str) -> None:
        """Raise ``LeaseLost`` if ``may_write`` finds the lease gone, saying before what."""
        if self.may_write is None:
            return
        try:
            self.may_write()
        except LeaseLost as e:
            raise LeaseLost(f"it was gone before {before}") from e

    def remove_stale(self) -> int:
        """Delete the symlink manifests of partitions the export no longer has."""
        if self.stale:  # a successor may have written some of them again
            self._still_ours("the stale ones were deleted")
        removed = delete_keys(self.client, self.bucket, self.stale)
        self.stale = []
        return removed
