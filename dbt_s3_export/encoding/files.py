"""The files of one run: their names, and rolling a stream of partition slices into them.

One file is open at a time. A folder export names its files from
``filename_template`` under ``<prefix><partition path>``; every name carries the
run's generation, which is how the commit protocol tells a run's files apart. A
single-object export writes exactly one file, at ``key``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, cast

import pyarrow as pa

from ..errors import PartitionError
from ..options.config import MAX_KEY_BYTES, ExportConfig
from ..options.formats import content_type
from ..s3.transfer import ObjectSink, Uploader
from .partitioning import PartitionSlice, cap_partitions, longest_segment, split_by_partition
from .text import render_ahead
from .writers import FormatOptions, FormatWriter, Render, open_writer, text_render


@dataclass(frozen=True)
class FileNaming:
    """Renders the names of a run's files from ``filename_template``."""

    template: str
    model: str
    run_id: str
    invocation_id: str = ""

    # The run's date (UTC), taken once: every file of a run carries the same.
    date: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).date().isoformat())

    def name(self, part: int) -> str:
        return self.template.format(
            model=self.model,
            run_id=self.run_id,
            part=f"{part:05d}",
            invocation_id=self.invocation_id,
            date=self.date,
        )


@dataclass
class WrittenFile:
    key: str
    rows: int
    bytes: int
    partition: str = ""


def file_content_type(cfg: ExportConfig, key: str) -> str:
    """The configured content_type, else the type of the key's extension (options/formats.py)."""
    return cfg.content_type or content_type(key, cfg.file_format)


def slices(
    reader: pa.RecordBatchReader, cfg: ExportConfig, render: Render | None = None
) -> Iterator[PartitionSlice]:
    """The model's rows as partition slices (one slice per batch when not partitioned);
    with ``render`` (FileRoller.render), each batch rendered once before it is cut."""
    if cfg.partition_cols:
        pieces = split_by_partition(
            iter(reader),
            cfg.partition_cols,
            cfg.include_partition_cols,
            cfg.empty_string_partitions,
            render,
        )
        yield from cap_partitions(pieces, cfg.max_partitions, cfg.partition_cols)
    elif render is None:
        for batch in reader:
            if batch.num_rows:
                yield PartitionSlice("", batch)
    else:
        for data in render_ahead((b for b in reader if b.num_rows), render):
            yield PartitionSlice("", data)


class FileRoller:
    """Writes a stream of partition slices into files, one open file at a time."""

    def __init__(
        self,
        cfg: ExportConfig,
        uploader: Uploader,
        schema: pa.Schema,
        naming: FileNaming,
        *,
        if_absent: bool = False,
    ) -> None:
        self.cfg = cfg
        self.uploader = uploader
        self.schema = schema
        self.naming = naming
        self.if_absent = if_absent
        self.opts = FormatOptions(
            file_format=cfg.file_format,
            codec=cfg.codec,
            compression_level=cfg.compression_level,
            csv_delimiter=cfg.csv_delimiter,
            csv_header=cfg.csv_header,
            row_group_size=cfg.row_group_size,
        )
        # What the format renders of each batch before it is cut (text formats).
        self.render = text_render(self.opts, schema)
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
            if size <= len(name.encode()):
                named = name if len(name) <= 40 else name[:40] + "..."
                raise PartitionError(
                    f"the file name {named!r} from filename_template makes the key "
                    f"{len(key.encode())} bytes, over S3's {MAX_KEY_BYTES}-byte limit (the name "
                    f"alone is {len(name.encode())} bytes). Shorten filename_template or 'key'"
                )
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
        self._sink = self.uploader.open(
            key, file_content_type(self.cfg, key), if_absent=self.if_absent
        )
        self._writer = open_writer(
            self.opts, self.schema, cast(BinaryIO, self._sink), rendered=self.render
        )
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
