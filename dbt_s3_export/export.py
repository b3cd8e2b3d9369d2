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

import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import pyarrow as pa
from botocore.exceptions import BotoCoreError, ClientError

from .config import MAX_KEY_BYTES, ExportConfig
from .credentials import S3Client
from .errors import ExportFailed, PartitionError, S3ExportError, SourceError
from .partitioning import (
    PartitionSlice,
    check_partition_types,
    longest_segment,
    split_by_partition,
)
from .transfer import (
    ObjectSink,
    Uploader,
    abort_upload,
    call,
    delete_keys,
    list_keys,
    list_uploads,
)
from .writers import FormatOptions, FormatWriter, content_type, open_writer

MANIFEST_NAME = "_manifest.json"
MANIFEST_VERSION = 1
_OWNED_NAME = re.compile(r"(?:^|/)part-(?P<gen>[0-9a-f]{24})-\d{5}\.[a-z0-9.]+$")


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

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def summary(self) -> str:
        files = len(self.files)
        return (
            f"s3_export: {self.model} -> {self.destination} ({self.file_format}): "
            f"{self.rows} rows, {files} file{'s' if files != 1 else ''}, "
            f"{_human_bytes(self.bytes)}, {self.seconds:.2f}s"
        )


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def file_content_type(cfg: ExportConfig) -> str:
    """The format's media type; a compressed text file is a gzip or zstd file.

    Content-Encoding is left unset on purpose: with it, HTTP clients would
    silently decompress a ``.csv.gz`` download and save plain text under a
    ``.gz`` name.
    """
    if cfg.content_type:
        return cfg.content_type
    if cfg.file_format != "parquet" and cfg.codec in ("gzip", "zstd"):
        return f"application/{cfg.codec}"
    return content_type(cfg.file_format)


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

    def __init__(self, cfg: ExportConfig, uploader: Uploader, schema: pa.Schema, gen: str):
        self.cfg = cfg
        self.uploader = uploader
        self.schema = schema
        self.gen = gen
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

    def _key(self, path: str) -> str:
        if not self.cfg.is_prefix:
            return self.cfg.key
        self._seq += 1
        name = f"part-{self.gen}-{self._seq:05d}{self.cfg.extension}"
        key = f"{self.cfg.prefix}{path}{name}"
        if len(key.encode()) > MAX_KEY_BYTES:
            col, size = longest_segment(path)
            raise PartitionError(
                f"the object key for partition {path!r} is {len(key.encode())} bytes, over "
                f"S3's {MAX_KEY_BYTES}-byte limit; partition column '{col}' alone takes "
                f"{size} bytes of it. Partition by a shorter derived column instead (for "
                f"example left({col}, 100) or md5({col}) in the model), or shorten 'key'"
            )
        return key

    def _open(self, path: str) -> None:
        key = self._key(path)
        self._path = path
        self._sink = self.uploader.open(key, file_content_type(self.cfg))
        self._writer = open_writer(self.opts, self.schema, self._sink)
        self._rows = 0

    def _finish(self) -> None:
        if self._sink is None or self._writer is None:
            return
        sink, writer = self._sink, self._writer
        self._sink = self._writer = None
        writer.close()
        sink.commit()
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


def _slices(
    reader: pa.RecordBatchReader, cfg: ExportConfig
) -> Iterator[PartitionSlice]:
    if cfg.partition_cols:
        yield from split_by_partition(iter(reader), cfg.partition_cols, cfg.include_partition_cols)
    else:
        for batch in reader:
            if batch.num_rows:
                yield PartitionSlice("", batch)


def run_export(
    cfg: ExportConfig,
    source: BatchSource,
    client: S3Client,
    *,
    model: str = "export",
    extra_manifest: dict[str, Any] | None = None,
) -> ExportResult:
    """Export ``source`` as ``cfg`` says; on failure remove what this run wrote."""
    started = time.monotonic()
    where = f"model '{model}'"
    check_columns(cfg, source.columns(), where)
    gen = new_generation()
    result = ExportResult(model, cfg.destination, cfg.file_format, gen)
    uploader = Uploader(
        client,
        cfg.bucket,
        part_size=cfg.part_size,
        max_concurrency=cfg.max_concurrency,
        object_args=object_args(cfg),
    )
    roller: _FileRoller | None = None
    published = False
    try:
        reader = source.open(cfg.partition_cols, cfg.batch_size)
        try:
            schema = reader.schema
            check_partition_types(schema, cfg.partition_cols, where)
            if cfg.partition_cols and not cfg.include_partition_cols:
                schema = pa.schema([f for f in schema if f.name not in cfg.partition_cols])
            roller = _FileRoller(cfg, uploader, schema, gen)
            for piece in _slices(reader, cfg):
                roller.write(piece)
            roller.close(ensure_one_file=not cfg.partition_cols)
        finally:
            reader.close()
        uploader.wait()
        result.files = roller.files
        if cfg.is_prefix:
            previous = _read_manifest(client, cfg)
            _write_manifest(uploader, cfg, result, schema, extra_manifest or {})
            published = True
            result.removed = _remove_earlier_generations(client, cfg, gen, previous)
    except BaseException as e:
        if not published:
            _clean_up_failed_run(uploader, roller, client, cfg)
        uploader.close()
        if published:
            raise ExportFailed(
                f"{where}: the new files of {cfg.destination} are in place and its manifest "
                f"lists them, but removing the previous export's files failed: {e}. The next "
                "successful run removes them"
            ) from e
        if isinstance(e, S3ExportError):
            raise
        if isinstance(e, (ClientError, BotoCoreError)):
            raise ExportFailed(f"{where}: export to {cfg.destination} failed: {e}") from e
        raise
    uploader.close()
    result.seconds = time.monotonic() - started
    return result


def _clean_up_failed_run(
    uploader: Uploader, roller: _FileRoller | None, client: S3Client, cfg: ExportConfig
) -> None:
    """Best effort: abort the open upload, wait for the rest, delete what landed."""
    if roller is not None:
        roller.abort()
    try:
        uploader.wait()
    except BaseException:
        pass
    written = list(uploader.completed)
    if cfg.is_prefix and written:
        try:
            delete_keys(client, cfg.bucket, written)
        except S3ExportError:
            pass  # names are generation-unique; the next successful run removes them


def manifest_key(cfg: ExportConfig) -> str:
    return cfg.prefix + MANIFEST_NAME


def _read_manifest(client: S3Client, cfg: ExportConfig) -> dict[str, Any] | None:
    key = manifest_key(cfg)
    try:
        body = client.get_object(Bucket=cfg.bucket, Key=key)["Body"].read()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _write_manifest(
    uploader: Uploader,
    cfg: ExportConfig,
    result: ExportResult,
    schema: pa.Schema,
    extra: dict[str, Any],
) -> None:
    manifest = {
        "format_version": MANIFEST_VERSION,
        "generation": result.generation,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "model": result.model,
        "destination": cfg.destination,
        "file_format": cfg.file_format,
        "compression": cfg.codec,
        "partition_cols": list(cfg.partition_cols),
        "rows": result.rows,
        "bytes": result.bytes,
        "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
        "files": [
            {"key": f.key, "rows": f.rows, "bytes": f.bytes, "partition": f.partition}
            for f in result.files
        ],
        **extra,
    }
    body = json.dumps(manifest, indent=2).encode()
    uploader.put_bytes(manifest_key(cfg), body, "application/json")


def _remove_earlier_generations(
    client: S3Client, cfg: ExportConfig, gen: str, previous: dict[str, Any] | None
) -> int:
    prefix = cfg.prefix
    listed: set[str] = set()
    if previous is not None:
        for entry in previous.get("files", []):
            key = entry.get("key") if isinstance(entry, dict) else None
            if isinstance(key, str) and key.startswith(prefix):
                listed.add(key)
    stale = []
    for key in list_keys(client, cfg.bucket, prefix):
        match = _OWNED_NAME.search(key)
        if match and match["gen"] == gen:
            continue
        if match or key in listed:
            stale.append(key)
    for key, upload_id in list(list_uploads(client, cfg.bucket, prefix)):
        match = _OWNED_NAME.search(key)
        if match and match["gen"] != gen:
            abort_upload(client, cfg.bucket, key, upload_id)
    return delete_keys(client, cfg.bucket, stale)


__all__ = ["ExportResult", "WrittenFile", "call", "manifest_key", "run_export"]
