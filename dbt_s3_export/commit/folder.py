"""Steps 1-3, 5 and 6 of the protocol for a folder export (see the package docstring)."""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ExportFailed, PreconditionFailed, S3ExportError, brief
from ..options.config import ExportConfig
from ..s3.objects import (
    StoredObject,
    abort_upload,
    delete_keys,
    list_keys,
    list_uploads,
    together,
)
from .base import BaseCommit
from .lease import Lease, LeaseLost
from .manifest import Manifest, Plan, plan_commit
from .ownership import (
    LEASE_NAME,
    MANIFEST_NAME,
    RunContext,
    ancestors,
    claim_inside,
    claims_at,
    conflict,
    describe_owner,
    is_data_key,
    is_generation,
    nearest_claim,
    settled,
)
from .store import PROBE_PREFIX, Store, decode, store_for
from .symlinks import SymlinkManifests

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


class LayoutChanged(ExportFailed):
    """append / overwrite_partitions would mix files of two layouts or formats."""


REWRITE = (
    "Rewrite the whole export once: run the model with --full-refresh, or with mode: "
    "replace for one run"
)


class ManifestInDoubt(ExportFailed):
    """Writing the manifest failed and reading it back failed too: it may or may not be ours."""


class FolderCommit(BaseCommit):
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
        self.listed_files: list[dict[str, Any]] = []
        self.manifest_key = cfg.prefix + MANIFEST_NAME
        # Hive's symlink layout (symlinks.py): brought in line after the commit, if asked for.
        self.symlinks: SymlinkManifests | None = None
        self.linked = True
        self._stored: tuple[StoredObject | None] | None = None  # the manifest, once read
        # Files of runs swept before that the claim check's listing found (landed late).
        self.late_files: list[str] = []

    def begin(self) -> str | None:
        """Claim, lease, read the manifest; a reason to skip the export, or None."""
        if_exists = self.cfg.mode in ("error_if_exists", "skip_if_exists")
        # Something there already: skip or fail without so much as taking the lease.
        existing = self._anything_there() if if_exists else None
        if existing is not None:
            return self._exists(existing)
        store = self.store = store_for(self.client, self.cfg, self.cfg.prefix)
        lease = self.lease = Lease(store, self.cfg, self.ctx, self.generation)
        lease.acquire(self._claim_checks)
        lease.start_renewing()
        # Read with the claim checks when this run created the lease; else read now.
        stored = self._stored[0] if self._stored else store.read(self.manifest_key)
        self.previous = Manifest.parse(stored, self.cfg) if stored is not None else None
        if self.previous is not None:
            self._check_owner(self.previous)
            if self.previous.body["generation"] in lease.garbage_generations:
                # Its run died (or lost its lease) after its commit, maybe before cleaning up.
                lease.garbage_keys += self.previous.superseded
        # Looked at again under the lease: another run may have written meanwhile.
        existing = self._anything_there() if if_exists else None
        if existing is not None:
            return self._exists(existing)
        self.mode = self._effective_mode()
        return None

    def may_write(self) -> None:
        """Raise once this run knows another took its lease: it sends no more files.

        A run whose lease expired and was taken over cannot commit; files it sent after
        the new holder cleaned up its generation would be named by no record, and stay.
        """
        if self.lease is not None:
            self.lease.still_held()

    def _claim_checks(self, created: bool) -> None:
        """No other claim around or inside the folder; sent together, judged in order.

        After creating the lease, the manifest is read with them (under the lease
        already), and begin() uses that read instead of reading it again.
        """
        store = self.store
        assert store is not None
        folders = ancestors(self.cfg.prefix)
        prefix, swept = self.cfg.prefix, self.lease.swept_generations() if self.lease else set()
        late: list[str] = []

        def note_late(key: str) -> None:
            if is_data_key(prefix, key) and _generation_in(key, swept):
                late.append(key)

        inside = functools.partial(claim_inside, store, prefix, note_late if swept else None)
        manifest = functools.partial(store.read, self.manifest_key)
        results = together(
            *claims_at(store, folders), inside, manifest if created else lambda: None
        )
        self.late_files = late
        nearest = nearest_claim(folders, results[:-2])
        if nearest is not None:
            raise conflict(self.cfg, self.export_id, *nearest, "around")
        claim: tuple[str, str] | None = settled(results[-2])
        if claim is not None:
            relation = "same" if claim[0] == self.cfg.prefix else "inside"
            raise conflict(self.cfg, self.export_id, *claim, relation)
        if created:  # a manifest written before folders had leases names its owner
            stored: StoredObject | None = settled(results[-1])
            self._stored = (stored,)
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
            raise conflict(
                self.cfg, self.export_id, self.cfg.prefix, describe_owner(manifest.body), "same"
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
                f"{REWRITE}"
            )
        if types_were is not None and types_were != self.partition_types:
            changed = [
                f"partition column {col} was {old} and is now {new}"
                for col, old, new in zip(now[0], types_were, self.partition_types, strict=False)
                if old != new
            ]
            raise LayoutChanged(
                f"mode {mode}: {'; '.join(changed)}, so the same value would get another "
                f"folder name and readers would see its rows twice. {REWRITE}, or cast the "
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
        # For the run after, should this one not live to clean up after its commit.
        body["superseded"] = sorted(plan.dropped)
        if self.cfg.symlink_manifests:
            body["symlink_manifests"] = True
        self.listed = {str(f["key"]) for f in listed}
        self.listed_files = listed
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
        if current is not None and decode(current.body).get("generation") == self.generation:
            return  # the write landed; only its answer was lost
        if isinstance(error, PreconditionFailed):
            raise LeaseLost(
                f"another run committed to {self.cfg.destination} while this one was writing "
                "(this run's lease must have expired), so this run did not commit. Run it again"
            ) from error
        raise error

    def link(self) -> None:
        """Step 5, continued: the symlink manifests follow the manifest just committed.

        Written while the lease is still this run's and before any data file is
        deleted; those of partitions that are gone are deleted right after (all of
        them, when they were asked for before and no longer are).
        If writing them fails, ``finish`` deletes nothing (they may still name the
        superseded files) and carries what it would have deleted to the next run.
        """
        assert self.store is not None and self.lease is not None
        wanted = self.cfg.symlink_manifests
        had = self.previous is not None and self.previous.body.get("symlink_manifests") is True
        if not (wanted or had):
            return
        self.symlinks = SymlinkManifests(
            self.client,
            self.cfg.bucket,
            self.cfg.prefix,
            self.store.object_args,
            conditional=self.store.conditional,
            may_write=self.may_write,
        )
        self.linked = False
        self.lease.check()
        if wanted:
            self.symlinks.write(self.listed_files)
        else:
            self.symlinks.drop_all()
        self.symlinks.remove_stale()  # partitions that are gone: right after, not at clean-up
        self.linked = True

    def finish(self) -> int:
        """Step 6, after the commit: delete the dead files, release the lease. Returns the count."""
        assert self.lease is not None and self.plan is not None
        live = self.listed
        # Both come from a manifest or a lease that was checked when read: data files only.
        dead = set(self.plan.dropped) | set(self.lease.garbage_keys)
        generations = set(self.lease.garbage_generations)
        # Dead runs swept before: files they had in flight may have landed since.
        swept = self.lease.swept_generations() - generations
        removed = 0
        if not self.linked:  # old symlink manifests may still name the dead files
            self.lease.garbage_keys = sorted(dead - live)
            self.lease.release()
            return 0
        try:
            if generations:
                dead |= self._sweep(generations | swept)
            elif swept:  # what lands after the claim check's listing, the next run finds
                dead |= self._sweep(swept, self.late_files)
            removed = delete_keys(self.client, self.cfg.bucket, sorted(dead - live))
            self.lease.mark_swept(generations)
            self.lease.garbage_generations, self.lease.garbage_keys = [], []
        except S3ExportError:
            # Carried to the next run; the export itself is committed and whole.
            self.lease.garbage_keys = sorted(dead - live)
            self.lease.garbage_generations = sorted(generations)
            raise
        finally:
            self.lease.release()
        return removed

    def _sweep(self, generations: set[str], keys: Iterable[str] | None = None) -> set[str]:
        """The folder's files of these generations, among ``keys`` or else a listing;
        their unfinished uploads are aborted."""
        prefix = self.cfg.prefix
        generations = {g for g in generations if is_generation(g)}
        if keys is None:
            keys = list_keys(self.client, self.cfg.bucket, prefix)
        found = {k for k in keys if is_data_key(prefix, k) and _generation_in(k, generations)}
        for key, upload_id in list(list_uploads(self.client, self.cfg.bucket, prefix)):
            if is_data_key(prefix, key) and _generation_in(key, generations):
                abort_upload(self.client, self.cfg.bucket, key, upload_id)
        return found

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
    return key.rsplit("/", 1)[-1].startswith(PROBE_PREFIX)


def _generation_in(key: str, generations: set[str]) -> bool:
    """Whether ``key``'s file name carries one of ``generations`` (24 hex digits each).

    Each window of 24 characters in a run of hex digits is looked up, so a long list
    of generations costs no more per key than a short one.
    """
    name = key.rsplit("/", 1)[-1]
    for run in _HEX_RUN.findall(name):
        if any(run[i : i + 24] in generations for i in range(len(run) - 23)):
            return True
    return False


_HEX_RUN = re.compile(r"[0-9a-f]{24,}")
