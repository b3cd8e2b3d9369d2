"""Parse and validate an export configuration. No I/O happens here.

An export is described by a mapping: the model's ``meta.s3_export`` entry laid
over the defaults from the profile's plugin config. ``ExportConfig.parse``
checks all of it (names, types, values, and how they fit together) so that a
bad config fails before one row is read or one byte is sent.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast

from . import options as spec
from .attributes import Problem, content_type_problem, metadata_problem, tags_problem
from .deadlines import CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_TIMEOUT
from .errors import ConfigError
from .formats import (
    FILE_FORMATS,
    FORMATS,
    TABLE_FORMATS,
    compression_suffix,
    file_extension,
    is_typed,
)
from .source import FilterError, filter_sql

FileFormat = Literal["csv", "parquet", "json", "jsonl", "iceberg", "delta"]
Checksums = Literal["when_supported", "when_required"]
Mode = Literal["replace", "append", "overwrite_partitions", "error_if_exists", "skip_if_exists"]
Compression = Literal["none", "gzip", "zstd", "snappy", "lz4", "brotli"]

SSE_MODES = ("AES256", "aws:kms", "aws:kms:dsse")
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
)
MODES: tuple[Mode, ...] = (
    "replace",
    "append",
    "overwrite_partitions",
    "error_if_exists",
    "skip_if_exists",
)
# Placeholders of filename_template. run_id and part are required: together they
# keep names unique within a run and across runs, and run_id tells which run
# wrote a file, which is how the export recognises its own files.
TEMPLATE_FIELDS = ("model", "run_id", "part", "invocation_id", "date")
DEFAULT_FILENAME_TEMPLATE = "part-{run_id}-{part}"
# The longest text each placeholder renders to ({model}: checked when the key is made).
_FIELD_BYTES = {"model": 0, "run_id": 24, "part": 5, "invocation_id": 36, "date": 10}
# Each partition is at least one file; past this a partitioning is most likely a mistake.
DEFAULT_MAX_PARTITIONS = 10_000

# Option names whose values are credentials: never logged, rendered or echoed.
SECRET_OPTIONS = spec.SECRETS
# Options that only make sense together. When a model's meta sets any option of a
# group, the profile's values for that whole group are dropped, so meta keys
# replace a profile's profile_name (and vice versa) instead of clashing with it.
CREDENTIAL_GROUPS = (
    frozenset({"profile_name", "access_key_id", "secret_access_key", "session_token"}),
    frozenset({"role_arn", "external_id", "role_session_name"}),
)

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024
_DELIMITER_ALIASES = {"\\t": "\t", "tab": "\t", "\\x1f": "\x1f"}
MIB = 1024 * 1024


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ExportConfig:
    """One validated export: where to, in which format, and how."""

    bucket: str
    key: str
    file_format: FileFormat
    mode: Mode = "replace"
    partition_cols: tuple[str, ...] = ()
    include_partition_cols: bool = False
    # The empty string as a partition value: Spark, Hive, Athena and Trino cannot read
    # a folder "col=", so it is refused unless asked for ("keep") or written as NULL.
    empty_string_partitions: Literal["error", "keep", "null"] = "error"
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
    csv_delimiter: str = ","
    csv_header: bool = True
    compression: Compression | None = None
    compression_level: int | None = None
    row_group_size: int = 500_000
    # Object attributes applied to every file the export writes.
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    enabled: bool = True
    # Which rows: a SQL filter, and/or only the current incremental batch.
    where: str | None = None
    rows: Literal["all", "batch"] = "all"
    # Naming and bookkeeping of the files a prefix export writes.
    filename_template: str = DEFAULT_FILENAME_TEMPLATE
    manifest: bool | None = None
    # Who owns the destination, and how runs of one export take turns (see commit.py).
    export_id: str | None = None
    take_over_from: str | None = None
    lease_ttl_seconds: int = 60
    lease_wait_seconds: int = 600
    conditional_writes: Literal["auto", "true", "false"] = "auto"
    max_partitions: int = DEFAULT_MAX_PARTITIONS
    # Tables (tables.py): an Iceberg table's name and catalog; Glue registration of files.
    namespace: str | None = None
    table: str | None = None
    catalog: CatalogConfig | None = None
    glue: GlueTarget | None = None
    # Throughput and memory.
    batch_size: int = 131_072
    part_size_mb: int = 16
    max_concurrency: int = 4
    # Deadlines of each S3 (and STS) request, in seconds (see deadlines.py).
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    total_timeout: float = TOTAL_TIMEOUT

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
        merged.update(_layered_mappings(defaults or {}, options))
        # A profile's catalog serves its Iceberg exports, its glue the exports that name a table.
        if "catalog" not in options and merged.get("file_format") != "iceberg":
            merged.pop("catalog", None)
        if "glue" not in options:
            merged.pop("glue", None)
        _expand_to(merged, options, context)
        return _Parser(merged, context).build()


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
    """Reject unknown option names, suggesting the closest known one."""
    known = ExportConfig.option_names()
    for name in options:
        if not isinstance(name, str):
            raise ConfigError(context, repr(name), "option names must be strings")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hint = f"Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                context,
                name,
                "unknown option",
                (hint + " " if hint else "") + "Known options: " + ", ".join(sorted(known)),
            )
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


# Partition column names go into paths unescaped: DuckDB does not percent-decode
# the name part of ``name=value``, so only characters no reader escapes are allowed.
_PARTITION_NAME_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)


def check_partition_name(parser: _Parser, col: str) -> None:
    """A partition column name must read back as itself in every Hive reader."""
    bad = sorted({ch for ch in col if ord(ch) < 0x80 and ch not in _PARTITION_NAME_SAFE})
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        safe = re.sub(r"[^A-Za-z0-9_]+", "_", col).strip("_") or "part"
        raise parser.fail(
            "partition_cols",
            f"column name {col!r} contains {shown}, which would have to be escaped in the "
            "directory name, and DuckDB does not unescape partition names",
            f"Rename the column in the model (e.g. AS {safe}) and partition by that",
        )
    if col[0] in "_.":
        safe = col.lstrip("_.") or "part"
        raise parser.fail(
            "partition_cols",
            f"column name {col!r} starts with {col[0]!r}; pyarrow, Spark and Athena skip "
            f"directories whose names start with '_' or '.', so those rows would be lost",
            f"Rename the column in the model (e.g. AS {safe}) and partition by that",
        )


# Numbers, dates, times and booleans are written without quotes, so a delimiter
# that can occur in them would split values: digits, letters (true, nan, inf, 1e+20),
# the signs, points and colons of numbers and times. A backslash is Spark's escape.
_AMBIGUOUS_DELIMITERS = frozenset("+-.:")


def check_delimiter(parser: _Parser, delimiter: str) -> None:
    """A delimiter must be one ASCII character that no unquoted value can contain."""
    if len(delimiter) != 1 or delimiter in '\r\n"' or not delimiter.isascii():
        raise parser.fail(
            "csv_delimiter",
            f"must be one ASCII character other than a quote or line break, got {delimiter!r}",
            'For tabs write "\\t"',
        )
    if delimiter == "\\":
        raise parser.fail(
            "csv_delimiter",
            "'\\' is the escape character of Spark's CSV reader (and others'), which would "
            "not split on it",
            "Use a comma, a semicolon, a pipe or a tab (\\t)",
        )
    if delimiter.isalnum() or delimiter in _AMBIGUOUS_DELIMITERS:
        raise parser.fail(
            "csv_delimiter",
            f"{delimiter!r} can occur in numbers, dates, times or booleans, which are written "
            "without quotes, so readers could not tell values apart",
            "Use a comma, a semicolon, a pipe or a tab (\\t), or another character that is "
            "not a letter, a digit, a sign, a point, a colon or a backslash",
        )


class _Parser:
    def __init__(self, raw: dict[str, Any], context: str) -> None:
        self.raw = raw
        self.context = context

    def fail(self, option: str, problem: str, fix: str = "") -> ConfigError:
        return ConfigError(self.context, option, problem, fix)

    def _shown(self, option: str) -> str:
        value = self.raw[option]
        return "***" if option in SECRET_OPTIONS else repr(value)

    def string(self, option: str, *, required: bool = False, allow_empty: bool = False) -> Any:
        if self.raw.get(option) is None:
            if required:
                raise self.fail(option, "is required but missing", "Add it to the s3_export meta")
            return None
        value = self.raw[option]
        if not isinstance(value, str):
            secret = option in SECRET_OPTIONS
            raise self.fail(
                option,
                f"must be a string, got {type(value).__name__} {self._shown(option)}",
                "Quote it in YAML (unquoted digits are a number there, not a string), "
                "or better, read it with env_var('DBT_ENV_SECRET_...') in the profile"
                if secret
                else "",
            )
        if not value and not allow_empty:
            raise self.fail(option, "must not be empty")
        return value

    def boolean(self, option: str) -> bool | None:
        value = self.raw.get(option)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.fail(
                option,
                f"must be true or false, got {type(value).__name__} {value!r}",
                "Write it unquoted: true or false",
            )
        return value

    def integer(self, option: str, *, minimum: int, maximum: int | None = None) -> int | None:
        value = self.raw.get(option)
        if value is None:
            return None
        if not _is_int(value):
            raise self.fail(option, f"must be a whole number, got {type(value).__name__} {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise self.fail(option, f"must be at least {minimum}{upper}, got {value}")
        return cast(int, value)

    def number(self, option: str, *, minimum: float, maximum: float) -> float | None:
        value = self.raw.get(option)
        if value is None:
            return None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self.fail(
                option, f"must be a number of seconds, got {type(value).__name__} {value!r}"
            )
        if not minimum <= value <= maximum:
            raise self.fail(
                option, f"must be from {minimum:g} to {maximum:g} seconds, got {value!r}"
            )
        return float(value)

    def credential(self, option: str) -> str | None:
        """A key, token or external id; surrounding whitespace (a file's newline) is dropped."""
        value = self.string(option)
        if value is None:
            return None
        trimmed = value.strip()
        if not trimmed:
            raise self.fail(option, "is only whitespace", "Check where the value is read from")
        if any(ch.isspace() or not ch.isprintable() for ch in trimmed):
            raise self.fail(
                option,
                "has whitespace or a control character inside (the value is not shown); "
                "AWS keys, tokens and external ids never do",
                "Check where the value is read from",
            )
        return cast(str, trimmed)

    def timeouts(self, kw: dict[str, Any]) -> None:
        limits = {"connect_timeout": 600.0, "read_timeout": 3600.0, "total_timeout": 86400.0}
        for name, most in limits.items():
            seconds = self.number(name, minimum=0.1, maximum=most)
            if seconds is not None:
                kw[name] = seconds
        connect = kw.get("connect_timeout", CONNECT_TIMEOUT)
        read = kw.get("read_timeout", READ_TIMEOUT)
        total = kw.get("total_timeout", TOTAL_TIMEOUT)
        if total < connect + read:
            raise self.fail(
                "total_timeout",
                f"is {total:g} s, less than one attempt may take (connect_timeout {connect:g} s "
                f"+ read_timeout {read:g} s)",
                f"Set total_timeout to at least {connect + read:g}",
            )

    def filter_option(self) -> str | None:
        where = self.string("where")
        if where is not None:
            try:
                filter_sql(where)
            except FilterError as e:
                raise self.fail(
                    "where",
                    f"{where!r} {e}",
                    "Give one condition over the model's columns, e.g. "
                    '"event_date >= current_date - 7"',
                ) from None
        return cast("str | None", where)

    def choice(self, option: str, choices: Sequence[str]) -> str | None:
        value = self.string(option)
        if value is None:
            return None
        lowered = value.lower()
        if lowered not in choices:
            raise self.fail(option, f"must be one of {', '.join(choices)}, got {value!r}")
        return str(lowered)

    def build(self) -> ExportConfig:
        kw: dict[str, Any] = {}
        kw["bucket"] = self.bucket()
        kw["file_format"] = self.choice("file_format", FILE_FORMATS) or self._missing(
            "file_format", f"Use one of {', '.join(FILE_FORMATS)}"
        )
        mode = self.choice("mode", MODES)
        if mode is not None:
            kw["mode"] = mode
        kw["partition_cols"] = self.partition_cols()
        empty = self.choice("empty_string_partitions", ("error", "keep", "null"))
        if empty is not None:
            kw["empty_string_partitions"] = empty
        for name in ("region", "profile_name", "role_arn", "role_session_name"):
            kw[name] = self.string(name)
        for name in ("access_key_id", "secret_access_key", "session_token", "external_id"):
            kw[name] = self.credential(name)
        kw["endpoint_url"] = self.endpoint_url()
        kw["checksums"] = self.choice("checksums", ("when_supported", "when_required"))
        for name in ("path_style", "csv_header", "include_partition_cols"):
            value = self.boolean(name)
            if value is not None:
                kw[name] = value
        delimiter = self.string("csv_delimiter")
        if delimiter is not None:
            # Jinja and YAML single-quoted strings keep a backslash escape as two characters.
            delimiter = _DELIMITER_ALIASES.get(delimiter, delimiter)
            check_delimiter(self, delimiter)
            kw["csv_delimiter"] = delimiter
        self.compression(kw)
        ints: dict[str, tuple[int, int | None]] = {
            "max_rows_per_file": (1, None),
            "row_group_size": (1_000, None),
            "batch_size": (1_024, 10_000_000),
            "part_size_mb": (5, 5 * 1024),
            "max_concurrency": (1, 64),
            "lease_ttl_seconds": (2, 3600),
            "lease_wait_seconds": (0, 24 * 3600),
            "max_partitions": (1, None),
        }
        for name, (low, high) in ints.items():
            number = self.integer(name, minimum=low, maximum=high)
            if number is not None:
                kw[name] = number
        self.timeouts(kw)
        kw["key"] = self.key(kw)
        self.credentials(kw)
        self.object_attributes(kw)
        enabled = self.flag("enabled")
        if enabled is not None:
            kw["enabled"] = enabled
        kw["where"] = self.filter_option()
        rows = self.choice("rows", ("all", "batch"))
        if rows is not None:
            kw["rows"] = rows
        self.naming(kw)
        self.mode_fits(kw)
        self.ownership(kw)
        self.tables(kw)
        return ExportConfig(**kw)

    def tables(self, kw: dict[str, Any]) -> None:
        _parse_catalog_and_glue(self, kw)

    def ownership(self, kw: dict[str, Any]) -> None:
        for name in ("export_id", "take_over_from"):
            value = self.string(name)
            if value is not None and (
                len(value) > 200 or not value.isprintable() or value != value.strip()
            ):
                raise self.fail(
                    name,
                    f"must be printable text of at most 200 characters without leading or "
                    f"trailing spaces, got {value!r}",
                    "For example 'orders_to_lake'",
                )
            kw[name] = value
        if kw["export_id"] == "*":
            raise self.fail(
                "export_id",
                "'*' is not an export id: take_over_from: '*' adopts a table that names no owner",
                "For example 'orders_to_lake'",
            )
        conditional = self.raw.get("conditional_writes")
        if isinstance(conditional, bool):
            conditional = str(conditional).lower()
        if conditional is not None:
            self.raw["conditional_writes"] = conditional
            kw["conditional_writes"] = self.choice("conditional_writes", ("auto", "true", "false"))

    @staticmethod
    def _is_prefix(kw: dict[str, Any]) -> bool:
        return bool(kw["partition_cols"]) or kw["key"].endswith("/") or kw["key"] == ""

    def naming(self, kw: dict[str, Any]) -> None:
        template = self.string("filename_template")
        prefix = self._is_prefix(kw)
        if template is not None:
            if not prefix:
                raise self.fail(
                    "filename_template",
                    f"names the files of a folder export, but key {kw['key']!r} names one object",
                    "End the key with '/' or drop filename_template",
                )
            fields_used = self.template_fields(template)
            unknown = fields_used - set(TEMPLATE_FIELDS)
            if unknown:
                raise self.fail(
                    "filename_template",
                    f"has unknown placeholder(s) {', '.join(sorted(unknown))} in {template!r}",
                    f"Use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}",
                )
            missing = {"run_id", "part"} - fields_used
            if missing:
                raise self.fail(
                    "filename_template",
                    f"{template!r} lacks {', '.join('{' + f + '}' for f in sorted(missing))}, so "
                    "file names would not be unique per run",
                    "Include both {run_id} and {part}",
                )
            if "/" in template or "\\" in template or template.startswith((".", "_")):
                raise self.fail(
                    "filename_template",
                    f"{template!r} must be a plain file name, not starting with '.' or '_' "
                    "(readers skip such files)",
                )
            if any(not ch.isprintable() for ch in template):
                raise self.fail(
                    "filename_template",
                    f"{template!r} holds a control character (line break, tab...)",
                    "Remove it",
                )
            kw["filename_template"] = template
        self.name_fits(kw)
        manifest = self.boolean("manifest")
        if manifest is False and prefix:
            raise self.fail(
                "manifest",
                "cannot be false for a folder export: the manifest is how a run knows "
                "which files are its own",
                "Drop the option",
            )
        kw["manifest"] = manifest

    def template_fields(self, template: str) -> set[str]:
        """The placeholders of a filename_template, refusing what str.format would misread."""
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as e:
            raise self.fail(
                "filename_template",
                f"{template!r} has an unmatched brace ({e})",
                "Write {{ and }} for literal braces",
            ) from None
        used = set()
        for _, name, format_spec, conversion in parsed:
            if name is None:
                continue
            if format_spec or conversion:
                raise self.fail(
                    "filename_template",
                    f"{template!r}: placeholder {{{name}}} has a format spec or conversion",
                    "Write placeholders bare, like {part}",
                )
            used.add(name)
        return used

    def name_fits(self, kw: dict[str, Any]) -> None:
        """The longest name the template renders must fit in a key under the prefix."""
        if not self._is_prefix(kw):
            return
        template = kw.get("filename_template", DEFAULT_FILENAME_TEMPLATE)
        longest = 0
        for literal, name, _, _ in string.Formatter().parse(template):
            longest += len(literal.encode()) + _FIELD_BYTES.get(name or "", 0)
        prefix = kw["key"] if kw["key"].endswith("/") or kw["key"] == "" else kw["key"] + "/"
        ext = FORMATS[kw["file_format"]].extensions[0] + ".zst"  # the longest extension
        size = len(prefix.encode()) + longest + len(ext)
        if size > MAX_KEY_BYTES:
            raise self.fail(
                "filename_template",
                f"makes file names of up to {longest} bytes, so keys under {prefix[:40]!r} would "
                f"be up to {size} bytes, over S3's {MAX_KEY_BYTES}-byte limit",
                "Shorten the template (or 'key')",
            )

    def mode_fits(self, kw: dict[str, Any]) -> None:
        mode = kw.get("mode", "replace")
        prefix = self._is_prefix(kw) or kw["file_format"] in TABLE_FORMATS
        if mode == "append" and not prefix:
            raise self.fail(
                "mode",
                f"append adds files beside earlier ones, but key {kw['key']!r} names one object",
                "End the key with '/' to export into a folder",
            )
        if mode == "overwrite_partitions" and not kw["partition_cols"]:
            raise self.fail(
                "mode",
                "overwrite_partitions replaces the partitions this run writes, but "
                "partition_cols is not set",
                "Set partition_cols, or use mode replace",
            )

    def flag(self, option: str) -> bool | None:
        """A boolean that may arrive as text, as Jinja-rendered YAML config does."""
        value = self.raw.get(option)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return self.boolean(option)

    def string_map(self, option: str) -> tuple[tuple[str, str], ...]:
        value = self.raw.get(option)
        if value is None:
            return ()
        if not isinstance(value, Mapping):
            raise self.fail(
                option, f"must be a mapping of names to text, got {type(value).__name__} {value!r}"
            )
        pairs = []
        for name, item in value.items():
            if not isinstance(name, str) or not name or not isinstance(item, (str, int, float)):
                raise self.fail(option, f"entry {name!r}: {item!r} must be a name and a text value")
            pairs.append((name, str(item)))
        return tuple(sorted(pairs))

    def object_attributes(self, kw: dict[str, Any]) -> None:
        sse = self.string("sse")
        if sse is not None and sse not in SSE_MODES:
            raise self.fail("sse", f"must be one of {', '.join(SSE_MODES)}, got {sse!r}")
        kw["sse"] = sse
        kw["sse_kms_key_id"] = self.string("sse_kms_key_id")
        if kw["sse_kms_key_id"] is not None and not (sse or "").startswith("aws:kms"):
            raise self.fail("sse_kms_key_id", "needs sse: aws:kms", "Set sse: aws:kms as well")
        storage_class = self.string("storage_class")
        if storage_class is not None and storage_class.upper() not in STORAGE_CLASSES:
            raise self.fail(
                "storage_class",
                f"must be one of {', '.join(STORAGE_CLASSES)}, got {storage_class!r}",
            )
        kw["storage_class"] = storage_class.upper() if storage_class else None
        kw["metadata"] = self.string_map("metadata")
        self.check("metadata", metadata_problem(kw["metadata"]))
        kw["tags"] = self.string_map("tags")
        self.check("tags", tags_problem(kw["tags"]))
        kw["content_type"] = self.string("content_type")
        if kw["content_type"] is not None:
            self.check("content_type", content_type_problem(kw["content_type"]))

    def check(self, option: str, problem: Problem | None) -> None:
        if problem is not None:
            raise self.fail(option, *problem)

    def _missing(self, option: str, fix: str) -> Any:
        raise self.fail(option, "is required but missing", fix)

    def bucket(self) -> str:
        bucket = self.string("bucket", required=True)
        if bucket.startswith("s3://"):
            raise self.fail(
                "bucket",
                f"must be a bare bucket name, got {bucket!r}",
                "Drop the s3:// and put the path in 'key'",
            )
        if not _BUCKET_RE.match(bucket) or ".." in bucket:
            raise self.fail(
                "bucket",
                f"{bucket!r} is not a valid S3 bucket name",
                "Bucket names are 3 to 63 characters: lowercase letters, digits, dots and hyphens",
            )
        return cast(str, bucket)

    def partition_cols(self) -> tuple[str, ...]:
        value = self.raw.get("partition_cols")
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise self.fail(
                "partition_cols",
                f"must be a list of column names, got {type(value).__name__} {value!r}",
                f"Write it as a list, e.g. [{value!r}]" if isinstance(value, str) else "",
            )
        cols: list[str] = []
        for col in value:
            if not isinstance(col, str) or not col:
                raise self.fail("partition_cols", f"must hold non-empty column names, got {col!r}")
            if col in cols:
                raise self.fail(
                    "partition_cols",
                    f"names column {col!r} twice",
                    "List each partition column once",
                )
            if self.raw.get("file_format") != "iceberg":
                check_partition_name(self, col)
            cols.append(col)
        return tuple(cols)

    def endpoint_url(self) -> str | None:
        url = self.string("endpoint_url")
        if url is None:
            return None
        if "@" in url:  # userinfo, even with an unescaped '/' in the password
            shown = f"{url.split('://', 1)[0]}://***@{url.rsplit('@', 1)[1]}"
            raise self.fail(
                "endpoint_url",
                f"must not hold credentials (user:password@), got {shown!r} (credentials hidden)",
                "Give them as access_key_id and secret_access_key in the profile's "
                "dbt_s3_export plugin config, read with env_var('DBT_ENV_SECRET_...')",
            )
        if not re.match(r"^https?://[^/\s]+", url):
            raise self.fail(
                "endpoint_url",
                f"must be an http:// or https:// URL, got {url!r}",
                "For example http://127.0.0.1:9000",
            )
        return cast(str, url)

    def compression(self, kw: dict[str, Any]) -> None:
        fmt = kw["file_format"]
        codec = self.choice("compression", FORMATS[fmt].codecs)
        kw["compression"] = codec
        level = self.integer("compression_level", minimum=-7, maximum=22)
        if level is not None:
            if not is_typed(fmt) or codec not in ("zstd", "gzip", "brotli"):
                raise self.fail(
                    "compression_level",
                    "applies to parquet files with zstd, gzip or brotli compression, "
                    f"not {fmt} with {codec or 'the default codec'}",
                    "Set compression to one of those, or drop compression_level",
                )
            kw["compression_level"] = level

    def key(self, kw: dict[str, Any]) -> str:
        key = self.string("key", required=True, allow_empty=bool(kw["partition_cols"]))
        if key.startswith("s3://"):
            raise self.fail(
                "key",
                f"must be a path inside the bucket, got {key!r}",
                "Put the bucket name in 'bucket' and the rest of the path in 'key'",
            )
        if key.startswith("/"):
            raise self.fail("key", f"must not start with '/', got {key!r}", "Drop the leading /")
        if "//" in key:
            raise self.fail("key", f"must not contain empty path segments, got {key!r}")
        if len(key.encode()) > MAX_KEY_BYTES - 100:
            raise self.fail(
                "key",
                f"is {len(key.encode())} bytes; S3 keys are limited to {MAX_KEY_BYTES}",
                "Use a shorter key",
            )
        fmt = kw["file_format"]
        is_prefix = bool(kw["partition_cols"]) or key.endswith("/")
        if is_prefix or fmt in TABLE_FORMATS:
            return cast(str, key)
        if kw.get("max_rows_per_file"):
            raise self.fail(
                "key",
                f"names one object ({key!r}) but max_rows_per_file splits the output into files",
                f"End the key with '/' (e.g. {key.rsplit('.', 1)[0]!r}/) to export into a folder",
            )
        self.check_extension(key, fmt, kw.get("compression"))
        return cast(str, key)

    def check_extension(self, key: str, fmt: str, codec: str | None) -> None:
        name = key.rsplit("/", 1)[-1].lower()
        suffix = compression_suffix(fmt, codec)
        extensions = FORMATS[fmt].extensions
        if suffix and not name.endswith(suffix):
            raise self.fail(
                "key",
                f"{key!r} is {codec}-compressed but does not end with {suffix}",
                f"End the key with {extensions[0]}{suffix}",
            )
        if suffix:
            name = name[: -len(suffix)]
        if any(name.endswith(ext) for ext in extensions):
            if suffix == "" and (name.endswith(".gz") or name.endswith(".zst")):
                raise self.fail(
                    "key", f"{key!r} ends like a compressed file but compression is not set"
                )
            return
        wanted = " or ".join(e + suffix for e in extensions)
        for other in FORMATS.values():
            if other.name != fmt and any(name.endswith(e) for e in other.extensions):
                raise self.fail(
                    "key",
                    f"{key!r} has a {other.name} extension but file_format is {fmt!r}",
                    f"End the key with {wanted}, or change file_format",
                )
        raise self.fail(
            "key",
            f"{key!r} does not end with {wanted}",
            f"Name the object with that extension, or end the key with '/' to export "
            f"{fmt} files into a folder",
        )

    def credentials(self, kw: dict[str, Any]) -> None:
        has_id = kw.get("access_key_id") is not None
        has_secret = kw.get("secret_access_key") is not None
        if has_id != has_secret:
            pair = ("access_key_id", "secret_access_key")
            given, missing = pair if has_id else pair[::-1]
            raise self.fail(missing, f"is missing while {given} is set", "Give both or neither")
        if kw.get("session_token") is not None and not has_id:
            raise self.fail(
                "session_token", "needs access_key_id and secret_access_key", "Give all three"
            )
        if has_id and kw.get("profile_name") is not None:
            raise self.fail(
                "profile_name",
                "cannot be combined with access_key_id/secret_access_key",
                "Use either a named profile or explicit keys",
            )
        for name in ("external_id", "role_session_name"):
            if kw.get(name) is not None and kw.get("role_arn") is None:
                raise self.fail(name, "only applies when role_arn is set", "Set role_arn too")


# -- tables and catalogs --------------------------------------------------------------------

CatalogType = Literal["glue", "rest", "sql"]
CATALOG_TYPES: tuple[CatalogType, ...] = ("glue", "rest", "sql")
# Which keys each catalog type takes besides ``type``, ``name`` and ``properties``.
CATALOG_KEYS: dict[str, tuple[str, ...]] = {
    "glue": ("region", "endpoint_url", "catalog_id"),
    "rest": ("uri", "warehouse", "token", "credential"),
    "sql": ("uri",),
}
# Catalog keys whose values are credentials (a SQL ``uri`` may hold a password too).
CATALOG_SECRETS = frozenset({"token", "credential"})
GLUE_KEYS = ("database", "table", "region", "endpoint_url", "catalog_id")
# Formats a Glue table can describe: JSON arrays are one record per file to Hive readers.
GLUE_FORMATS = ("csv", "parquet", "jsonl")
# Options that shape files and objects; a table format writes its files its own way.
FILE_ONLY_OPTIONS = (
    "filename_template",
    "manifest",
    "max_rows_per_file",
    "include_partition_cols",
    "csv_delimiter",
    "csv_header",
    "sse",
    "sse_kms_key_id",
    "storage_class",
    "metadata",
    "tags",
    "content_type",
)
# Glue database and table names: what Athena accepts without quoting.
_GLUE_NAME_RE = re.compile(r"^[a-z0-9_]{1,255}$")
# An Iceberg partition field: a column, or a transform of one (``day(ts)``, ``bucket(16, id)``).
_TRANSFORM_RE = re.compile(r"^\s*([a-z]+)\s*\(\s*(?:(\d+)\s*,\s*)?([^()]+?)\s*\)\s*$")
ICEBERG_TRANSFORMS = {
    "identity": False,
    "year": False,
    "month": False,
    "day": False,
    "hour": False,
    "bucket": True,
    "truncate": True,
}


@dataclass(frozen=True)
class PartitionField:
    """One Iceberg partition field: ``transform`` of ``column`` (``identity`` for plain names)."""

    column: str
    transform: str = "identity"
    width: int | None = None

    @property
    def name(self) -> str:
        """The partition field's name, as Spark and pyiceberg name them."""
        if self.transform == "identity":
            return self.column
        if self.width is not None:
            short = "trunc" if self.transform == "truncate" else self.transform
            return f"{self.column}_{short}_{self.width}"
        return f"{self.column}_{self.transform}"


def parse_partition_field(text: str) -> PartitionField | None:
    """``day(ts)`` as a field; None when ``text`` is not a transform (a plain column name)."""
    match = _TRANSFORM_RE.match(text)
    if match is None:
        return None
    transform, width, column = match.groups()
    return PartitionField(column, transform, int(width) if width is not None else None)


def partition_fields(partition_cols: Sequence[str]) -> list[PartitionField]:
    """Each of ``partition_cols`` as a field: a transform, or the column as it is."""
    return [parse_partition_field(c) or PartitionField(c) for c in partition_cols]


@dataclass(frozen=True)
class CatalogConfig:
    """Where an Iceberg table is registered: a Glue, REST or SQL catalog."""

    type: CatalogType
    name: str = "default"
    uri: str | None = field(default=None, repr=False)
    warehouse: str | None = None
    token: str | None = field(default=None, repr=False)
    credential: str | None = field(default=None, repr=False)
    region: str | None = None
    endpoint_url: str | None = None
    catalog_id: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    def secrets(self) -> list[str]:
        """Credential values this catalog carries, for ``redact``."""
        return catalog_secret_values(
            {"uri": self.uri, "token": self.token, "credential": self.credential}
        )


@dataclass(frozen=True)
class GlueTarget:
    """The Glue table a file export is registered as."""

    database: str
    table: str
    region: str | None = None
    endpoint_url: str | None = None
    catalog_id: str | None = None


def catalog_secret_values(catalog: Any) -> list[str]:
    """The secret values in a ``catalog`` mapping: tokens, credentials, a URI's password."""
    if not isinstance(catalog, Mapping):
        return []
    found = [str(catalog[k]) for k in CATALOG_SECRETS if catalog.get(k) is not None]
    uri = catalog.get("uri")
    if isinstance(uri, str):
        from urllib.parse import urlsplit

        try:
            password = urlsplit(uri).password
        except ValueError:
            password = None
        if password:
            found.append(password)
    return found


def _layered_mappings(defaults: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``catalog`` and ``glue`` of the meta laid key by key over the profile's.

    So a profile can hold a catalog's connection and a model name only its table. A
    meta ``catalog`` of another ``type`` replaces the profile's whole.
    """
    out: dict[str, Any] = {}
    for name in ("catalog", "glue"):
        base, over = defaults.get(name), options.get(name)
        if not isinstance(base, Mapping) or not isinstance(over, Mapping):
            continue
        if name == "catalog" and over.get("type", base.get("type")) != base.get("type"):
            continue
        out[name] = {**base, **over}
    return out


def _parse_catalog_and_glue(parser: _Parser, kw: dict[str, Any]) -> None:
    """The options of table formats and Glue registration, and how they fit the export."""
    fmt = kw["file_format"]
    raw = parser.raw
    for name in ("namespace", "table"):
        kw[name] = parser.string(name)
    if fmt in TABLE_FORMATS:
        given = [name for name in FILE_ONLY_OPTIONS if raw.get(name) is not None]
        if given:
            raise parser.fail(
                given[0],
                f"shapes the files of a file export; {fmt} tables are written by "
                f"{'pyiceberg' if fmt == 'iceberg' else 'delta-rs'}, which do not take it",
                "Drop the option",
            )
        if not kw["key"] or kw["key"] == "/":
            raise parser.fail(
                "key",
                f"a {fmt} table needs a folder of its own for its location, not the bucket root",
                "Set key to a folder such as 'lake/orders/'",
            )
    if fmt == "iceberg":
        for name in ("namespace", "table"):
            if kw[name] is None:
                raise parser.fail(
                    name,
                    "is required for an iceberg table",
                    "Name the table with namespace (a database) and table",
                )
        kw["catalog"] = _catalog(parser)
        if kw["catalog"].type == "glue":
            for name in ("namespace", "table"):
                if not _GLUE_NAME_RE.match(kw[name]):
                    raise parser.fail(
                        name,
                        f"{kw[name]!r} is not a Glue name",
                        "Use lowercase letters, digits and underscores",
                    )
        fields_ = partition_fields(kw["partition_cols"])
        for f in fields_:
            if f.transform not in ICEBERG_TRANSFORMS:
                raise parser.fail(
                    "partition_cols",
                    f"{f.transform}({f.column}) is not an Iceberg partition transform",
                    "Use a column name, or identity, year, month, day, hour, bucket(N, col) "
                    "or truncate(N, col) of one",
                )
            if ICEBERG_TRANSFORMS[f.transform] != (f.width is not None):
                shape = f"{f.transform}(N, {f.column})" if f.width is None else f"{f.transform}"
                raise parser.fail(
                    "partition_cols",
                    f"{f.transform} takes {'a width' if f.width is None else 'no width'}",
                    f"Write it as {shape}({f.column})" if f.width is not None else f"Write {shape}",
                )
        if kw.get("mode") == "overwrite_partitions" and any(
            f.transform != "identity" for f in fields_
        ):
            raise parser.fail(
                "mode",
                "overwrite_partitions replaces partitions by their values, which needs "
                "partition_cols of plain columns, not transforms",
                "Partition by columns (e.g. a date column made in the model), or use replace",
            )
    else:
        for name in ("namespace", "table", "catalog"):
            if raw.get(name) is not None:
                raise parser.fail(
                    name,
                    f"names an Iceberg table in a catalog, but file_format is {fmt}",
                    "Use file_format iceberg, or drop the option"
                    + (
                        "; a delta table is named by its location (bucket and key)"
                        if fmt == "delta"
                        else ""
                    ),
                )
    kw["glue"] = _glue(parser, kw)


def _catalog(parser: _Parser) -> CatalogConfig:
    value = parser.raw.get("catalog")
    if not isinstance(value, Mapping):
        raise parser.fail(
            "catalog",
            "is required for an iceberg table"
            if value is None
            else f"must be a mapping, got {type(value).__name__}",
            "For example catalog: {type: glue, region: eu-west-1}, {type: rest, uri: ...} or "
            "{type: sql, uri: 'sqlite:////path/catalog.db'}",
        )
    sub = _Parser(dict(value), f"{parser.context + ': ' if parser.context else ''}catalog")
    kind = sub.choice("type", CATALOG_TYPES)
    if kind is None:
        raise parser.fail("catalog", "needs a type", f"Set type to {', '.join(CATALOG_TYPES)}")
    allowed = {"type", "name", "properties", *CATALOG_KEYS[kind]}
    for key in value:
        if key not in allowed:
            others = [t for t, keys in CATALOG_KEYS.items() if key in keys]
            raise sub.fail(
                str(key),
                f"does not apply to a {kind} catalog"
                + (f" (it is an option of {' and '.join(others)} catalogs)" if others else ""),
                f"A {kind} catalog takes {', '.join(sorted(allowed))}",
            )
    kw: dict[str, Any] = {"type": kind}
    for name in ("name", "uri", "warehouse", "token", "credential", "region", "catalog_id"):
        if value.get(name) is not None:
            kw[name] = sub.string(name)
    kw["endpoint_url"] = sub.endpoint_url() if value.get("endpoint_url") is not None else None
    if kind in ("rest", "sql") and kw.get("uri") is None:
        example = "http://127.0.0.1:8181" if kind == "rest" else "sqlite:////path/catalog.db"
        raise sub.fail("uri", f"is required for a {kind} catalog", f"For example {example!r}")
    if kind == "rest" and not re.match(r"^https?://", kw["uri"]):
        raise sub.fail("uri", f"must be an http:// or https:// URL, got {kw['uri']!r}")
    if kind == "sql" and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", kw["uri"]):
        raise sub.fail(
            "uri",
            "must be a SQLAlchemy URL of sqlite or postgresql",
            "For example 'sqlite:////path/catalog.db' or "
            "'postgresql+psycopg2://user@host/db' (the password from env_var)",
        )
    kw["properties"] = sub.string_map("properties")
    return CatalogConfig(**kw)


def _glue(parser: _Parser, kw: dict[str, Any]) -> GlueTarget | None:
    value = parser.raw.get("glue")
    if value is None:
        return None
    fmt = kw["file_format"]
    if not isinstance(value, Mapping):
        raise parser.fail(
            "glue",
            f"must be a mapping, got {type(value).__name__} {value!r}",
            "For example glue: {database: lake, table: orders}",
        )
    if fmt not in GLUE_FORMATS:
        fix = {
            "iceberg": "An iceberg table registers itself: use catalog: {type: glue}",
            "json": "Use file_format jsonl: Hive readers take one JSON object per line",
        }.get(fmt, f"Glue registration is for {', '.join(GLUE_FORMATS)} exports")
        raise parser.fail("glue", f"cannot register a {fmt} export", fix)
    if not parser._is_prefix(kw):
        raise parser.fail(
            "glue",
            f"a Glue table's location is a folder, but key {kw['key']!r} names one object",
            "End the key with '/' to export into a folder",
        )
    if kw.get("include_partition_cols"):
        raise parser.fail(
            "glue",
            "a Glue table takes partition values from the folder names, and columns that "
            "are also in the files would be defined twice",
            "Drop include_partition_cols",
        )
    sub = _Parser(dict(value), f"{parser.context + ': ' if parser.context else ''}glue")
    for key in value:
        if key not in GLUE_KEYS:
            close = difflib.get_close_matches(str(key), GLUE_KEYS, n=1, cutoff=0.6)
            raise sub.fail(
                str(key),
                "unknown option",
                (f"Did you mean '{close[0]}'? " if close else "")
                + "glue takes "
                + ", ".join(GLUE_KEYS),
            )
    out: dict[str, Any] = {}
    for name in ("database", "table"):
        name_value = sub.string(name, required=True)
        if not _GLUE_NAME_RE.match(name_value):
            raise sub.fail(
                name,
                f"{name_value!r} is not a Glue name",
                "Use lowercase letters, digits and underscores",
            )
        out[name] = name_value
    out["region"] = sub.string("region")
    out["catalog_id"] = sub.string("catalog_id")
    out["endpoint_url"] = sub.endpoint_url()
    return GlueTarget(**out)
