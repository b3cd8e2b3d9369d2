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
   They may be read and encoded during steps 1 to 3, but nothing is sent before
   step 3 has ended, and nothing at all if it failed.
5. **Commit**: write the new manifest, listing this run's files and the earlier ones
   its mode keeps, and the keys it supersedes, conditional on the ETag read in step 3.
   With ``symlink_manifests``, then bring Hive's symlink manifests in line with it
   (``symlinks``, each written over the one listed only), still before any data file
   is deleted.
6. **Clean up**, only after the commit: delete what the superseded manifest listed and
   the new one does not, and the garbage the lease carries (files of runs that died
   holding it, keys an earlier clean-up could not delete), but never a key the new
   manifest lists. The generations swept stay in the lease until a run a day later
   has looked: a run taken over may have had uploads on the way, and the runs after
   delete what of them landed since, from the listing of step 1.
   Release the lease, carrying over what could not be deleted.

A run that fails before step 5 deletes its own files and releases the lease; what it
cannot delete goes into the lease as garbage for the run after it. A run that is
killed leaves its lease to expire; the next run takes the lease over and adds the dead
run's generation to the garbage (and, if the dead run had committed, the keys its
manifest superseded). Nothing is deleted for matching a naming pattern, and
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

Modules: ``ownership`` (export ids, claims of folders and tables), ``store``
(conditional writes, real or emulated), ``lease``, ``manifest`` (and what each mode
keeps), ``symlinks`` (Hive's symlink layout for readers that list folders), ``folder``
and ``single`` (the two commits), ``base`` (what they share). May import ``errors``,
``progress``, ``options`` and ``s3.transfer``; never botocore, so every S3 answer
reaches it as one of our errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..options.config import ExportConfig
from .folder import FolderCommit, LayoutChanged, ManifestInDoubt
from .lease import LeaseLost, LeaseTimeout
from .manifest import CorruptManifest, Manifest, plan_commit
from .ownership import (
    LEASE_NAME,
    MANIFEST_NAME,
    OwnershipConflict,
    RunContext,
    claim_around,
    claim_at,
    claim_inside,
    is_data_key,
    new_generation,
    owner_metadata,
)
from .single import ObjectCommit
from .store import object_args, store_for, supports_conditional_writes
from .symlinks import SYMLINK_FOLDER, is_symlink_key, symlink_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

Commit = FolderCommit | ObjectCommit


def open_commit(
    client: S3Client, cfg: ExportConfig, ctx: RunContext, partition_types: Sequence[str] = ()
) -> Commit:
    """The commit of one run: a folder's, or a single object's."""
    if cfg.is_prefix:
        return FolderCommit(client, cfg, ctx, partition_types)
    return ObjectCommit(client, cfg, ctx)


__all__ = [
    "LEASE_NAME",
    "MANIFEST_NAME",
    "SYMLINK_FOLDER",
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
    "claim_around",
    "claim_at",
    "claim_inside",
    "is_data_key",
    "is_symlink_key",
    "new_generation",
    "object_args",
    "open_commit",
    "owner_metadata",
    "plan_commit",
    "store_for",
    "supports_conditional_writes",
    "symlink_key",
]
