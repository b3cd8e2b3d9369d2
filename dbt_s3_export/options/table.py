"""The one table of export options, from which everything else about them is derived.

Every option a model's ``s3_export`` meta may hold is declared here once: its
name, type, choices, default and bounds, whether its value is a credential,
which adapters honour it, which file formats use it, and a line of
documentation. From this table come

* the plugin's parser (``options/config.py`` reads each option by its entry, then
  ``options/rules.py`` checks how the options fit together),
* ``macros/_option_spec.sql``, the same table for the warehouse macros,
* the option table of ``docs/options.md``, and
* the "did you mean" of an unknown option (``config.unknown_option_hint``).

``scripts/gen-option-spec`` writes both generated files; tests catch stale ones.

``scope`` says what an engine does with an option it does not honour:

* ``output`` options change what lands in S3 (format, layout, rows, object
  attributes). An engine that cannot honour one fails before exporting anything:
  silently writing something else would be worse.
* ``access`` options tell one engine how to reach S3 or how to pace itself (a
  boto3 profile, a Snowflake storage integration, upload part sizes). Another
  engine ignores them, so one model's meta can serve a DuckDB target in
  development and a warehouse target in production.

``formats`` says which file formats use an option. A table format (Iceberg,
Delta) refuses a file-shaping option and a file format refuses a table's
(``option_rules.formats_problem``), but a file format quietly ignores another
file format's option, so a profile's ``csv_delimiter`` can serve its Parquet
exports too. ``folder_only`` options are refused by a single-object export.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .formats import FILE_FORMATS, TABLE_FORMATS

OptionType = Literal["string", "boolean", "flag", "integer", "number", "string_list", "mapping"]
Scope = Literal["output", "access"]
# How a choice is matched: lower- or upper-cased first, or exactly as written.
Case = Literal["lower", "upper", "exact"]
Value = str | int | float | bool | None

DUCKDB = "duckdb"
SNOWFLAKE = "snowflake"
REDSHIFT = "redshift"
BIGQUERY = "bigquery"
SPARK = "spark"
DATABRICKS = "databricks"
ATHENA = "athena"
WAREHOUSES = (SNOWFLAKE, REDSHIFT, BIGQUERY, SPARK, DATABRICKS, ATHENA)
ADAPTERS = (DUCKDB, *WAREHOUSES)
ALL = ADAPTERS
SPARKS = (SPARK, DATABRICKS)
# File formats: FILES are written as files of our own naming, the others as tables.
FILES = tuple(f for f in FILE_FORMATS if f not in TABLE_FORMATS)
GLUE_FORMATS = ("csv", "parquet", "jsonl")  # JSON arrays are one record per file to Hive
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


@dataclass(frozen=True)
class Option:
    name: str
    type: OptionType
    doc: str
    adapters: tuple[str, ...] = (DUCKDB,)
    scope: Scope = "output"
    choices: tuple[str, ...] = ()
    default: Value = None
    secret: bool = False
    # What the plugin checks besides the type and choices (the macros check those two).
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    case: Case = "lower"
    formats: tuple[str, ...] = FILE_FORMATS
    # Whether only a folder export (a key ending in '/', or partitioned) takes it.
    folder_only: bool = False
    # The default as the docs show it, when it is not one value (``snappy for Parquet``).
    shown_default: str = ""


OPTIONS: tuple[Option, ...] = (
    # Where and what.
    Option("bucket", "string", "Destination bucket (bare name, no s3://).", ALL, required=True),
    Option(
        "key",
        "string",
        "Object key, or a prefix ending in / for a folder of files.",
        ALL,
        required=True,
    ),
    Option("to", "string", "Shorthand for bucket + key: s3://bucket/key.", ALL),
    Option(
        "file_format",
        "string",
        "File format of the export.",
        ALL,
        choices=FILE_FORMATS,
        required=True,
    ),
    Option(
        "mode",
        "string",
        "What a run does with what an earlier run left at the destination.",
        ALL,
        choices=("replace", "append", "overwrite_partitions", "error_if_exists", "skip_if_exists"),
        default="replace",
    ),
    Option("partition_cols", "string_list", "Hive-partition the files by these columns.", ALL),
    Option(
        "empty_string_partitions",
        "string",
        "What an empty-string partition value becomes: error (Spark, Hive, Athena and Trino "
        "cannot read a folder col=), keep (col=) or null.",
        choices=("error", "keep", "null"),
        default="error",
    ),
    Option(
        "include_partition_cols",
        "boolean",
        "Also write the partition columns inside the files.",
        (DUCKDB, SNOWFLAKE, REDSHIFT),
        default=False,
        formats=FILES,
    ),
    Option(
        "max_rows_per_file",
        "integer",
        "Split the output into files of at most this many rows.",
        (DUCKDB, *SPARKS),
        minimum=1,
        formats=FILES,
        folder_only=True,
    ),
    Option(
        "max_file_size_mb",
        "integer",
        "Upper bound of each file's size, for warehouses that split by size.",
        (SNOWFLAKE, REDSHIFT),
    ),
    Option("where", "string", "SQL filter: export only the rows that match one condition.", ALL),
    Option(
        "enabled",
        "flag",
        "false skips this export (may be a rendered 'true'/'false').",
        ALL,
        default=True,
    ),
    Option(
        "rows",
        "string",
        "Which rows: all (the whole model), batch (an incremental run's staged rows; with "
        "overwrite_partitions, the partitions they touch, whole), or auto: batch for an "
        "incremental model's append and overwrite_partitions exports, else all.",
        choices=("auto", "all", "batch"),
        default="auto",
    ),
    # Format options.
    Option(
        "csv_delimiter", "string", "Field delimiter of CSV files.", ALL, default=",", formats=FILES
    ),
    Option(
        "csv_header",
        "boolean",
        "Write a header row in CSV files.",
        ALL,
        default=True,
        formats=FILES,
    ),
    Option(
        "compression",
        "string",
        "Compression codec: inside Parquet files, of the whole file for text formats "
        "(gzip or zstd, adding .gz or .zst).",
        ALL,
        choices=("none", "gzip", "zstd", "snappy", "lz4", "brotli"),
        shown_default="snappy for Parquet, none for text",
    ),
    Option(
        "compression_level",
        "integer",
        "Parquet zstd/gzip/brotli level.",
        minimum=-7,
        maximum=22,
        shown_default="the codec's",
    ),
    Option(
        "row_group_size",
        "integer",
        "Parquet rows per row group (also capped at 128 MiB of Arrow memory).",
        default=500_000,
        minimum=1_000,
    ),
    # Object attributes.
    Option(
        "sse",
        "string",
        "Server-side encryption of the written objects.",
        (DUCKDB, SNOWFLAKE),
        choices=("AES256", "aws:kms", "aws:kms:dsse"),
        case="exact",
        formats=FILES,
        shown_default="the bucket's",
    ),
    Option(
        "sse_kms_key_id",
        "string",
        "KMS key for sse aws:kms.",
        (DUCKDB, SNOWFLAKE),
        formats=FILES,
    ),
    Option(
        "storage_class",
        "string",
        "S3 storage class of the written objects.",
        choices=STORAGE_CLASSES,
        case="upper",
        formats=FILES,
        shown_default="STANDARD",
    ),
    Option(
        "metadata",
        "mapping",
        "User metadata (x-amz-meta-*) on every object.",
        formats=FILES,
    ),
    Option("tags", "mapping", "Object tags (at most 10) on every object.", formats=FILES),
    Option(
        "content_type",
        "string",
        "Content-Type of the data files.",
        formats=FILES,
        shown_default="by extension",
    ),
    # Naming and bookkeeping.
    Option(
        "filename_template",
        "string",
        "Names of the files of a folder export: {run_id} and {part}, optionally {model}, "
        "{invocation_id} and {date}.",
        default="part-{run_id}-{part}",
        formats=FILES,
        folder_only=True,
    ),
    Option(
        "manifest",
        "boolean",
        "true writes a manifest beside a single-object export (folders always have one).",
        formats=FILES,
    ),
    Option(
        "symlink_manifests",
        "boolean",
        "Also keep Hive symlink manifests (_symlink_format_manifest/) for Athena, Trino, Hive, "
        "Spectrum (csv, parquet, jsonl); glue then registers a symlink table.",
        default=False,
        formats=FILES,
        folder_only=True,
    ),
    # How the DuckDB plugin reaches S3, and how it paces itself.
    Option("region", "string", "AWS region of the bucket.", (DUCKDB, REDSHIFT), "access"),
    Option("endpoint_url", "string", "Endpoint of an S3-compatible server.", scope="access"),
    Option("path_style", "boolean", "Path-style addressing.", scope="access"),
    Option(
        "checksums",
        "string",
        "When uploads carry checksums.",
        scope="access",
        choices=("when_supported", "when_required"),
    ),
    Option("profile_name", "string", "Profile from the shared AWS files.", scope="access"),
    Option(
        "access_key_id",
        "string",
        "Explicit AWS access key id.",
        (DUCKDB, SNOWFLAKE, REDSHIFT),
        "access",
        secret=True,
    ),
    Option(
        "secret_access_key",
        "string",
        "Explicit AWS secret access key.",
        (DUCKDB, SNOWFLAKE, REDSHIFT),
        "access",
        secret=True,
    ),
    Option(
        "session_token",
        "string",
        "Session token of temporary keys.",
        (DUCKDB, SNOWFLAKE, REDSHIFT),
        "access",
        secret=True,
    ),
    Option("role_arn", "string", "Role to assume.", scope="access"),
    Option("external_id", "string", "External ID of the role.", scope="access", secret=True),
    Option("role_session_name", "string", "Name of the role session.", scope="access"),
    Option(
        "batch_size",
        "integer",
        "Rows per Arrow batch (also bounded to about 16 MiB).",
        scope="access",
        default=131_072,
        minimum=1_024,
        maximum=10_000_000,
    ),
    Option(
        "part_size_mb",
        "integer",
        "Multipart upload part size.",
        scope="access",
        default=16,
        minimum=5,
        maximum=5 * 1024,
    ),
    Option(
        "max_concurrency",
        "integer",
        "Uploads at once.",
        scope="access",
        default=4,
        minimum=1,
        maximum=64,
    ),
    Option(
        "max_partitions",
        "integer",
        "A partitioned export of more partitions than this fails, saying how many.",
        scope="access",
        default=10_000,
        minimum=1,
    ),
    # Deadlines of every S3 and STS request (s3/deadlines.py).
    Option(
        "connect_timeout",
        "number",
        "Seconds to connect, per attempt.",
        scope="access",
        default=10.0,
        minimum=0.1,
        maximum=600.0,
    ),
    Option(
        "read_timeout",
        "number",
        "Seconds to wait for an answer, per attempt.",
        scope="access",
        default=30.0,
        minimum=0.1,
        maximum=3600.0,
    ),
    Option(
        "total_timeout",
        "number",
        "Seconds one request may take with its retries.",
        scope="access",
        default=90.0,
        minimum=0.1,
        maximum=86400.0,
    ),
    # Iceberg and Delta tables, and Glue registration of folder exports (tables/).
    Option(
        "namespace",
        "string",
        "Iceberg namespace of the table (file_format iceberg).",
        formats=("iceberg",),
    ),
    Option("table", "string", "Iceberg table name (file_format iceberg).", formats=("iceberg",)),
    Option(
        "catalog",
        "mapping",
        "Iceberg catalog: type glue, rest or sql, with its uri, warehouse and credentials.",
        formats=("iceberg",),
    ),
    Option(
        "glue",
        "mapping",
        "Register a folder export as a Glue table: database, table.",
        formats=GLUE_FORMATS,
        folder_only=True,
    ),
    # Who owns a folder and how runs of one export take turns (commit/).
    Option(
        "export_id",
        "string",
        "The export's identity, which owns its folder or table (default: model unique id#entry).",
        scope="access",
    ),
    Option(
        "take_over_from",
        "string",
        "The export_id that owns the folder or table now, to hand it to this export; '*' "
        "adopts a table that names no owner.",
        scope="access",
    ),
    Option(
        "lease_wait_seconds",
        "integer",
        "How long a run waits for another run of the same export to finish.",
        scope="access",
        default=600,
        minimum=0,
        maximum=24 * 3600,
    ),
    Option(
        "lease_ttl_seconds",
        "integer",
        "How long after its last renewal a run's lease counts as dead.",
        scope="access",
        default=60,
        minimum=2,
        maximum=3600,
    ),
    Option(
        "conditional_writes",
        "string",
        "Whether the server honours S3 conditional writes (auto probes it once).",
        scope="access",
        choices=("auto", "true", "false"),
        default="auto",
    ),
    # How each warehouse reaches S3, the warehouse's own way.
    Option(
        "storage_integration",
        "string",
        "Snowflake storage integration that grants access to the bucket.",
        (SNOWFLAKE,),
        "access",
    ),
    Option(
        "stage",
        "string",
        "Snowflake external stage whose URL is s3://<bucket>/ (lets a run remove old files).",
        (SNOWFLAKE,),
        "access",
    ),
    Option(
        "iam_role",
        "string",
        "Redshift IAM role ARN for UNLOAD, or 'default' for the cluster's default role.",
        (REDSHIFT,),
        "access",
    ),
    Option(
        "connection",
        "string",
        "BigQuery Omni connection (project.region.connection) that reaches the bucket.",
        (BIGQUERY,),
        "access",
    ),
    Option(
        "location",
        "string",
        "Spark/Databricks: write here instead of s3://<bucket>/<key> (an s3a:// URI, a volume).",
        SPARKS,
        "access",
    ),
    Option(
        "keys_in_sql",
        "boolean",
        "true lets access_key_id/secret_access_key go into the warehouse's SQL (redacted in logs).",
        (SNOWFLAKE, REDSHIFT),
        "access",
        default=False,
    ),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
NAMES: frozenset[str] = frozenset(BY_NAME)
SECRETS: frozenset[str] = frozenset(option.name for option in OPTIONS if option.secret)


def supported_by(adapter: str) -> frozenset[str]:
    """Names of the options ``adapter`` honours."""
    return frozenset(option.name for option in OPTIONS if adapter in option.adapters)


def unsupported_output_options(adapter: str, given: frozenset[str] | set[str]) -> list[str]:
    """The given options that change the output and that ``adapter`` cannot honour."""
    return sorted(
        name
        for name in given
        if name in BY_NAME
        and BY_NAME[name].scope == "output"
        and adapter not in BY_NAME[name].adapters
    )
