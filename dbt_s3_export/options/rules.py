"""How an export's options fit together. No I/O happens here.

Each option's own value has been read and checked by then (``options/values.py``);
``check_rules`` is the one place for what depends on more than one option.
"""

from __future__ import annotations

import re
import string
from typing import Any

from . import table as spec
from .formats import FORMATS, TABLE_FORMATS, compression_suffix, is_typed
from .table_options import iceberg_rules, read_glue
from .values import MAX_KEY_BYTES, Reader, is_folder

# The longest text each filename_template placeholder renders to ({model}: checked
# when the key is made).
_FIELD_BYTES = {"model": 0, "run_id": 24, "part": 5, "invocation_id": 36, "date": 10}
# Partition column names go into paths unescaped: DuckDB does not percent-decode
# the name part of ``name=value``, so only characters no reader escapes are allowed.
_PARTITION_NAME_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)


def check_rules(r: Reader, kw: dict[str, Any]) -> None:
    """Every rule between options, in order; the first broken one raises ``ConfigError``.

    ``kw`` holds the options read so far; the rules add ``catalog`` and ``glue``.
    """
    fmt, key, cols = kw["file_format"], kw["key"], kw.get("partition_cols", ())
    folder = is_folder(kw)
    table = fmt in TABLE_FORMATS
    mode = kw.get("mode", "replace")
    codec = kw.get("compression")

    # Partition columns become folder names, which every reader must read back as written.
    if fmt != "iceberg":
        for col in cols:
            partition_name(r, col)
    # Compression levels depend on the format and the codec (codecs on the format: config).
    if kw.get("compression_level") is not None and (
        not is_typed(fmt) or codec not in ("zstd", "gzip", "brotli")
    ):
        raise r.fail(
            "compression_level",
            "applies to parquet files with zstd, gzip or brotli compression, "
            f"not {fmt} with {codec or 'the default codec'}",
            "Set compression to one of those, or drop compression_level",
        )
    timeouts_add_up(r, kw)
    # The key: a folder, a table's location, or one object named for its format.
    if key == "" and not cols:
        raise r.fail("key", "must not be empty")
    if not folder and not table:
        if kw.get("max_rows_per_file"):
            raise r.fail(
                "key",
                f"names one object ({key!r}) but max_rows_per_file splits the output into files",
                f"End the key with '/' (e.g. {key.rsplit('.', 1)[0]!r}/) to export into a folder",
            )
        extension_fits(r, key, fmt, codec)
    credentials_fit(r, kw)
    if kw.get("sse_kms_key_id") is not None and not (kw.get("sse") or "").startswith("aws:kms"):
        raise r.fail("sse_kms_key_id", "needs sse: aws:kms", "Set sse: aws:kms as well")
    # Files of a folder: their names, and the manifest that says which are this export's.
    if r.given("filename_template") and not folder:
        raise r.fail(
            "filename_template",
            f"names the files of a folder export, but key {key!r} names one object",
            "End the key with '/' or drop filename_template",
        )
    if kw.get("symlink_manifests") and not folder:
        raise r.fail(
            "symlink_manifests",
            f"lists the files of a folder export for Hive readers, but key {key!r} names one "
            "object, which any reader sees whole",
            "End the key with '/' to export into a folder, or drop the option",
        )
    if kw.get("symlink_manifests") and fmt == "json":
        raise r.fail(
            "symlink_manifests",
            "Hive readers take a JSON file as one record per line, and file_format json "
            "writes one array per file",
            "Use file_format jsonl, or drop the option",
        )
    if folder:
        names_fit(r, kw)
        if kw.get("manifest") is False:
            raise r.fail(
                "manifest",
                "cannot be false for a folder export: the manifest is how a run knows "
                "which files are its own",
                "Drop the option",
            )
    if mode == "append" and not (folder or table):
        raise r.fail(
            "mode",
            f"append adds files beside earlier ones, but key {key!r} names one object",
            "End the key with '/' to export into a folder",
        )
    if mode == "overwrite_partitions" and not cols:
        raise r.fail(
            "mode",
            "overwrite_partitions replaces the partitions this run writes, but "
            "partition_cols is not set",
            "Set partition_cols, or use mode replace",
        )
    # Options of another kind of destination: file options on tables and the reverse.
    for option in spec.OPTIONS:
        if r.given(option.name) and fmt not in option.formats:
            raise r.fail(option.name, *formats_problem(option.name, fmt))
    if table and (not key or key == "/"):
        raise r.fail(
            "key",
            f"a {fmt} table needs a folder of its own for its location, not the bucket root",
            "Set key to a folder such as 'lake/orders/'",
        )
    if fmt == "iceberg":
        iceberg_rules(r, kw)
    kw["glue"] = read_glue(r, kw)


def formats_problem(name: str, fmt: str) -> tuple[str, str]:
    """Why option ``name`` does not go with ``file_format: fmt``, and what to do."""
    if name == "glue":
        fix = {
            "iceberg": "An iceberg table registers itself: use catalog: {type: glue}",
            "json": "Use file_format jsonl: Hive readers take one JSON object per line",
        }.get(fmt, f"Glue registration is for {', '.join(spec.GLUE_FORMATS)} exports")
        return f"cannot register a {fmt} export", fix
    if spec.BY_NAME[name].formats == ("iceberg",):
        delta = (
            "; a delta table is named by its location (bucket and key)" if fmt == "delta" else ""
        )
        return (
            f"names an Iceberg table in a catalog, but file_format is {fmt}",
            "Use file_format iceberg, or drop the option" + delta,
        )
    writer = "pyiceberg" if fmt == "iceberg" else "delta-rs"
    return (
        f"shapes the files of a file export; {fmt} tables are written by {writer}, "
        "which do not take it",
        "Drop the option",
    )


def partition_name(r: Reader, col: str) -> None:
    """A partition column name must read back as itself in every Hive reader."""
    bad = sorted({ch for ch in col if ord(ch) < 0x80 and ch not in _PARTITION_NAME_SAFE})
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        safe = re.sub(r"[^A-Za-z0-9_]+", "_", col).strip("_") or "part"
        raise r.fail(
            "partition_cols",
            f"column name {col!r} contains {shown}, which would have to be escaped in the "
            "directory name, and DuckDB does not unescape partition names",
            f"Rename the column in the model (e.g. AS {safe}) and partition by that",
        )
    if col[0] in "_.":
        raise r.fail(
            "partition_cols",
            f"column name {col!r} starts with {col[0]!r}; pyarrow, Spark and Athena skip "
            f"directories whose names start with '_' or '.', so those rows would be lost",
            f"Rename the column in the model (e.g. AS {col.lstrip('_.') or 'part'}) "
            "and partition by that",
        )


def timeouts_add_up(r: Reader, kw: dict[str, Any]) -> None:
    connect, read, total = (
        float(kw.get(name, spec.BY_NAME[name].default) or 0)
        for name in ("connect_timeout", "read_timeout", "total_timeout")
    )
    if total < connect + read:
        raise r.fail(
            "total_timeout",
            f"is {total:g} s, less than one attempt may take (connect_timeout {connect:g} s "
            f"+ read_timeout {read:g} s)",
            f"Set total_timeout to at least {connect + read:g}",
        )


def credentials_fit(r: Reader, kw: dict[str, Any]) -> None:
    has_id = kw.get("access_key_id") is not None
    has_secret = kw.get("secret_access_key") is not None
    if has_id != has_secret:
        pair = ("access_key_id", "secret_access_key")
        given, missing = pair if has_id else pair[::-1]
        raise r.fail(missing, f"is missing while {given} is set", "Give both or neither")
    if kw.get("session_token") is not None and not has_id:
        raise r.fail("session_token", "needs access_key_id and secret_access_key", "Give all three")
    if has_id and kw.get("profile_name") is not None:
        raise r.fail(
            "profile_name",
            "cannot be combined with access_key_id/secret_access_key",
            "Use either a named profile or explicit keys",
        )
    for name in ("external_id", "role_session_name"):
        if kw.get(name) is not None and kw.get("role_arn") is None:
            raise r.fail(name, "only applies when role_arn is set", "Set role_arn too")


def names_fit(r: Reader, kw: dict[str, Any]) -> None:
    """The longest name the template renders must fit in a key under the prefix."""
    template = kw.get("filename_template", spec.BY_NAME["filename_template"].default)
    longest = 0
    for literal, name, _, _ in string.Formatter().parse(str(template)):
        longest += len(literal.encode()) + _FIELD_BYTES.get(name or "", 0)
    key = kw["key"]
    prefix = key if key.endswith("/") or key == "" else key + "/"
    ext = FORMATS[kw["file_format"]].extensions[0] + ".zst"  # the longest extension
    size = len(prefix.encode()) + longest + len(ext)
    if size > MAX_KEY_BYTES:
        raise r.fail(
            "filename_template",
            f"makes file names of up to {longest} bytes, so keys under {prefix[:40]!r} would "
            f"be up to {size} bytes, over S3's {MAX_KEY_BYTES}-byte limit",
            "Shorten the template (or 'key')",
        )


def extension_fits(r: Reader, key: str, fmt: str, codec: str | None) -> None:
    """A single object's name ends with its format's extension and codec's suffix."""
    name = key.rsplit("/", 1)[-1].lower()
    suffix = compression_suffix(fmt, codec)
    extensions = FORMATS[fmt].extensions
    if suffix and not name.endswith(suffix):
        raise r.fail(
            "key",
            f"{key!r} is {codec}-compressed but does not end with {suffix}",
            f"End the key with {extensions[0]}{suffix}",
        )
    if suffix:
        name = name[: -len(suffix)]
    if any(name.endswith(ext) for ext in extensions):
        if suffix == "" and (name.endswith(".gz") or name.endswith(".zst")):
            raise r.fail("key", f"{key!r} ends like a compressed file but compression is not set")
        return
    wanted = " or ".join(e + suffix for e in extensions)
    for other in FORMATS.values():
        if other.name != fmt and any(name.endswith(e) for e in other.extensions):
            raise r.fail(
                "key",
                f"{key!r} has a {other.name} extension but file_format is {fmt!r}",
                f"End the key with {wanted}, or change file_format",
            )
    raise r.fail(
        "key",
        f"{key!r} does not end with {wanted}",
        f"Name the object with that extension, or end the key with '/' to export "
        f"{fmt} files into a folder",
    )
