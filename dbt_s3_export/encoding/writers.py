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
        self._open(None)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_bytes += batch.nbytes
        if self._pending_rows >= self._rows_per_group or self._pending_bytes >= MAX_ROW_GROUP_BYTES:
            self._flush()

    def _open(self, first: pa.Table | None) -> pq.ParquetWriter:
        """Check the schema up front (first is None); open for real on the first rows."""
        kwargs = dict(self._kwargs)
        if first is not None:
            kwargs["use_dictionary"] = dictionary_columns(first)
        sink: Any = self._sink if first is not None else pa.BufferOutputStream()
        try:
            writer = pq.ParquetWriter(sink, self._schema, **kwargs)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as e:
            raise _parquet_type_error(self._schema, e) from e
        if first is None:
            writer.close()
        return writer

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


class CsvFormatWriter:
    """CSV with a header line; values quoted only in batches that need it.

    Arrow quotes every string when asked to quote "as needed". Where a batch has
    no value with the delimiter, a quote or a line break, and no empty string
    (which only quotes tell from NULL), it is written with no quotes at all; the
    first batch that needs them switches the file to quoting every string.
    """

    def __init__(self, opts: FormatOptions, schema: pa.Schema, sink: BinaryIO) -> None:
        self._schema = schema
        # Columns DuckDB renders in every batch: nested values as JSON, intervals as
        # text, binaries as base64. Temporal and float columns are looked at per batch.
        self._sql = {
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
        self._out = _TextStream(sink, opts.codec)
        self._quoted = pacsv.WriteOptions(include_header=False, delimiter=opts.csv_delimiter)
        self._plain = pacsv.WriteOptions(
            include_header=False, delimiter=opts.csv_delimiter, quoting_style="none"
        )
        # Values rendered as JSON or text by DuckDB are quoted from the start.
        self._try_plain = not any(self._sql.values())
        if opts.csv_header:
            self._out.stream.write(self._header(opts.csv_delimiter))
        self._encoder = OrderedEncoder(self._encode, self._emit)

    def _header(self, delimiter: str) -> bytes:
        """The column names, each quoted only if it must be."""
        special = ('"', "\n", "\r", delimiter)
        names = [
            '"' + n.replace('"', '""') + '"' if not n or any(c in n for c in special) else n
            for n in self._schema.names
        ]
        return (delimiter.join(names) + "\n").encode()

    def _text_columns(self, batch: pa.RecordBatch) -> pa.RecordBatch | pa.Table:
        """The batch with every column that CSV cannot hold as it is rendered as text."""
        rendered: dict[int, pa.Array] = {}
        sql = dict(self._sql)
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
        if not rendered:
            return batch
        columns = [rendered.get(i, batch.column(i)) for i in range(batch.num_columns)]
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)

    def _encode(self, batch: pa.RecordBatch) -> Encoded:
        data = self._text_columns(batch)
        if self._try_plain and not any(_has_empty_string(c) for c in data.columns):
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
        try:
            self._encoder.finish()
            self._out.close()
        finally:
            self._render.close()


def _string_bytes(chunk: pa.Array) -> pa.Buffer:
    """The concatenated UTF-8 bytes of a string array without nulls, zero-copy."""
    width = 8 if pa.types.is_large_string(chunk.type) else 4
    offsets = chunk.buffers()[1]
    first = int.from_bytes(offsets.slice(chunk.offset * width, width).to_pybytes(), "little")
    last = int.from_bytes(
        offsets.slice((chunk.offset + len(chunk)) * width, width).to_pybytes(), "little"
    )
    return chunk.buffers()[2].slice(first, last - first)


class JsonFormatWriter:
    """``json``: one array of objects per file; ``jsonl``: one object per line.

    DuckDB's ``to_json`` renders each row. Per batch, whole-second timestamps get
    their ISO 8601 text from Arrow beforehand, and floats are checked for NaN and
    infinities only where a batch has some; the lines are then joined by Arrow.
    Both measured cheaper than doing the same per row in SQL.
    """

    def __init__(self, opts: FormatOptions, schema: pa.Schema, sink: BinaryIO) -> None:
        self._lines = opts.file_format == "jsonl"
        self._schema = schema
        # Rows are joined by the separator; a batch starts with one too (for json the
        # very first is dropped) and, for jsonl, ends with a newline.
        self._sep = "\n" if self._lines else ",\n"
        self._head = b"" if self._lines else b",\n"
        self._tail = b"\n" if self._lines else b""
        self._render = Renderer()
        self._out = _TextStream(sink, opts.codec)
        self._first = True
        self._encoder = OrderedEncoder(self._encode, self._emit)

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
        row = f"to_json(struct_pack({', '.join(fields)}))" if fields else "'{}'"
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names), f"{row} AS line"

    def _encode(self, batch: pa.RecordBatch) -> Encoded:
        data, select = self._row_sql(batch)
        rows = self._render(data, select).column(0).combine_chunks().cast(pa.large_string())
        one = pa.LargeListArray.from_arrays(pa.array([0, len(rows)], pa.int64()), rows)
        joined = pc.binary_join(one, pa.scalar(self._sep, pa.large_string()))
        return [pa.py_buffer(self._head), _string_bytes(joined), pa.py_buffer(self._tail)]

    def _emit(self, pieces: Encoded) -> None:
        for data in pieces:
            if self._first and not self._lines:
                self._out.stream.write(b"[\n")
                data = data.slice(2)  # drop the leading ",\n"
            self._first = False
            self._out.stream.write(data)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._encoder.submit(batch)

    def close(self) -> None:
        try:
            self._encoder.finish()
            if not self._lines:
                self._out.stream.write(b"[]\n" if self._first else b"\n]\n")
            self._out.close()
        finally:
            self._render.close()


def open_writer(opts: FormatOptions, schema: pa.Schema, sink: BinaryIO) -> FormatWriter:
    if opts.file_format == "parquet":
        return ParquetFormatWriter(opts, schema, sink)
    if opts.file_format == "csv":
        return CsvFormatWriter(opts, schema, sink)
    if opts.file_format in ("json", "jsonl"):
        return JsonFormatWriter(opts, schema, sink)
    raise S3ExportError(f"unsupported file_format {opts.file_format!r}")
