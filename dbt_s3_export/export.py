"""Run one export: stream, encode, upload, then swap generations.

Single-object exports (``key`` names a file) rely on S3's atomic PUT and
multipart completion: the old object stays readable until the new one is
complete, and a failed export leaves it untouched.

Prefix exports (``key`` ends with ``/``, or ``partition_cols`` is set) write a
new *generation* of files whose names carry a run-unique id, then a manifest
``<prefix>_manifest.json`` listing exactly those files (the commit point), and
only then delete the files of earlier generations. What the export owns under
its prefix, and so may delete, is: the files the previous manifest lists, and
files named like the export's own (``part-<generation>-<n>.<ext>``) left by runs
that died before finishing. Nothing else under the prefix is touched, and no
neighbouring prefix ever is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import re
import secrets
import string
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast
from urllib.parse import urlencode

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from .config import MAX_KEY_BYTES, ExportConfig
from .errors import (
    BucketNotFound,
    ConfigError,
    ExportFailed,
    PartitionError,
    S3ExportError,
    SourceError,
    TransferError,
)
from .formats import content_type
from .partitioning import (
    PartitionSlice,
    check_partition_types,
    longest_segment,
    split_by_partition,
)
from .progress import Progress, human_bytes, plural
from .transfer import (
    ObjectSink,
    Uploader,
    abort_upload,
    call,
    delete_keys,
    describe_error,
    list_keys,
    list_uploads,
)
from .writers import FormatOptions, FormatWriter, open_writer

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
_BODY_READ_ATTEMPTS = 3
# What each filename_template placeholder matches when recognising the export's files.
_FIELD_PATTERNS = {
    "model": r"[^/]+?",
    "run_id": r"(?P<gen>[0-9a-f]{24})",
    "part": r"\d{5}",
    "invocation_id": r"[0-9A-Za-z-]*",
    "date": r"\d{4}-\d{2}-\d{2}",
}


@functools.lru_cache(maxsize=64)
def _name_pattern(template: str) -> re.Pattern[str]:
    """A regex matching the file names ``template`` produces, any extension."""
    pattern = ""
    for literal, name, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if name is not None:
            pattern += _FIELD_PATTERNS[name]
    return re.compile(pattern + r"\.[a-z0-9.]+")


@dataclass(frozen=True)
class FileNaming:
    """Renders the names of a run's files from ``filename_template``."""

    template: str
    model: str
    run_id: str
    invocation_id: str = ""

    def name(self, part: int) -> str:
        return self.template.format(
            model=self.model,
            run_id=self.run_id,
            part=f"{part:05d}",
            invocation_id=self.invocation_id,
            date=dt.datetime.now(dt.timezone.utc).date().isoformat(),
        )


class BatchSource(Protocol):
    def columns(self) -> list[str]: ...

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader: ...


def new_generation() -> str:
    """A run-unique id that sorts by time: 12 hex digits of milliseconds, 12 random."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


@dataclass
class WrittenFile:
    key: str
    rows: int
    bytes: int
    partition: str = ""


@dataclass
class ExportResult:
    model: str
    destination: str
    file_format: str
    generation: str
    files: list[WrittenFile] = field(default_factory=list)
    seconds: float = 0.0
    removed: int = 0
    skipped: str | None = None

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def summary(self) -> str:
        if self.skipped:
            return f"s3_export: {self.model} -> {self.destination}: skipped ({self.skipped})"
        return (
            f"s3_export: {self.model} -> {self.destination} ({self.file_format}): "
            f"{plural(self.rows, 'row')}, {plural(len(self.files), 'file')}, "
            f"{human_bytes(self.bytes)}, {self.seconds:.2f}s"
        )


def file_content_type(cfg: ExportConfig, key: str) -> str:
    """The configured content_type, else the type of the key's extension (formats.py)."""
    return cfg.content_type or content_type(key, cfg.file_format)


def object_args(cfg: ExportConfig) -> dict[str, Any]:
    """S3 request arguments every object of the export gets."""
    args: dict[str, Any] = {}
    if cfg.sse:
        args["ServerSideEncryption"] = cfg.sse
    if cfg.sse_kms_key_id:
        args["SSEKMSKeyId"] = cfg.sse_kms_key_id
    if cfg.storage_class:
        args["StorageClass"] = cfg.storage_class
    if cfg.metadata:
        args["Metadata"] = dict(cfg.metadata)
    if cfg.tags:
        args["Tagging"] = urlencode(cfg.tags)
    return args


def check_columns(cfg: ExportConfig, columns: Sequence[str], where: str) -> None:
    """Partition columns must exist and leave at least one column for the files."""
    missing = [c for c in cfg.partition_cols if c not in columns]
    if missing:
        raise SourceError(
            f"{where}: partition column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)} not in the model; its columns are: "
            f"{', '.join(columns)}. Fix 'partition_cols'"
        )
    if cfg.partition_cols and len(cfg.partition_cols) == len(columns):
        raise SourceError(
            f"{where}: every column of the model is a partition column, so the files would "
            "hold no data. Leave at least one column out of 'partition_cols'"
        )


class _FileRoller:
    """Writes a stream of partition slices into files, one open file at a time."""

    def __init__(
        self, cfg: ExportConfig, uploader: Uploader, schema: pa.Schema, naming: FileNaming
    ):
        self.cfg = cfg
        self.uploader = uploader
        self.schema = schema
        self.naming = naming
        self.opts = FormatOptions(
            file_format=cfg.file_format,
            codec=cfg.codec,
            compression_level=cfg.compression_level,
            csv_delimiter=cfg.csv_delimiter,
            csv_header=cfg.csv_header,
            row_group_size=cfg.row_group_size,
        )
        self.files: list[WrittenFile] = []
        self._seq = 0
        self._path: str | None = None
        self._sink: ObjectSink | None = None
        self._writer: FormatWriter | None = None
        self._rows = 0

    def written(self) -> tuple[int, int, int]:
        """Rows and bytes written so far, and files uploaded (read by the progress thread)."""
        files, sink = list(self.files), self._sink
        rows = sum(f.rows for f in files) + (self._rows if sink is not None else 0)
        size = sum(f.bytes for f in files) + (sink.size if sink is not None else 0)
        return rows, size, len(self.uploader.completed)

    def _key(self, path: str) -> str:
        if not self.cfg.is_prefix:
            return self.cfg.key
        self._seq += 1
        name = self.naming.name(self._seq) + self.cfg.extension
        key = f"{self.cfg.prefix}{path}{name}"
        if len(key.encode()) > MAX_KEY_BYTES:
            col, size = longest_segment(path)
            shown = path if len(path) <= 80 else path[:60] + "..."
            raise PartitionError(
                f"the object key for partition {shown!r} is {len(key.encode())} bytes, over "
                f"S3's {MAX_KEY_BYTES}-byte limit; partition column '{col}' alone takes "
                f"{size} bytes of it. Partition by a shorter derived column instead (for "
                f"example left({col}, 100) or md5({col}) in the model), or shorten 'key'"
            )
        return key

    def _open(self, path: str) -> None:
        key = self._key(path)
        self._path = path
        self._sink = self.uploader.open(key, file_content_type(self.cfg, key))
        self._writer = open_writer(self.opts, self.schema, cast(BinaryIO, self._sink))
        self._rows = 0

    def _finish(self) -> None:
        if self._sink is None or self._writer is None:
            return
        sink, writer = self._sink, self._writer
        # The sink stays ours until it is committed, so that a failure while closing
        # or completing it still aborts its multipart upload.
        writer.close()
        sink.commit()
        self._sink = self._writer = None
        self.files.append(WrittenFile(sink.key, self._rows, sink.size, self._path or ""))

    def write(self, piece: PartitionSlice) -> None:
        batch = piece.batch
        limit = self.cfg.max_rows_per_file
        while True:
            if self._sink is None or piece.path != self._path:
                self._finish()
                self._open(piece.path)
            if limit is not None and self._rows + batch.num_rows > limit:
                room = limit - self._rows
                if room > 0:
                    self._write(batch.slice(0, room))
                batch = batch.slice(room)
                self._finish()
                continue
            self._write(batch)
            return

    def _write(self, batch: pa.RecordBatch) -> None:
        assert self._writer is not None
        self._writer.write(batch)
        self._rows += batch.num_rows

    def close(self, *, ensure_one_file: bool) -> None:
        if ensure_one_file and not self.files and self._sink is None:
            self._open("")
        self._finish()

    def abort(self) -> None:
        if self._sink is not None:
            self._sink.abort()
        self._sink = self._writer = None


def _slices(reader: pa.RecordBatchReader, cfg: ExportConfig) -> Iterator[PartitionSlice]:
    if cfg.partition_cols:
        yield from split_by_partition(iter(reader), cfg.partition_cols, cfg.include_partition_cols)
    else:
        for batch in reader:
            if batch.num_rows:
                yield PartitionSlice("", batch)


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
    *,
    model: str = "export",
    extra_manifest: dict[str, Any] | None = None,
) -> ExportResult:
    """Export ``source`` as ``cfg`` says; on failure leave the previous export as it was."""
    started = time.monotonic()
    where = f"model '{model}'"
    _return_freed_arrow_memory()
    check_columns(cfg, source.columns(), where)
    gen = new_generation()
    result = ExportResult(model, cfg.destination, cfg.file_format, gen)
    if cfg.mode in ("error_if_exists", "skip_if_exists"):
        existing = _existing_object(client, cfg)
        if existing is not None:
            if cfg.mode == "skip_if_exists":
                result.skipped = f"s3://{cfg.bucket}/{existing} already exists"
                return result
            raise ExportFailed(
                f"{where}: mode is error_if_exists and s3://{cfg.bucket}/{existing} already "
                f"exists. Delete what is at {cfg.destination}, or use mode replace or "
                "skip_if_exists"
            )
    extra = extra_manifest or {}
    naming = FileNaming(cfg.filename_template, model, gen, str(extra.get("invocation_id") or ""))
    uploader = Uploader(
        client,
        cfg.bucket,
        part_size=cfg.part_size,
        max_concurrency=cfg.max_concurrency,
        object_args=object_args(cfg),
    )
    roller: _FileRoller | None = None
    swap = _Swap()
    meter = Progress(f"{model} -> {cfg.destination}")
    try:
        reader = source.open(cfg.partition_cols, cfg.batch_size)
        try:
            schema = reader.schema
            check_partition_types(schema, cfg.partition_cols, where)
            if cfg.partition_cols and not cfg.include_partition_cols:
                schema = pa.schema([f for f in schema if f.name not in cfg.partition_cols])
            roller = _FileRoller(cfg, uploader, schema, naming)
            meter.watch(roller.written)
            for piece in _slices(reader, cfg):
                roller.write(piece)
            roller.close(ensure_one_file=not cfg.partition_cols)
        finally:
            reader.close()
        uploader.wait()
        result.files = roller.files
        if cfg.is_prefix:
            swap = _plan_swap(client, cfg, gen, _read_manifest(client, cfg), result.files)
            _publish_manifest(uploader, client, cfg, result, schema, extra, swap.kept)
    except BaseException as e:
        meter.stop()
        in_doubt = isinstance(e, _ManifestInDoubt)
        _clean_up_failed_run(uploader, roller, client, cfg, gen, delete_written=not in_doubt)
        uploader.close()
        if not isinstance(e, Exception) or in_doubt:
            raise
        failure = _before_publish_failure(where, cfg, e)
        if failure is e:
            raise
        raise failure from e
    # Published: readers of the manifest (or of the single object) see only the new data.
    try:
        if cfg.is_prefix:
            result.removed = _remove_stale(client, cfg, gen, swap)
        else:
            _abort_stale_uploads_of_key(client, cfg)
            if cfg.manifest:
                _write_manifest(uploader, cfg, result, schema, extra, [])
    except Exception as e:
        what = (
            "removing the files of earlier exports"
            if cfg.is_prefix
            else "writing its manifest or aborting unfinished uploads left at the key"
        )
        raise ExportFailed(
            f"{where}: the new export at {cfg.destination} is in place"
            + (" and its manifest lists it" if cfg.is_prefix else "")
            + f", but {what} failed: {_text(e)}. The next successful run cleans them up"
        ) from e
    finally:
        meter.stop()
        uploader.close()
    result.seconds = time.monotonic() - started
    return result


class _ManifestInDoubt(ExportFailed):
    """Writing the manifest failed and reading it back failed too: it may or may not be ours."""


def _text(e: BaseException) -> str:
    """An exception as one sentence-like fragment, without a trailing period."""
    if isinstance(e, (ClientError, BotoCoreError)):
        text = str(describe_error(e, "?", "reach S3"))
    elif isinstance(e, S3ExportError):
        text = str(e)
    else:
        text = f"{type(e).__name__}: {e}"
    return " ".join(text.split()).rstrip(".")


def _before_publish_failure(where: str, cfg: ExportConfig, e: Exception) -> Exception:
    """The error to raise for a failure before the commit point, saying nothing changed."""
    if isinstance(e, ConfigError):
        return e
    if isinstance(e, BucketNotFound):
        return e if str(e).startswith(where) else BucketNotFound(f"{where}: {e}", code=e.code)
    unchanged = (
        f"The previous export at {cfg.destination} is unchanged"
        if cfg.is_prefix
        else f"The object at {cfg.destination} is unchanged"
    )
    text = _text(e)
    if not text.startswith(where):
        text = f"{where}: {text}"
    message = f"{text}. {unchanged}"
    if isinstance(e, TransferError):
        return type(e)(message, code=e.code, retryable=e.retryable)
    if isinstance(e, (SourceError, PartitionError)):
        return type(e)(message)
    if isinstance(e, (ClientError, BotoCoreError)):
        return describe_error(e, cfg.bucket, "export")
    return ExportFailed(message)


def _clean_up_failed_run(
    uploader: Uploader,
    roller: _FileRoller | None,
    client: S3Client,
    cfg: ExportConfig,
    gen: str,
    *,
    delete_written: bool,
) -> None:
    """Best effort: abort this run's uploads and delete the files it wrote.

    Names are generation-unique, so whatever this cannot remove (S3 unreachable,
    or the process is killed) is recognised and removed by the next successful run.
    """
    if roller is not None:
        roller.abort()
    with contextlib.suppress(BaseException):
        uploader.wait()
    if not cfg.is_prefix:
        return
    written = set(uploader.completed)
    try:
        for key, upload_id in list(list_uploads(client, cfg.bucket, cfg.prefix)):
            if owned_generation(cfg, key) == gen:
                abort_upload(client, cfg.bucket, key, upload_id)
        if delete_written:
            # A write whose answer was lost is on S3 but not in ``completed``.
            for key in list_keys(client, cfg.bucket, cfg.prefix):
                if owned_generation(cfg, key) == gen:
                    written.add(key)
    except S3ExportError:
        pass
    if delete_written and written:
        with contextlib.suppress(S3ExportError):
            delete_keys(client, cfg.bucket, sorted(written))


def manifest_key(cfg: ExportConfig) -> str:
    """``<prefix>_manifest.json``; for a single object, ``<key>.manifest.json``."""
    return cfg.prefix + MANIFEST_NAME if cfg.is_prefix else cfg.key + ".manifest.json"


def owned_generation(cfg: ExportConfig, key: str) -> str | None:
    """The generation of a file this export named under its prefix, else None.

    A key is the export's own when it sits under the prefix, in zero or more
    ``name=value`` folders, and is named ``part-<generation>-<n>.<ext>``. Nested
    exports whose folders are not Hive-style, and neighbouring prefixes, never match.
    """
    prefix = cfg.prefix
    if not key.startswith(prefix):
        return None
    *folders, name = key[len(prefix) :].split("/")
    match = _name_pattern(cfg.filename_template).fullmatch(name)
    if match is None or any(d.find("=") < 1 for d in folders):
        return None
    return match["gen"]


def _read_manifest(client: S3Client, cfg: ExportConfig) -> dict[str, Any] | None:
    """The current manifest, or None when there is none (or it is not ours to parse)."""
    key = manifest_key(cfg)
    what = f"read {key}"
    body = b""
    # botocore retries requests, not the reading of a streamed body: a connection
    # reset halfway through the manifest is retried here, a few times.
    for attempt in range(1, _BODY_READ_ATTEMPTS + 1):
        try:
            response = client.get_object(Bucket=cfg.bucket, Key=key)
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise describe_error(e, cfg.bucket, what) from e
        except BotoCoreError as e:
            raise describe_error(e, cfg.bucket, what) from e
        try:
            body = response["Body"].read()
            break
        except BotoCoreError as e:
            if attempt == _BODY_READ_ATTEMPTS:
                raise describe_error(e, cfg.bucket, what) from e
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _publish_manifest(
    uploader: Uploader,
    client: S3Client,
    cfg: ExportConfig,
    result: ExportResult,
    schema: pa.Schema,
    extra: dict[str, Any],
    kept: list[dict[str, Any]],
) -> None:
    """Write the manifest: the commit point. A lost answer is settled by reading it back."""
    try:
        _write_manifest(uploader, cfg, result, schema, extra, kept)
    except S3ExportError as e:
        try:
            current = _read_manifest(client, cfg)
        except S3ExportError:
            raise _ManifestInDoubt(
                f"model '{result.model}': writing the manifest s3://{cfg.bucket}/"
                f"{manifest_key(cfg)} failed ({_text(e)}) and it could not be read back, so "
                "it may list this run's files or the previous run's. Both sets of files are "
                "kept; the next successful run removes the stale one"
            ) from e
        if current is not None and current.get("generation") == result.generation:
            return  # the write landed; only its answer was lost
        raise


def _write_manifest(
    uploader: Uploader,
    cfg: ExportConfig,
    result: ExportResult,
    schema: pa.Schema,
    extra: dict[str, Any],
    kept: list[dict[str, Any]],
) -> None:
    """The manifest lists the consistent set of files: this run's plus those the mode keeps."""
    files = [*kept]
    files += [
        {
            "key": f.key,
            "rows": f.rows,
            "bytes": f.bytes,
            "partition": f.partition,
            "generation": result.generation,
        }
        for f in result.files
    ]
    manifest = {
        "format_version": MANIFEST_VERSION,
        "generation": result.generation,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": result.model,
        "destination": cfg.destination,
        "mode": cfg.mode,
        "file_format": cfg.file_format,
        "compression": cfg.codec,
        "partition_cols": list(cfg.partition_cols),
        "rows": sum(f.get("rows") or 0 for f in files),
        "bytes": sum(f.get("bytes") or 0 for f in files),
        "run": {"rows": result.rows, "bytes": result.bytes, "files": len(result.files)},
        "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
        "files": files,
        **extra,
    }
    body = json.dumps(manifest, indent=2).encode()
    uploader.put_bytes(manifest_key(cfg), body, "application/json")


@dataclass
class _Swap:
    """What publishing this run changes: earlier files it keeps listing, and stale ones."""

    kept: list[dict[str, Any]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def _partition_of(cfg: ExportConfig, key: str) -> str:
    rel = key[len(cfg.prefix) :]
    return rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""


def _plan_swap(
    client: S3Client,
    cfg: ExportConfig,
    gen: str,
    previous: dict[str, Any] | None,
    written: list[WrittenFile],
) -> _Swap:
    """Sort the earlier files under the prefix into kept and stale, by mode.

    Earlier files are the ones the previous manifest lists plus those named like
    the export's own. ``replace`` drops them all; ``overwrite_partitions`` drops
    those in the partitions this run wrote (and leftovers of failed runs) and
    keeps the rest; ``append`` keeps them all and deletes nothing. Without a
    previous manifest, files named like ours are adopted rather than dropped
    where the mode keeps earlier data.
    """
    listed: dict[str, dict[str, Any]] = {}
    for entry in (previous or {}).get("files", []):
        key = entry.get("key") if isinstance(entry, dict) else None
        if isinstance(key, str) and key.startswith(cfg.prefix) and key != manifest_key(cfg):
            listed[key] = entry
    earlier = [
        key
        for key in list_keys(client, cfg.bucket, cfg.prefix)
        if key in listed or owned_generation(cfg, key) not in (None, gen)
    ]
    touched = {f.partition for f in written}
    swap = _Swap()
    for key in earlier:
        entry = listed.get(key)
        adoptable = previous is None and entry is None
        keep = cfg.mode == "append" or (
            cfg.mode == "overwrite_partitions"
            and _partition_of(cfg, key) not in touched
            and (entry is not None or adoptable)
        )
        if not keep:
            swap.stale.append(key)
        elif entry is not None:
            swap.kept.append(entry)
        elif cfg.mode != "append" or adoptable:
            swap.kept.append(
                {
                    "key": key,
                    "rows": None,
                    "bytes": None,
                    "partition": _partition_of(cfg, key),
                    "generation": owned_generation(cfg, key),
                }
            )
    return swap


def _remove_stale(client: S3Client, cfg: ExportConfig, gen: str, swap: _Swap) -> int:
    """Abort unfinished uploads of earlier runs and delete the stale files."""
    if cfg.mode == "append":
        return 0  # append deletes nothing; another run may be appending right now
    for key, upload_id in list(list_uploads(client, cfg.bucket, cfg.prefix)):
        owner = owned_generation(cfg, key)
        if owner is not None and owner != gen:
            abort_upload(client, cfg.bucket, key, upload_id)
    return delete_keys(client, cfg.bucket, swap.stale)


def _existing_object(client: S3Client, cfg: ExportConfig) -> str | None:
    """The key of something already at the destination, or None."""
    if not cfg.is_prefix:
        try:
            client.head_object(Bucket=cfg.bucket, Key=cfg.key)
            return cfg.key
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise describe_error(e, cfg.bucket, f"check whether {cfg.key} exists") from e
        except BotoCoreError as e:
            raise describe_error(e, cfg.bucket, f"check whether {cfg.key} exists") from e
    return next(iter(list_keys(client, cfg.bucket, cfg.prefix)), None)


def _abort_stale_uploads_of_key(client: S3Client, cfg: ExportConfig) -> None:
    """Abort unfinished multipart uploads at the export's key, left by runs that died."""
    for key, upload_id in list(list_uploads(client, cfg.bucket, cfg.key)):
        if key == cfg.key:
            abort_upload(client, cfg.bucket, key, upload_id)


__all__ = [
    "ExportResult",
    "WrittenFile",
    "call",
    "manifest_key",
    "owned_generation",
    "run_export",
]
