"""Run one export: check, begin the commit, stream the files, commit, clean up.

A folder export's files are read and encoded while its commit begins; none is
sent before the commit has begun (the uploader waits for it).

The steps and the guarantees are those of the commit protocol (commit/): for a
folder, a run writes new files under a lease, commits them by writing the
manifest, and only then deletes what the commit made dead; a single object is
replaced by S3's atomic PUT or multipart completion. A run that fails before its
commit leaves the previous export as it was.
"""

from __future__ import annotations

import contextlib
import functools
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from .commit import (
    CorruptManifest,
    FolderCommit,
    LeaseLost,
    ManifestInDoubt,
    OwnershipConflict,
    RunContext,
    new_generation,
    object_args,
    open_commit,
    owner_metadata,
)
from .encoding.files import FileNaming, FileRoller, WrittenFile, slices
from .encoding.partitioning import check_partition_columns_exist, check_partition_types
from .errors import (
    BucketNotFound,
    ConfigError,
    ExportFailed,
    PartitionError,
    PreconditionFailed,
    S3ExportError,
    SourceError,
    TransferError,
    brief,
)
from .options.config import ExportConfig
from .pools import shared_pool
from .progress import Progress, utc_now
from .result import ExportResult
from .s3.credentials import CredentialSession
from .s3.transfer import Uploader
from .source.base import BatchSource
from .tables.glue import GlueRegistration, registration_failed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any


def check_columns(cfg: ExportConfig, schema: pa.Schema) -> None:
    """Partition columns must exist, have path-safe types, and leave a column for the files."""
    check_partition_columns_exist(schema, cfg.partition_cols)
    if cfg.partition_cols and len(cfg.partition_cols) == len(schema.names):
        raise SourceError(
            "every column of the model is a partition column, so the files would "
            "hold no data. Leave at least one column out of 'partition_cols'"
        )
    check_partition_types(schema, cfg.partition_cols)


# Modes whose commit may end the run before it writes (something is there already).
IF_EXISTS_MODES = ("error_if_exists", "skip_if_exists")
# Threads beginning folder commits while their files are encoded: one per export
# running at once (dbt's threads), kept by the process.
BEGIN_THREADS = 16

# How long jemalloc keeps freed Arrow memory before handing it back to the OS.
# 0 gives the least memory but costs measurably more CPU in madvise calls.
ARROW_DECAY_MS = 100


@functools.cache
def _return_freed_arrow_memory() -> None:
    """Make Arrow give freed memory back to the OS soon, for the rest of the process.

    An export allocates and frees a few hundred megabytes a second (batches, pieces,
    encoded text). pyarrow's default allocator (mimalloc) keeps much of what is freed
    for reuse, so the process grew by a hundred megabytes or more beyond what was in
    use; jemalloc with a short decay time hands it back. Buffers already allocated stay
    valid: each one is freed by the allocator that made it. Builds of pyarrow
    without jemalloc keep their default.
    """
    try:
        pool = pa.jemalloc_memory_pool()
        pa.jemalloc_set_decay_ms(ARROW_DECAY_MS)
    except NotImplementedError:
        return
    pa.set_memory_pool(pool)


def run_export(
    cfg: ExportConfig,
    source: BatchSource,
    client: S3Client,
    ctx: RunContext | None = None,
    credentials: CredentialSession | None = None,
) -> ExportResult:
    """Export ``source`` as ``cfg`` says; on failure leave the previous export as it was.

    ``credentials`` is the session behind ``client`` (``ClientCache.credentials``): table
    writers and Glue take their keys from it, so a role is assumed once. Without it they
    make a session of their own from ``cfg``.
    """
    ctx = ctx or RunContext()
    started = time.monotonic()
    _return_freed_arrow_memory()
    if cfg.is_table:  # Iceberg and Delta commit through their own logs
        from .tables import export_table

        result = export_table(
            cfg,
            source,
            client,
            ctx,
            ExportResult(ctx.model, cfg.destination, cfg.file_format, ""),
            credentials,
        )
        result.seconds = time.monotonic() - started
        return result
    # What is wrong with the model's columns is found before anything is claimed or written.
    schema = source.schema(cfg.partition_cols)
    check_columns(cfg, schema)
    glue = GlueRegistration(cfg, ctx, schema, credentials) if cfg.glue is not None else None
    if glue is not None:
        glue.prepare()
    partition_types = [str(schema.field(c).type) for c in cfg.partition_cols]
    commit = open_commit(client, cfg, ctx, partition_types)
    result = ExportResult(ctx.model, cfg.destination, cfg.file_format, commit.generation)
    # A folder export's files are read and encoded while its commit begins (lease,
    # claims, manifest: round trips that need no rows); nothing is sent before it has
    # begun. Not where the beginning may decide to skip: the read would be wasted.
    begun: Future[str | None] | None = None
    if isinstance(commit, FolderCommit) and cfg.mode not in IF_EXISTS_MODES:
        begun = shared_pool("s3-export-begin", BEGIN_THREADS).submit(commit.begin)
    else:
        try:
            skipped = commit.begin()
        except BaseException as e:
            commit.close()
            if isinstance(e, Exception):
                raise _unchanged(cfg, e) from e
            raise
        if skipped is not None:
            commit.close()
            result.skipped = skipped
            return result
    naming = FileNaming(
        cfg.filename_template, ctx.model, commit.generation, ctx.invocation_id or ""
    )
    uploader = Uploader(
        client,
        cfg.bucket,
        part_size=cfg.part_size,
        max_concurrency=cfg.max_concurrency,
        # A single object names its export in its metadata: a folder has its lease for that.
        object_args=object_args(
            cfg, {} if cfg.is_prefix else owner_metadata(ctx.export_id(cfg), commit.generation)
        ),
        ready=begun,
        may_write=commit.may_write if isinstance(commit, FolderCommit) else None,
    )
    roller: FileRoller | None = None
    meter = Progress(f"{ctx.model} -> {cfg.destination}", log=ctx.log)
    try:
        reader = source.open(cfg.partition_cols, cfg.batch_size)
        try:
            schema = reader.schema
            if cfg.partition_cols and not cfg.include_partition_cols:
                schema = pa.schema([f for f in schema if f.name not in cfg.partition_cols])
            roller = FileRoller(cfg, uploader, schema, naming, if_absent=commit.if_absent)
            meter.watch(roller.written)
            for piece in slices(reader, cfg, roller.render):
                roller.write(piece)
            roller.close(ensure_one_file=not cfg.partition_cols)
        finally:
            reader.close()
        uploader.wait()
        if begun is not None:
            begun.result()  # a folder of no files sent nothing that waited for it
        result.files = roller.files
        listed = [_listed(f) for f in result.files]
        fields = _manifest_fields(cfg, ctx, result, schema)
        commit.publish(listed, {**fields, "partition_types": partition_types})
    except BaseException as e:
        meter.stop()
        if roller is not None:
            roller.abort()
        with contextlib.suppress(BaseException):
            uploader.wait()
        # What stopped the commit's beginning, once it has ended (never cancelled).
        not_begun = begun.exception() if begun is not None else None
        if not_begun is not None:  # as if it had failed first: nothing was sent
            uploader.close()
            commit.close()
            if isinstance(not_begun, Exception):
                raise _unchanged(cfg, not_begun) from not_begun
            raise not_begun from None
        commit.abort(uploader.completed, in_doubt=isinstance(e, ManifestInDoubt))
        uploader.close()
        if isinstance(e, Exception) and not isinstance(e, ManifestInDoubt):
            raise _unchanged(cfg, e) from e
        raise
    # Committed: readers of the manifest (or of the single object) see only the new data.
    linked: Exception | None = None
    if isinstance(commit, FolderCommit):
        try:
            commit.link()  # the symlink manifests, before Glue's partitions point at them
        except S3ExportError as e:
            linked = e
    registered: Exception | None = None
    # Still under the lease, so runs of the export take turns. Not when the symlink
    # manifests failed: a Glue table over them stays with the previous generation.
    if glue is not None and linked is None:
        try:
            glue.publish(commit)
        except Exception as e:
            registered = e
    try:
        result.removed = commit.finish()
    except S3ExportError as e:
        raise ExportFailed(
            "the new export is in place"
            + (" and its manifest lists it" if cfg.is_prefix else "")
            + f", but cleaning up after it failed: {brief(e)}. The next successful run "
            "finishes the clean-up"
        ) from e
    finally:
        meter.stop()
        uploader.close()
    if isinstance(linked, LeaseLost):
        raise ExportFailed(
            "the new export was committed, but this run's lease was taken over while it "
            f"wrote its symlink manifests ({brief(linked)}). The run that took the lease over "
            "writes its own export and symlink manifests, which readers then see; nothing to do"
        ) from linked
    if linked is not None:
        raise ExportFailed(
            "the new export is in place and its manifest lists it, but writing its symlink "
            f"manifests failed: {brief(linked)}. Readers through them (Athena, Trino, Hive, "
            "the Glue table) still see the previous export, whose files are kept; the next "
            "successful run brings them in line and deletes those files"
        ) from linked
    if registered is not None and cfg.glue is not None:
        raise registration_failed(cfg.glue, registered) from registered
    result.seconds = time.monotonic() - started
    return result


def _listed(f: WrittenFile) -> dict[str, Any]:
    return {"key": f.key, "rows": f.rows, "bytes": f.bytes, "partition": f.partition}


def _manifest_fields(
    cfg: ExportConfig, ctx: RunContext, result: ExportResult, schema: pa.Schema
) -> dict[str, Any]:
    """What a manifest says of the export besides its files (commit/ adds those)."""
    return {
        "created_at": utc_now(),
        "model": ctx.model,
        "unique_id": ctx.unique_id,
        "invocation_id": ctx.invocation_id,
        "destination": cfg.destination,
        "file_format": cfg.file_format,
        "compression": cfg.codec,
        "partition_cols": list(cfg.partition_cols),
        "run": {"rows": result.rows, "bytes": result.bytes, "files": len(result.files)},
        "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
    }


def _unchanged(cfg: ExportConfig, e: Exception) -> Exception:
    """The error for a failure before the commit, saying that nothing changed."""
    if isinstance(e, (ConfigError, BucketNotFound, CorruptManifest)):
        return e
    if isinstance(e, OwnershipConflict):
        return OwnershipConflict(f"{brief(e)}. Nothing was written")
    if isinstance(e, PreconditionFailed) and not cfg.is_prefix:
        return OwnershipConflict(
            f"another export wrote {cfg.destination} while this run was exporting (nothing "
            "was there when the run began), so this run did not replace it. If two exports "
            "point at this key, give one of them another key"
        )
    unchanged = "The previous export is unchanged" if cfg.is_prefix else "The object is unchanged"
    message = f"{brief(e)}. {unchanged}"
    if isinstance(e, TransferError):
        return type(e)(message, code=e.code, retryable=e.retryable)
    if isinstance(e, (SourceError, PartitionError, ExportFailed)):
        return type(e)(message)
    return ExportFailed(message)


__all__ = [
    "BatchSource",
    "ExportResult",
    "RunContext",
    "WrittenFile",
    "new_generation",
    "run_export",
]
