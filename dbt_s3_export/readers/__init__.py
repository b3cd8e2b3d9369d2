"""Read a folder export back as exactly one committed generation: the files its manifest lists.

A folder export's ``_manifest.json`` is replaced at the commit, so a reader that
takes its list of files, rather than a listing of the folder, never sees a run's new
files beside the old ones (during a run both are there) or an old set that the
clean-up has half deleted. ``files`` returns that list; ``dataset`` makes a
``pyarrow.dataset`` of it, with the partition columns taken from the folder names as
Hive would. A reader that started on one generation may still fail with a missing
file if a later run's clean-up deletes it mid-read: it fails, it does not mix, and a
second try reads the new generation (docs/reading.md).

May import ``errors`` and ``commit`` (for the manifest's name), and pyarrow; never
boto3: it reads through a pyarrow (or fsspec) filesystem the caller may give.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from ..commit.ownership import MANIFEST_NAME
from ..errors import ExportFailed

# The pyarrow format each file format's files are read as (JSON arrays have none).
_FORMATS = {"parquet": "parquet", "csv": "csv", "jsonl": "json"}


class NotAnExport(ExportFailed):
    """The location holds no manifest this reader can follow."""


@dataclass(frozen=True)
class ExportFiles:
    """One committed generation of a folder export: its files and how to read them."""

    uri: str  # the export's folder, ending in '/'
    generation: str
    file_format: str
    partition_cols: tuple[str, ...]
    partition_types: tuple[str, ...]
    paths: tuple[str, ...]  # as the filesystem names them ('bucket/key' for S3)
    manifest: dict[str, Any]

    @property
    def uris(self) -> list[str]:
        """The files as URIs (``s3://bucket/key``), for engines that take a list."""
        scheme = self.uri.split("://", 1)[0] + "://" if "://" in self.uri else ""
        return [scheme + p for p in self.paths]


def _split(uri: str, filesystem: Any) -> tuple[Any, str]:
    """The filesystem and the folder's path on it (``bucket/prefix/`` for S3)."""
    if not uri.endswith("/"):
        uri += "/"
    if filesystem is not None:
        return filesystem, uri.split("://", 1)[1] if "://" in uri else uri
    fs, path = pafs.FileSystem.from_uri(uri)
    return fs, path.rstrip("/") + "/"


def _read(filesystem: Any, path: str) -> bytes:
    if hasattr(filesystem, "open_input_stream"):  # a pyarrow filesystem
        with filesystem.open_input_stream(path) as stream:
            return bytes(stream.read())
    with filesystem.open(path, "rb") as handle:  # an fsspec one
        return bytes(handle.read())


def files(uri: str, filesystem: Any = None) -> ExportFiles:
    """The files of the generation the export at ``uri`` (``s3://bucket/prefix/``) commits now.

    ``filesystem`` (pyarrow or fsspec) reaches the bucket; without it pyarrow makes
    one from the URI and the environment (``AWS_*``, ``AWS_ENDPOINT_URL``).
    """
    fs, folder = _split(uri, filesystem)
    location = uri.rstrip("/") + "/" + MANIFEST_NAME
    try:
        body = json.loads(_read(fs, folder + MANIFEST_NAME))
    except (FileNotFoundError, OSError) as e:
        raise NotAnExport(
            f"{location} could not be read ({e}). Check the URI: it names the export's folder "
            "(key ending in '/'); a single-object export is read as that one object"
        ) from e
    except ValueError as e:
        raise NotAnExport(f"{location} is not JSON ({e}): it is no export's manifest") from e
    if not isinstance(body, dict) or not isinstance(body.get("files"), list):
        raise NotAnExport(f"{location} lists no files: it is no export's manifest")
    # Keys are relative to the bucket; the manifest says which folder of it is the export.
    destination = str(body.get("destination") or "")
    prefix = destination.split("://", 1)[1].split("/", 1)[1] if "://" in destination else ""
    paths = []
    for entry in body["files"]:
        key = str(entry["key"])
        if not key.startswith(prefix):
            raise NotAnExport(f"{location} lists {key!r}, which is outside {destination}")
        paths.append(folder + key[len(prefix) :])
    return ExportFiles(
        uri=uri if uri.endswith("/") else uri + "/",
        generation=str(body.get("generation")),
        file_format=str(body.get("file_format")),
        partition_cols=tuple(body.get("partition_cols") or ()),
        partition_types=tuple(body.get("partition_types") or ()),
        paths=tuple(paths),
        manifest=body,
    )


def dataset(uri: str, filesystem: Any = None, **options: Any) -> ds.Dataset:
    """A ``pyarrow.dataset`` of exactly the files the export's manifest lists now.

    Partition columns come from the folder names (Hive's ``col=value``), typed as the
    export recorded them. ``options`` go to ``pyarrow.dataset.dataset`` (``schema``,
    a ``format`` object with CSV parse options, ...).
    """
    found = files(uri, filesystem)
    fmt = _FORMATS.get(found.file_format)
    if fmt is None:
        raise NotAnExport(
            f"{found.uri} holds {found.file_format} files, which pyarrow cannot read as a "
            "dataset (a JSON array per file): read each listed file with json.load"
        )
    fs = filesystem if filesystem is not None else _split(uri, None)[0]
    if found.partition_cols:
        options.setdefault("partitioning", ds.partitioning(_partition_schema(found), flavor="hive"))
        options.setdefault("partition_base_dir", _split(uri, fs)[1])
    return ds.dataset(
        list(found.paths), filesystem=fs, format=options.pop("format", fmt), **options
    )


def _partition_schema(found: ExportFiles) -> pa.Schema:
    """The partition columns with the types the export recorded (text where unknown)."""
    fields = []
    for i, col in enumerate(found.partition_cols):
        typ: pa.DataType = pa.string()
        if i < len(found.partition_types):
            try:
                typ = pa.type_for_alias(found.partition_types[i].split("[", 1)[0])
            except ValueError:
                typ = pa.string()
        fields.append(pa.field(col, typ))
    return pa.schema(fields)


__all__ = ["ExportFiles", "NotAnExport", "dataset", "files"]
