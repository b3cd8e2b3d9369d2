"""Parse and validate an export configuration. No I/O happens here.

An export is described by a mapping: the model's ``meta.s3_export`` entry laid
over the defaults from the profile's plugin config. ``ExportConfig.parse``
checks all of it before one row is read or one byte is sent, in three steps,
each derived from the one option table (``table.py``):

1. the names: an unknown option fails with the closest known names, and an
   option that changes the output on another adapter only fails as such;
2. each value, by its type, choices and bounds and its own check
   (``options/values.py``);
3. how the values fit together (``options/rules.py``), tables and Glue
   registration included (``options/table_options.py``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from ..errors import ConfigError
from . import table as spec
from .formats import FORMATS, TABLE_FORMATS, file_extension
from .rules import check_rules
from .table_options import (
    CatalogConfig,
    GlueTarget,
    PartitionField,
    catalog_secret_values,
    layered_mappings,
    parse_partition_field,
    partition_fields,
)
from .values import MAX_KEY_BYTES, TEMPLATE_FIELDS, Reader

__all__ = [
    "MAX_KEY_BYTES",
    "SECRET_OPTIONS",
    "TEMPLATE_FIELDS",
    "CatalogConfig",
    "Checksums",
    "ConfigError",
    "ExportConfig",
    "GlueTarget",
    "PartitionField",
    "catalog_secret_values",
    "check_option_names",
    "overlay",
    "parse_partition_field",
    "partition_fields",
]

FileFormat = Literal["csv", "parquet", "json", "jsonl", "iceberg", "delta"]
Checksums = Literal["when_supported", "when_required"]
Mode = Literal["replace", "append", "overwrite_partitions", "error_if_exists", "skip_if_exists"]
Compression = Literal["none", "gzip", "zstd", "snappy", "lz4", "brotli"]

# Option names whose values are credentials: never logged, rendered or echoed.
SECRET_OPTIONS = spec.SECRETS
# Options that only make sense together. When a model's meta sets any option of a
# group, the profile's values for that whole group are dropped, so meta keys
# replace a profile's profile_name (and vice versa) instead of clashing with it.
CREDENTIAL_GROUPS = (
    frozenset({"profile_name", "access_key_id", "secret_access_key", "session_token"}),
    frozenset({"role_arn", "external_id", "role_session_name"}),
)
# Options the plugin reads by their table entry; catalog and glue are read by
# table_config (their values are little option tables), to by ``_expand_to``.
READ_BY_ENTRY = tuple(
    o.name
    for o in spec.OPTIONS
    if spec.DUCKDB in o.adapters and o.name not in ("to", "catalog", "glue")
)
MIB = 1024 * 1024


# Each option's default, as the option table declares it.
DEFAULTS: dict[str, Any] = {option.name: option.default for option in spec.OPTIONS}


@dataclass(frozen=True)
class ExportConfig:
    """One validated export: where to, in which format, and how."""

    bucket: str
    key: str
    file_format: FileFormat
    mode: Mode = DEFAULTS["mode"]
    partition_cols: tuple[str, ...] = ()
    include_partition_cols: bool = DEFAULTS["include_partition_cols"]
    # The empty string as a partition value: Spark, Hive, Athena and Trino cannot read
    # a folder "col=", so it is refused unless asked for ("keep") or written as NULL.
    empty_string_partitions: Literal["error", "keep", "null"] = DEFAULTS["empty_string_partitions"]
    max_rows_per_file: int | None = None
    # Connection and credentials. Unset values fall through to boto3's own chain.
    region: str | None = None
    endpoint_url: str | None = None
    path_style: bool | None = None
    checksums: Checksums | None = None
    profile_name: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    role_session_name: str | None = None
    # Format options.
    csv_delimiter: str = DEFAULTS["csv_delimiter"]
    csv_header: bool = DEFAULTS["csv_header"]
    compression: Compression | None = None
    compression_level: int | None = None
    row_group_size: int = DEFAULTS["row_group_size"]
    # Object attributes applied to every file the export writes.
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    enabled: bool = DEFAULTS["enabled"]
    # Which rows: a SQL filter, and/or only the current incremental batch.
    where: str | None = None
    rows: Literal["auto", "all", "batch"] = DEFAULTS["rows"]
    # Naming and bookkeeping of the files a prefix export writes.
    filename_template: str = DEFAULTS["filename_template"]
    manifest: bool | None = None
    # Hive's symlink layout beside the manifest (commit/symlinks.py), for Athena and Trino.
    symlink_manifests: bool = DEFAULTS["symlink_manifests"]
    # Who owns the destination, and how runs of one export take turns (see commit/).
    export_id: str | None = None
    take_over_from: str | None = None
    lease_ttl_seconds: int = DEFAULTS["lease_ttl_seconds"]
    lease_wait_seconds: int = DEFAULTS["lease_wait_seconds"]
    conditional_writes: Literal["auto", "true", "false"] = DEFAULTS["conditional_writes"]
    max_partitions: int = DEFAULTS["max_partitions"]
    # Tables (tables/common.py): an Iceberg table's name and catalog; Glue registration of files.
    namespace: str | None = None
    table: str | None = None
    catalog: CatalogConfig | None = None
    glue: GlueTarget | None = None
    # Throughput and memory.
    batch_size: int = DEFAULTS["batch_size"]
    part_size_mb: int = DEFAULTS["part_size_mb"]
    max_concurrency: int = DEFAULTS["max_concurrency"]
    # Deadlines of each S3 (and STS) request, in seconds (see s3/deadlines.py).
    connect_timeout: float = DEFAULTS["connect_timeout"]
    read_timeout: float = DEFAULTS["read_timeout"]
    total_timeout: float = DEFAULTS["total_timeout"]

    @property
    def is_prefix(self) -> bool:
        """True when ``key`` names a folder of files rather than one object."""
        return bool(self.partition_cols) or self.key.endswith("/") or self.key == ""

    @property
    def is_table(self) -> bool:
        """True for Iceberg and Delta tables, which have a write path of their own."""
        return self.file_format in TABLE_FORMATS

    @property
    def prefix(self) -> str:
        if not self.is_prefix:
            raise ValueError("a single-object export has no prefix")
        return self.key if self.key.endswith("/") or self.key == "" else self.key + "/"

    @property
    def codec(self) -> str:
        """The effective compression codec, with the format's default applied."""
        if self.compression is not None:
            return self.compression
        return FORMATS[self.file_format].default_codec

    @property
    def extension(self) -> str:
        """The extension of files the export names itself (``.csv.gz`` and so on)."""
        return file_extension(self.file_format, self.codec)

    @property
    def destination(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def part_size(self) -> int:
        return self.part_size_mb * MIB

    def redacted(self) -> dict[str, Any]:
        """The options as given, with every credential replaced by ``***``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == f.default:
                continue
            out[f.name] = "***" if f.name in SECRET_OPTIONS else value
        return out

    @classmethod
    def option_names(cls) -> frozenset[str]:
        """Every option of the shared spec: those of other engines are known names too."""
        return spec.NAMES

    @classmethod
    def parse(
        cls,
        options: Mapping[str, Any],
        defaults: Mapping[str, Any] | None = None,
        *,
        context: str = "",
    ) -> ExportConfig:
        """Validate ``options`` laid over ``defaults``; raise ``ConfigError`` on the first fault."""
        if not isinstance(options, Mapping):
            raise ConfigError(
                context,
                None,
                f"expected a mapping of options, got {type(options).__name__} {options!r}",
                "Write s3_export as a dict such as {bucket: ..., key: ..., file_format: ...}",
            )
        check_option_names(options, context=context)
        merged = overlay(defaults or {}, options)
        merged.update(layered_mappings(defaults or {}, options))
        # A profile's catalog serves its Iceberg exports, its glue the exports that name a table.
        if "catalog" not in options and merged.get("file_format") != "iceberg":
            merged.pop("catalog", None)
        if "glue" not in options:
            merged.pop("glue", None)
        _expand_to(merged, options, context)
        reader = Reader(merged, context)
        kw: dict[str, Any] = {}
        for name in READ_BY_ENTRY:
            value = reader.read(name, _entry(name, kw))
            if value is not None:
                kw[name] = value
        check_rules(reader, kw)
        return cls(**kw)


def _entry(name: str, kw: Mapping[str, Any]) -> spec.Option:
    """An option's table entry, with compression's choices narrowed to the format's codecs."""
    entry = spec.BY_NAME[name]
    if name == "compression":  # file_format is read first: it comes first in the table
        return replace(entry, choices=FORMATS[kw["file_format"]].codecs)
    return entry


def overlay(defaults: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` over ``defaults``; setting any credential option replaces its whole group."""
    merged = dict(defaults)
    for group in CREDENTIAL_GROUPS:
        if group & options.keys():
            for name in group:
                merged.pop(name, None)
    merged.update(options)
    return merged


def _expand_to(merged: dict[str, Any], options: Mapping[str, Any], context: str) -> None:
    """``to: s3://bucket/key`` is shorthand for ``bucket`` + ``key``; they must agree."""
    to = merged.pop("to", None)
    if to is None:
        return
    if not isinstance(to, str) or not to.startswith("s3://") or "/" not in to[5:]:
        raise ConfigError(
            context,
            "to",
            f"must look like s3://bucket/key, got {to!r}",
            "For example s3://my-bucket/orders/",
        )
    bucket, key = to[5:].split("/", 1)
    for name, value in (("bucket", bucket), ("key", key)):
        given = options.get(name)
        if given is not None and given != value:
            raise ConfigError(
                context,
                name,
                f"is {given!r} but 'to' ({to!r}) says {value!r}",
                "Give either 'to' or 'bucket' and 'key', not both",
            )
        merged[name] = value


def check_option_names(options: Mapping[str, Any], *, context: str) -> None:
    """Reject unknown option names with the closest known ones (or the plugin's options)."""
    for name in options:
        if not isinstance(name, str):
            raise ConfigError(context, repr(name), "option names must be strings")
        if name not in spec.NAMES:
            hint = unknown_option_hint(name, spec.DUCKDB)
            raise ConfigError(context, name, "unknown option", hint)
    # Options of other engines that only say how they reach S3 are ignored here, so
    # one meta can serve a DuckDB and a warehouse target; those that change the
    # output cannot be honoured and must not be dropped silently.
    for name in spec.unsupported_output_options(spec.DUCKDB, set(options)):
        engines = ", ".join(spec.BY_NAME[name].adapters)
        raise ConfigError(
            context,
            name,
            f"is honoured on {engines}, not by the dbt-duckdb plugin",
            "Drop it, or use the plugin's equivalent (max_rows_per_file for max_file_size_mb)"
            if name == "max_file_size_mb"
            else "Drop it for this target",
        )


def unknown_option_hint(name: str, adapter: str) -> str:
    """What to say of an unknown option: the closest names, then the names ``adapter`` takes.

    Only names about as close as the best are offered (``partition_col`` gets
    ``partition_cols``, not ``include_partition_cols`` too); a name another
    adapter honours says so. The list names this adapter's options only, not
    those of the warehouses.
    """
    scored = sorted(
        ((difflib.SequenceMatcher(None, name, known).ratio(), known) for known in spec.NAMES),
        reverse=True,
    )
    best = scored[0][0]
    close = [known for ratio, known in scored[:3] if ratio >= max(0.6, best - 0.1)]
    shown = [
        f"'{known}'"
        + (
            ""
            if adapter in spec.BY_NAME[known].adapters
            else f" (an option of {_adapters_of(known)})"
        )
        for known in close
    ]
    here = f"The options on {adapter}: " + ", ".join(sorted(spec.supported_by(adapter)))
    return f"Did you mean {' or '.join(shown)}? {here}" if close else here


def _adapters_of(name: str) -> str:
    return ", ".join(spec.BY_NAME[name].adapters)
