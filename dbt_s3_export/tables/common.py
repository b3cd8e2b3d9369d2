"""Iceberg and Delta tables: a write path of its own beside the files of a folder export.

A table format brings what commit/ builds by hand for files. Its data files are
written first, under the table's location, where no reader looks for them; then one
commit makes them the table's new snapshot (Iceberg: the catalog swaps the metadata
pointer, conditional on the version it read; Delta: the next numbered entry of the
``_delta_log`` is created with ``If-None-Match: *``). A run that fails or is killed
before that commit leaves the table at its previous snapshot; the files it wrote are
referenced by nothing and go with the table's orphan-file clean-up (``remove_orphan_files``
in Iceberg, ``VACUUM`` in Delta). A run that fails in Python deletes the Iceberg data files
it wrote itself.

Each mode is one commit:

- ``replace``: an overwrite snapshot that removes every live data file and adds this run's;
- ``append``: an append snapshot;
- ``overwrite_partitions``: an overwrite snapshot that removes the data files of the
  partitions this run writes (Delta: an overwrite whose predicate names those partitions,
  found by one aggregate over the model before the write);
- ``error_if_exists`` / ``skip_if_exists``: the table's existence decides.

A model that gains a column evolves the table's schema in the same commit, and so does a
column whose type widens (int to bigint, float to double); any other change of a
column's type fails before anything is written, naming the column. Rows stream from
DuckDB in Arrow batches: Iceberg files are written from chunks of bounded size
(tables/iceberg.py), Delta files by delta-rs straight from the stream (tables/delta.py), so memory
never holds the whole model. This module holds what both share: the S3 connection as
their libraries take it, the column types both hold, the commit properties, the modes,
and the ownership of a table.

**Owners.** A table has one owner, as a folder has (commit/): the export id is kept in
the table itself, as the Iceberg table property, the Delta table configuration key and
the Glue table parameter ``dbt_s3_export.export_id``. A table that names another export,
or none, is refused before anything is written, unless ``take_over_from`` names its
owner (``'*'`` for a table that names none); the takeover rewrites the owner, so the old
owner's next run is refused. A table written by an earlier version of this package has
no owner record but carries the export id in its commits' ``dbt.export_id``: that is
its owner. A table may not lie inside a folder a folder export claims, nor (when it is
created) hold one: the folder export owns everything under its folder, and the table's
orphan-file clean-up would delete the folder export's files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..commit import (
    OwnershipConflict,
    RunContext,
    claim_around,
    claim_at,
    claim_inside,
    store_for,
)
from ..encoding.typemap import column_error, type_name
from ..errors import (
    ConfigError,
    ExportFailed,
)
from ..options.config import ExportConfig
from ..s3.credentials import ConnectionSettings, CredentialSession

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..result import ExportResult
else:
    S3Client = Any

# Snapshot (Iceberg) and commit (Delta) properties naming the dbt run.
PROPERTY_PREFIX = "dbt."
# The Iceberg table property, Delta configuration key and Glue table parameter that name
# the export owning the table.
OWNER_PROPERTY = "dbt_s3_export.export_id"
# The take_over_from value that adopts a table naming no owner (made by something else).
ADOPT_UNOWNED = "*"


class TableConflict(ExportFailed):
    """Another writer committed to the table in a way this run's commit cannot follow."""


class SchemaMismatch(ExportFailed):
    """A column's type in the model cannot be written into the table's column."""


# What each table format's extra installs, as pip takes it from PyPI (pyproject.toml's
# extras; this package itself is installed from its folder, not from PyPI).
EXTRA_REQUIREMENTS = {
    "iceberg": "pyiceberg[glue,sql-sqlite,pyarrow,pyiceberg-core]>=0.12",
    "delta": "deltalake>=1.6",
}


def missing_extra(package: str) -> ConfigError:
    extra = "iceberg" if package == "pyiceberg" else "delta"
    return ConfigError(
        "",
        "file_format",
        f"{extra} needs the Python package '{package}', which is not installed",
        f'Install it with: pip install "{EXTRA_REQUIREMENTS[extra]}" (or reinstall this '
        f'package from its folder with the extra: pip install "./dbt-s3-export[{extra}]")',
    )


# -- storage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    """The S3 connection of the export, as pyiceberg and delta-rs take it.

    The keys are those of the export's own credential session (the one behind its S3
    client, ``s3/credentials.py``), read once at the start of the run: a role is not
    assumed again, and the keys are among the secrets kept out of messages. pyarrow's
    and delta-rs's S3 clients cannot refresh them, so they must outlast the run (a
    role's keys are handed out with at least 15 minutes left). Glue clients come from
    the same session.
    """

    region: str
    endpoint_url: str | None
    path_style: bool
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    credentials: CredentialSession | None = field(default=None, compare=False)

    def __repr__(self) -> str:  # never show credentials
        return f"Storage(region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    @classmethod
    def of(cls, cfg: ExportConfig, credentials: CredentialSession | None = None) -> Storage:
        """``cfg``'s storage with ``credentials`` (a session of its own when None)."""
        credentials = credentials or CredentialSession(ConnectionSettings.of(cfg))
        settings = credentials.settings
        frozen = credentials.frozen()
        return cls(
            region=cfg.region or credentials.session.region_name or "us-east-1",
            endpoint_url=cfg.endpoint_url,
            path_style=settings.addressing_style == "path",
            access_key_id=frozen.access_key,
            secret_access_key=frozen.secret_key,
            session_token=frozen.token,
            credentials=credentials,
        )

    def iceberg(self) -> dict[str, str]:
        """pyiceberg FileIO properties (pyarrow's S3 filesystem)."""
        props = {
            "py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO",
            "s3.region": self.region,
            "s3.access-key-id": self.access_key_id,
            "s3.secret-access-key": self.secret_access_key,
            "s3.force-virtual-addressing": "false" if self.path_style else "true",
        }
        if self.session_token:
            props["s3.session-token"] = self.session_token
        if self.endpoint_url:
            props["s3.endpoint"] = self.endpoint_url
        return props

    def delta(self) -> dict[str, str]:
        """delta-rs storage options (the object_store crate's S3 client)."""
        options = {
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false" if self.path_style else "true",
        }
        if self.session_token:
            options["AWS_SESSION_TOKEN"] = self.session_token
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        return options


def table_location(cfg: ExportConfig) -> str:
    return f"s3://{cfg.bucket}/{cfg.key.rstrip('/')}"


# -- types ----------------------------------------------------------------------------------


def table_types(schema: pa.Schema, file_format: str) -> pa.Schema:
    """The model's columns with types both table formats hold without loss.

    Neither format has unsigned integers (pyiceberg would store a UINTEGER as a 32-bit
    int and wrap values past 2^31), so each widens to the next signed type; a UBIGINT
    becomes a decimal(20, 0). Dictionary-encoded columns are written as their values,
    GEOMETRY as its WKB bytes without DuckDB's extension mark,
    fixed-size lists (DuckDB's ARRAY) as lists, and zoned timestamps in UTC (the same
    instants: DuckDB names the session's zone, which pyiceberg refuses). Types a table
    cannot hold fail here, naming the column and its DuckDB type.
    """
    fields = []
    for f in schema:
        duckdb_type = type_name(f)
        field = f.with_type(_table_type(f.name, duckdb_type, f.type, file_format))
        fields.append(field.with_metadata(_own_metadata(field)))
    return pa.schema(fields, metadata=schema.metadata)


def _own_metadata(field: pa.Field) -> dict[bytes, bytes] | None:
    """The field's metadata without Arrow's extension marks.

    DuckDB marks a GEOMETRY as ``geoarrow.wkb``; Delta kept the mark in the table's
    schema, and polars then refused to read the table (its WKB bytes are plain binary).
    """
    meta = {k: v for k, v in (field.metadata or {}).items() if not k.startswith(b"ARROW:")}
    return meta or None


_UNSIGNED = {
    pa.uint8(): pa.int16(),
    pa.uint16(): pa.int32(),
    pa.uint32(): pa.int64(),
    pa.uint64(): pa.decimal128(20, 0),
}


def _table_type(name: str, duckdb_type: str, typ: pa.DataType, file_format: str) -> pa.DataType:
    def inner(t: pa.DataType) -> pa.DataType:
        return _table_type(name, duckdb_type, t, file_format)

    if pa.types.is_dictionary(typ):
        return inner(typ.value_type)
    if typ in _UNSIGNED:
        return _UNSIGNED[typ]
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return pa.list_(typ.value_field.with_type(inner(typ.value_type)))
    if pa.types.is_struct(typ):
        return pa.struct([f.with_type(inner(f.type)) for f in typ])
    if pa.types.is_map(typ):
        return pa.map_(inner(typ.key_type), inner(typ.item_type))
    table = "Iceberg" if file_format == "iceberg" else "Delta"
    problem = fix = None
    if pa.types.is_null(typ):
        problem = "has no type (it is NULL in every row)"
        fix = f"CAST(... AS VARCHAR) AS {name}"
    elif pa.types.is_interval(typ):
        problem = "is an INTERVAL, which neither Iceberg nor Delta can hold"
        fix = f"to_seconds or CAST(... AS VARCHAR) AS {name}"
    elif pa.types.is_timestamp(typ) and typ.unit == "ns":
        problem = f"has nanosecond timestamps, and {table} tables hold microseconds" + (
            " (format version 2)" if file_format == "iceberg" else ""
        )
        fix = f"CAST(... AS {'TIMESTAMPTZ' if typ.tz else 'TIMESTAMP'}) AS {name}"
    elif pa.types.is_time(typ) and file_format == "delta":
        problem = "is a TIME, which Delta cannot hold"
        fix = f"CAST(... AS VARCHAR) AS {name}"
    elif pa.types.is_time(typ) and typ.unit == "ns":
        problem = "has nanosecond times, and Iceberg tables hold microseconds"
        fix = f"CAST(... AS TIME) AS {name}"
    if problem is not None:
        raise column_error(name, duckdb_type, problem, f"Cast it in the model, e.g. {fix}")
    if pa.types.is_timestamp(typ) and typ.tz is not None and typ.tz != "UTC":
        return pa.timestamp(typ.unit, "UTC")
    return typ


def check_table_partition_types(
    schema: pa.Schema, columns: Iterable[str], what: str, file_format: str
) -> None:
    """Identity partition columns hold scalar values a table's partitions keep exactly.

    Nested values have no partition form; binary ones (BLOB, GEOMETRY) failed in both
    libraries unless the bytes were UTF-8, and delta-rs read them back altered. pyiceberg
    0.12 records a DOUBLE partition value in the manifests rounded to a FLOAT (0.1 as
    0.10000000149011612), so a scan filtering on the column missed its rows.
    """
    for column in columns:
        field = schema.field(column)
        typ = field.type
        problem = None
        if pa.types.is_nested(typ) or pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
            problem = "a table cannot hold a partition value of this type exactly"
        elif file_format == "iceberg" and pa.types.is_float64(typ):
            problem = (
                "pyiceberg records DOUBLE partition values rounded to FLOAT precision, so "
                "readers filtering on it would miss rows"
            )
        if problem is not None:
            raise column_error(
                column,
                type_name(field),
                f"is a partition column of {what}, and {problem}",
                "Partition by a column of another type (text, integer, decimal, date, "
                f"timestamp), e.g. CAST({column} AS VARCHAR) AS {column}_key",
            )


def cast_batches(reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        if batch.num_rows:
            yield batch if batch.schema.equals(schema) else batch.cast(schema)


# The commit property that names the run (its generation): how a commit whose answer
# was lost is known for this run's own.
RUN_PROPERTY = PROPERTY_PREFIX + "run"


def snapshot_properties(cfg: ExportConfig, ctx: RunContext, run: str) -> dict[str, str]:
    props = {
        RUN_PROPERTY: run,
        PROPERTY_PREFIX + "model": ctx.model,
        PROPERTY_PREFIX + "invocation_id": ctx.invocation_id or "",
        PROPERTY_PREFIX + "unique_id": ctx.unique_id or "",
        PROPERTY_PREFIX + "export_id": ctx.export_id(cfg),
        PROPERTY_PREFIX + "mode": cfg.mode,
    }
    return {k: v for k, v in props.items() if v}


def effective_mode(
    cfg: ExportConfig, ctx: RunContext, result: ExportResult, existing: str | None
) -> str | None:
    """The mode this run applies to the table (``existing`` names it if there is one).

    None when the run is skipped (``skip_if_exists``, said in ``result``); a table
    under ``error_if_exists`` fails. A rebuilt incremental model (``--full-refresh``)
    replaces its append export.
    """
    exists = existing is not None
    if exists and cfg.mode == "error_if_exists":
        raise ExportFailed(
            f"mode is error_if_exists and {existing} already exists. Drop the table, or use "
            "mode replace or skip_if_exists"
        )
    if exists and cfg.mode == "skip_if_exists":
        result.skipped = f"{existing} already exists"
        return None
    if exists and ctx.full_refresh and cfg.mode in ("append", "overwrite_partitions"):
        ctx.info(
            f"s3_export: {ctx.model} was rebuilt from scratch (full refresh): its {cfg.mode} "
            f"export replaces the whole table at {table_location(cfg)}"
        )
        return "replace"
    return cfg.mode


# -- owners ---------------------------------------------------------------------------------


def check_owner(
    cfg: ExportConfig,
    ctx: RunContext,
    what: str,
    recorded: str | None,
    earlier: str | None = None,
    *,
    elsewhere: str,
) -> str | None:
    """Whether this export may write the table ``what``; raises ``OwnershipConflict`` if not.

    ``recorded`` is the table's owner record, ``earlier`` the export id an earlier version
    of this package left in the table's latest commit. Returns None when the table is
    already this export's, else a note saying why the owner record is now rewritten
    (adopted from an earlier version, or taken over). ``elsewhere`` says what the fix
    changes to point the export at another table ("another key", ...).
    """
    me = ctx.export_id(cfg)
    owner = recorded or earlier
    if owner == me:
        if recorded:
            return None
        return f"{what} was written by an earlier version of dbt-s3-export for this export"
    if owner and owner == cfg.take_over_from:
        return f"{what} passes from export '{owner}' to '{me}' (take_over_from)"
    if owner is None and cfg.take_over_from == ADOPT_UNOWNED:
        return f"{what}, which named no owner, passes to export '{me}' (take_over_from: '*')"
    if owner is None:
        raise OwnershipConflict(
            f"{what} exists and names no dbt-s3-export owner (it was made by something else), "
            f"and this export is '{me}'. Nothing was written. Give this export {elsewhere}, "
            f"or, to let this export take the table over and rewrite it, set "
            f"take_over_from: '{ADOPT_UNOWNED}' for one run"
        )
    raise OwnershipConflict(
        f"{what} belongs to export '{owner}', and this export is '{me}'. Two exports cannot "
        f"share a table. Nothing was written. Give this export {elsewhere}, or, to hand the "
        f"table over to this export, set take_over_from: '{owner}' (the next run of "
        f"'{owner}' is then refused)"
    )


def earlier_owner(commits: Iterable[Mapping[str, Any]]) -> str | None:
    """The export id an earlier version of this package left in the newest of ``commits``."""
    for properties in commits:
        value = properties.get(PROPERTY_PREFIX + "export_id")
        if value:
            return str(value)
    return None


def check_outside_folder_exports(client: S3Client, cfg: ExportConfig, what: str) -> None:
    """The table's location is in no folder another export or table claims, nor is it one
    a folder export claims."""
    folder = cfg.key.rstrip("/") + "/"
    store = store_for(client, cfg, folder)
    owner = claim_at(store, folder, tables=False)
    claim = (folder, owner) if owner is not None else claim_around(store, folder)
    if claim is not None:
        claimed, owner = claim
        raise OwnershipConflict(
            f"s3://{cfg.bucket}/{claimed} belongs to {owner}, and {what} at "
            f"{table_location(cfg)} lies inside it. An export owns everything under its "
            "folder. Nothing was written. Give the table a key outside that folder"
        )


def check_holds_no_folder_export(client: S3Client, cfg: ExportConfig, what: str) -> None:
    """No other export or table claims a folder inside the location of a table about to
    be made.

    Checked when the table is created only: the listing covers every file under the
    location, which for an existing table means all its data files.
    """
    folder = cfg.key.rstrip("/") + "/"
    claim = claim_inside(store_for(client, cfg, folder), folder)
    if claim is not None:
        claimed, owner = claim
        raise OwnershipConflict(
            f"s3://{cfg.bucket}/{claimed} belongs to {owner}, and it lies inside the "
            f"location {table_location(cfg)} of {what}, whose clean-up of unreferenced "
            "files would delete that export's files. Nothing was written. Give the table a "
            "key that holds no other export"
        )


__all__ = [
    "OWNER_PROPERTY",
    "SchemaMismatch",
    "Storage",
    "TableConflict",
    "check_owner",
    "check_table_partition_types",
    "table_types",
]
