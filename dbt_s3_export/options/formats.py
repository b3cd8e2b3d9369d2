"""The file formats in one table: extensions, codecs, compression suffixes, content types.

config (which keys and codecs a format accepts), writers (the codec names Arrow
takes) and export (the Content-Type of each object) read this table, so a
format's facts are written down once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Format:
    """One file format and what goes with it."""

    name: str
    # Extensions a single-object key may end with. The first is the one given to
    # files the export names itself.
    extensions: tuple[str, ...]
    # Values of `compression`, as Arrow names the codecs.
    codecs: tuple[str, ...]
    default_codec: str
    # True when a codec compresses the whole file (and adds a suffix to its name);
    # Parquet compresses inside the format and keeps its extension. A format without
    # them holds typed values (Parquet, and the tables made of Parquet files); the
    # others hold text (encoding/typemap.py renders values for them).
    whole_file_codecs: bool
    # A table format (Iceberg, Delta): written through its own log (tables/common.py),
    # not as files under a manifest.
    table: bool = False


TEXT_CODECS = ("none", "gzip", "zstd")
PARQUET_CODECS = ("none", "snappy", "zstd", "gzip", "lz4", "brotli")

FORMATS: dict[str, Format] = {
    "csv": Format("csv", (".csv", ".tsv", ".txt"), TEXT_CODECS, "none", True),
    "parquet": Format("parquet", (".parquet", ".pq"), PARQUET_CODECS, "snappy", False),
    "json": Format("json", (".json",), TEXT_CODECS, "none", True),
    "jsonl": Format("jsonl", (".jsonl", ".ndjson"), TEXT_CODECS, "none", True),
    # Parquet data files under a table's log; pyiceberg's default codec is zstd.
    "iceberg": Format("iceberg", (".parquet",), PARQUET_CODECS, "zstd", False, table=True),
    "delta": Format("delta", (".parquet",), PARQUET_CODECS, "snappy", False, table=True),
}
FILE_FORMATS = tuple(FORMATS)


def is_typed(file_format: str) -> bool:
    """Whether the format stores typed values (Parquet files, Iceberg and Delta tables)."""
    return not FORMATS[file_format].whole_file_codecs


TABLE_FORMATS = tuple(name for name, f in FORMATS.items() if f.table)

# The suffix a whole-file codec adds to a name (orders.csv.gz).
COMPRESSION_SUFFIX = {"gzip": ".gz", "zstd": ".zst"}

# Content-Type by extension. A compressed text file is a gzip or zstd file, with
# no Content-Encoding: with one, HTTP clients would silently decompress a
# ``.csv.gz`` download and save plain text under a ``.gz`` name.
CONTENT_TYPES = {
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".txt": "text/plain",
    ".parquet": "application/vnd.apache.parquet",
    ".pq": "application/vnd.apache.parquet",
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".gz": "application/gzip",
    ".zst": "application/zstd",
}


def compression_suffix(file_format: str, codec: str | None) -> str:
    """``.gz``/``.zst`` for a whole-file codec of a text format, else nothing."""
    if not FORMATS[file_format].whole_file_codecs:
        return ""
    return COMPRESSION_SUFFIX.get(codec or "", "")


def file_extension(file_format: str, codec: str) -> str:
    """The extension of files the export names itself: ``.csv.gz``, ``.parquet``, ..."""
    return FORMATS[file_format].extensions[0] + compression_suffix(file_format, codec)


def content_type(key: str, file_format: str) -> str:
    """The Content-Type of an object by its key's extension, else by its format."""
    name = key.rsplit("/", 1)[-1].lower()
    dot = name.rfind(".")
    if dot >= 0 and name[dot:] in CONTENT_TYPES:
        return CONTENT_TYPES[name[dot:]]
    return CONTENT_TYPES[FORMATS[file_format].extensions[0]]
