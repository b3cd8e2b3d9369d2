"""Format writers: Arrow record batches in, file bytes out to any binary sink.

Writers know nothing of S3. Each takes the schema up front (so an empty model
still gives a valid file: a CSV header, a Parquet schema, ``[]``), accepts
batches with ``write`` and finishes the file on ``close``.

CSV and JSON hold text, so a private in-memory DuckDB connection renders the
values first: timestamps as ISO 8601 (``2024-01-01T12:00:00``, zoned ones in
UTC), nested values as JSON, and whole rows as JSON objects via ``to_json``.
That keeps the per-row work in C++ rather than Python.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import S3ExportError
from .text import (
    Encoded,
    OrderedEncoder,
    Renderer,
    always_sql,
    check_decimal_digits,
    check_finite,
    float_text,
    temporal_text,
)
from .typemap import (
    column_error,
    is_raw_json,
    quote_identifier,
    type_name,
)

# Parquet buffers rows up to this much Arrow memory before writing a row group,
# whatever row_group_size says, so wide rows do not blow the memory bound.
MAX_ROW_GROUP_BYTES = 128 * 1024 * 1024
# Dictionary encoding pays only for repetitive columns. On a column of mostly
# distinct values (ids, timestamps, measures) Arrow hashes every value until the
# dictionary outgrows its page and then falls back to plain, which costs time and
# leaves a bigger file; so each file's columns are judged on a sample first.
DICTIONARY_SAMPLE_ROWS = 65_536
QUICK_SAMPLE_ROWS = 4_096
DICTIONARY_MAX_DISTINCT_RATIO = 0.5
# Arrow also cuts a data page every 20,000 rows; each page costs a header and
# statistics. Let pages reach Arrow's 1 MiB data page size instead.
MAX_ROWS_PER_PAGE = 1024 * 1024


@dataclass(frozen=True)
class FormatOptions:
    file_format: str
    codec: str = "none"
    compression_level: int | None = None
    csv_delimiter: str = ","
    csv_header: bool = True
    row_group_size: int = 500_000


# A text format's rendering of a batch (text_render): the same rows, as the format holds them.
Render = Callable[[pa.RecordBatch], pa.RecordBatch]


class FormatWriter(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...

    def close(self) -> None: ...


def _distinct_ratio(column: pa.ChunkedArray | pa.Array) -> float:
    return float(pc.count_distinct(column, mode="all").as_py()) / len(column)


def dictionary_columns(table: pa.Table) -> list[str]:
    """The columns whose sampled values repeat enough for dictionary encoding.

    A small sample settles the common cases cheaply (ids and measures are all
    distinct, codes and labels repeat at once); only columns in between are
    counted again on the full sample.
    """
    chosen = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if pa.types.is_nested(column.type) or len(column) == 0:
            continue
        try:
            ratio = _distinct_ratio(column.slice(0, QUICK_SAMPLE_ROWS))
            if DICTIONARY_MAX_DISTINCT_RATIO < ratio < 0.95:
                ratio = _distinct_ratio(column.slice(0, DICTIONARY_SAMPLE_ROWS))
        except pa.ArrowNotImplementedError:
            continue
        if ratio <= DICTIONARY_MAX_DISTINCT_RATIO:
            chosen.append(name)
    return chosen


def _parquet_type_error(schema: pa.Schema, error: Exception) -> S3ExportError:
    """Name the column whose Arrow type has no Parquet form (an Arrow source's, say)."""
    for field in schema:
        try:
            pq.ParquetWriter(pa.BufferOutputStream(), pa.schema([field])).close()
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
            return column_error(
                field.name,
                type_name(field),
                "has no Parquet form",
                f"Cast it in the model, e.g. CAST({field.name} AS VARCHAR), or export csv or json",
            )
    return S3ExportError(f"cannot write this model as Parquet: {error}")


@functools.lru_cache(maxsize=64)
def _check_parquet_schema(schema: pa.Schema, options: tuple[tuple[str, Any], ...]) -> None:
    """Fail on a schema or option Parquet cannot take, before any file is started.

    A writer to a throwaway buffer is the check; it costs as much as opening a file,
    so a folder export's files (one per partition, all of one schema) pay it once.
    Only schemas that passed are remembered: a failure is raised every time.
    """
    try:
        pq.ParquetWriter(pa.BufferOutputStream(), schema, **dict(options)).close()
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as e:
        raise _parquet_type_error(schema, e) from e


class ParquetFormatWriter:
    def __init__(self, opts: FormatOptions, schema: pa.Schema, sink: BinaryIO) -> None:
        self._rows_per_group = opts.row_group_size
        self._schema = schema
        self._sink = sink
        self._kwargs: dict[str, Any] = {
            "compression": opts.codec,
            "max_rows_per_page": MAX_ROWS_PER_PAGE,
        }
        if opts.compression_level is not None:
            self._kwargs["compression_level"] = opts.compression_level
        # Opened with the first row group, whose rows pick the dictionary columns.
        self._writer: pq.ParquetWriter | None = None
        _check_parquet_schema(schema, tuple(sorted(self._kwargs.items())))
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= self._rows_per_group or self._pending_bytes >= MAX_ROW_GROUP_BYTES:
            self._flush()

    def _open(self, first: pa.Table) -> pq.ParquetWriter:
        """The file's writer, opened on its first rows (they pick the dictionary columns)."""
        kwargs = {**self._kwargs, "use_dictionary": dictionary_columns(first)}
        try:
            return pq.ParquetWriter(self._sink, self._schema, **kwargs)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as e:
            raise _parquet_type_error(self._schema, e) from e

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.Table.from_batches(self._pending)
        self._pending, self._pending_rows, self._pending_bytes = [], 0, 0
        if self._writer is None:
            self._writer = self._open(table)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))

    def close(self) -> None:
        self._flush()
        if self._writer is None:  # no rows: a file that holds just the schema
            self._writer = self._open(self._schema.empty_table())
        self._writer.close()


class _TextStream:
    """The sink as an Arrow stream, compressed when the export asks for it."""

    def __init__(self, sink: BinaryIO, codec: str) -> None:
        raw = pa.PythonFile(sink, mode="w")
        self.stream: pa.NativeFile = (
            raw if codec == "none" else pa.CompressedOutputStream(raw, codec)
        )

    def close(self) -> None:
        self.stream.close()


def _has_empty_string(column: pa.Array | pa.ChunkedArray) -> bool:
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return False
    return bool(pc.any(pc.equal(pc.binary_length(column), 0)).as_py())


# Schema metadata CsvRender puts on a batch that holds no empty string: neither do the
# batch's slices (its partitions' files), which then need not be looked at again.
NO_EMPTY_STRINGS = {b"dbt_s3_export.csv": b"no empty strings"}


def _may_hold_empty_strings(data: pa.RecordBatch) -> bool:
    if data.schema.metadata == NO_EMPTY_STRINGS:
        return False
    return any(_has_empty_string(c) for c in data.columns)


class CsvRender:
    """A batch as CSV holds it: every column CSV cannot hold as it is, as text.

    Temporal and float columns are judged per batch; nested values, intervals and
    binaries are rendered by DuckDB in every batch (as JSON, text and base64).
    """

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self.sql = {
            i: always_sql(quote_identifier(f.name), f.type, csv=True) for i, f in enumerate(schema)
        }
        self._temporal = [
            i
            for i, f in enumerate(schema)
            if pa.types.is_timestamp(f.type)
            or pa.types.is_date32(f.type)
            or pa.types.is_time(f.type)
        ]
        self._floats = [i for i, f in enumerate(schema) if pa.types.is_floating(f.type)]
        self._render = Renderer()

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        rendered: dict[int, pa.Array] = {}
        sql = dict(self.sql)
        for i in self._temporal:
            field = self._schema.field(i)
            text, expr = temporal_text(quote_identifier(field.name), field.type, batch.column(i))
            if text is not None:
                rendered[i] = text
            elif expr is not None:
                sql[i] = expr
        for i in self._floats:
            text = float_text(batch.column(i))
            if text is not None:
                rendered[i] = text
        via_sql = [i for i, expr in sql.items() if expr and i not in rendered]
        if via_sql:
            names = [self._schema.field(i).name for i in via_sql]
            exprs = ", ".join(
                f"{sql[i]} AS {quote_identifier(n)}" for i, n in zip(via_sql, names, strict=True)
            )
            texts = self._render(batch.select(via_sql), exprs)
            for i, name in zip(via_sql, names, strict=True):
                rendered[i] = texts.column(name).combine_chunks()
        if rendered:
            columns = [rendered.get(i, batch.column(i)) for i in range(batch.num_columns)]
            batch = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
        if not _may_hold_empty_strings(batch):
            batch = batch.replace_schema_metadata(NO_EMPTY_STRINGS)
        return batch


class CsvFormatWriter:
    """CSV with a header line; values quoted only in batches that need it.

    Arrow quotes every string when asked to quote "as needed". Where a batch has
    no value with the delimiter, a quote or a line break, and no empty string
    (which only quotes tell from NULL), it is written with no quotes at all; the
    first batch that needs them switches the file to quoting every string.

    With ``rendered`` (the CsvRender of the export), ``write`` takes batches it made
    already: a folder export renders each batch once, before cutting it into its
    partitions' files.
    """

    def __init__(
        self,
        opts: FormatOptions,
        schema: pa.Schema,
        sink: BinaryIO,
        *,
        rendered: CsvRender | None = None,
    ) -> None:
        self._schema = schema
        render = rendered or CsvRender(schema)
        self._render = None if rendered else render
        self._out = _TextStream(sink, opts.codec)
        self._quoted = pacsv.WriteOptions(include_header=False, delimiter=opts.csv_delimiter)
        self._plain = pacsv.WriteOptions(
            include_header=False, delimiter=opts.csv_delimiter, quoting_style="none"
        )
        # Values rendered as JSON or text by DuckDB are quoted from the start.
        self._try_plain = not any(render.sql.values())
        if opts.csv_header:
            self._out.stream.write(self._header(opts.csv_delimiter))
        self._encoder: OrderedEncoder[Encoded] = OrderedEncoder(self._encode, self._emit)

    def _header(self, delimiter: str) -> bytes:
        """The column names, each quoted only if it must be."""
        special = ('"', "\n", "\r", delimiter)
        names = [
            '"' + n.replace('"', '""') + '"' if not n or any(c in n for c in special) else n
            for n in self._schema.names
        ]
        return (delimiter.join(names) + "\n").encode()

    def _encode(self, batch: pa.RecordBatch) -> Encoded:
        data = batch if self._render is None else self._render(batch)
        if self._try_plain and not _may_hold_empty_strings(data):
            buf = pa.BufferOutputStream()
            try:
                pacsv.write_csv(data, buf, write_options=self._plain)
                return [buf.getvalue()]
            except pa.ArrowInvalid:
                self._try_plain = False  # this file's strings need quotes
        buf = pa.BufferOutputStream()
        pacsv.write_csv(data, buf, write_options=self._quoted)
        return [buf.getvalue()]

    def _emit(self, pieces: Encoded) -> None:
        for piece in pieces:
            self._out.stream.write(piece)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._encoder.submit(batch)

    def close(self) -> None:
        self._encoder.finish()
        self._out.close()


def _string_bytes(chunk: pa.Array) -> pa.Buffer:
    """The concatenated UTF-8 bytes of a string array without nulls, zero-copy."""
    width = 8 if pa.types.is_large_string(chunk.type) else 4
    offsets = chunk.buffers()[1]
    first = int.from_bytes(offsets.slice(chunk.offset * width, width).to_pybytes(), "little")
    last = int.from_bytes(
        offsets.slice((chunk.offset + len(chunk)) * width, width).to_pybytes(), "little"
    )
    return chunk.buffers()[2].slice(first, last - first)


class JsonRender:
    """A batch as JSON text: one ``line`` column, each row's object with its separator.

    DuckDB's ``to_json`` renders each row. Whole-second timestamps get their ISO
    8601 text from Arrow beforehand, and floats are checked for NaN and infinities
    only where a batch has some; both measured cheaper than doing the same per row
    in SQL. Each row carries its separator (``jsonl``: a newline after it; ``json``:
    ``,\\n`` before it, the file's first one dropped), so the bytes of any run of
    rows are its slice of the column's data: a file's share is cut out, not joined.
    """

    def __init__(self, opts: FormatOptions, schema: pa.Schema) -> None:
        self.lines = opts.file_format == "jsonl"
        self._schema = schema
        self._render = Renderer()

    def _row_sql(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, str]:
        """The batch (whole-second timestamps as ISO text) and the SQL of its JSON rows."""
        columns = list(batch.columns)
        fields = []
        for i, f in enumerate(self._schema):
            col = quote_identifier(f.name)
            expr: str | None = None
            if is_raw_json(f):
                expr = f"CAST({col} AS JSON)"  # JSON text the source made: embed it as is
            elif pa.types.is_timestamp(f.type) or pa.types.is_date32(f.type):
                text, expr = temporal_text(col, f.type, columns[i])
                if text is not None:
                    columns[i] = text
            elif pa.types.is_floating(f.type) or pa.types.is_nested(f.type):
                check_finite(f, columns[i])
            elif pa.types.is_decimal(f.type):
                check_decimal_digits(f, columns[i])
            else:
                expr = always_sql(col, f.type, csv=False)
            fields.append(f"{col} := {expr or col}")
        row = f"to_json(struct_pack({', '.join(fields)}))::VARCHAR" if fields else "'{}'"
        # The separator joined in the same projection: one copy of the text, not three.
        line = f"{row} || chr(10)" if self.lines else f"',' || chr(10) || {row}"
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names), f"{line} AS line"

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        data, select = self._row_sql(batch)
        lines = self._render(data, select).column(0).combine_chunks()
        return pa.RecordBatch.from_arrays([lines], names=["line"])


class JsonFormatWriter:
    """``json``: one array of objects per file; ``jsonl``: one object per line.

    With ``rendered`` (the JsonRender of the export), ``write`` takes batches it made
    already: a folder export renders each batch once, before cutting it into its
    partitions' files.
    """

    def __init__(
        self,
        opts: FormatOptions,
        schema: pa.Schema,
        sink: BinaryIO,
        *,
        rendered: JsonRender | None = None,
    ) -> None:
        render = rendered or JsonRender(opts, schema)
        self._lines = render.lines
        self._render = None if rendered else render
        self._out = _TextStream(sink, opts.codec)
        self._first = True
        self._encoder: OrderedEncoder[Encoded] = OrderedEncoder(self._encode, self._emit)

    def _encode(self, batch: pa.RecordBatch) -> Encoded:
        lines = batch if self._render is None else self._render(batch)
        return [_string_bytes(lines.column(0))]

    def _emit(self, pieces: Encoded) -> None:
        for data in pieces:
            if self._first and not self._lines:
                self._out.stream.write(b"[")
                data = data.slice(1)  # the first row's ",\n" becomes "[\n"
            self._first = False
            self._out.stream.write(data)

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        if self._render is None:  # rendered already: its bytes are there, uncopied
            self._emit(self._encode(batch))
        else:
            self._encoder.submit(batch)

    def close(self) -> None:
        self._encoder.finish()
        if not self._lines:
            self._out.stream.write(b"[]\n" if self._first else b"\n]\n")
        self._out.close()


def text_render(opts: FormatOptions, schema: pa.Schema) -> Render | None:
    """What a text format renders of each batch before it is cut into files; None for
    Parquet (its writer takes Arrow as it is)."""
    if opts.file_format == "csv":
        return CsvRender(schema)
    if opts.file_format in ("json", "jsonl"):
        return JsonRender(opts, schema)
    return None


def open_writer(
    opts: FormatOptions, schema: pa.Schema, sink: BinaryIO, *, rendered: Render | None = None
) -> FormatWriter:
    """A writer of ``opts.file_format``; ``rendered``: the ``text_render`` the batches
    ``write`` takes were made by."""
    if opts.file_format == "parquet":
        return ParquetFormatWriter(opts, schema, sink)
    if opts.file_format == "csv":
        assert rendered is None or isinstance(rendered, CsvRender)
        return CsvFormatWriter(opts, schema, sink, rendered=rendered)
    if opts.file_format in ("json", "jsonl"):
        assert rendered is None or isinstance(rendered, JsonRender)
        return JsonFormatWriter(opts, schema, sink, rendered=rendered)
    raise S3ExportError(f"unsupported file_format {opts.file_format!r}")
