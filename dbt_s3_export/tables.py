"""Iceberg and Delta tables: a write path of its own beside the files of a folder export.

A table format brings what commit.py builds by hand for files. Its data files are
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
DuckDB in Arrow batches: Iceberg files are written from chunks of at most
``CHUNK_BYTES`` of batches, Delta files by delta-rs straight from the stream, so memory
never holds the whole model.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa

from .commit import RunContext, new_generation, supports_conditional_writes
from .config import ExportConfig, PartitionField, parse_partition_field
from .credentials import ConnectionSettings
from .errors import (
    ConfigError,
    ExportFailed,
    InvalidCredentials,
    S3ExportError,
    SourceError,
    TransferError,
    brief,
)
from .files import WrittenFile
from .transfer import get_object

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from .export import BatchSource, ExportResult
else:
    S3Client = Any

# Arrow bytes of batches gathered before an Iceberg chunk is written as data files.
CHUNK_BYTES = 64 * 1024 * 1024
# Snapshot (Iceberg) and commit (Delta) properties naming the dbt run.
PROPERTY_PREFIX = "dbt."


class TableConflict(ExportFailed):
    """Another writer committed to the table in a way this run's commit cannot follow."""


class SchemaMismatch(ExportFailed):
    """A column's type in the model cannot be written into the table's column."""


def _missing_extra(package: str) -> ConfigError:
    extra = "iceberg" if package == "pyiceberg" else "delta"
    return ConfigError(
        "",
        "file_format",
        f"{extra} needs the Python package '{package}', which is not installed",
        f'Install it with: pip install "dbt-s3-export[{extra}]"',
    )


# -- storage --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Storage:
    """The S3 connection of the export, as pyiceberg and delta-rs take it.

    Credentials come from the same settings (and the same boto3 chain) as the export's
    own S3 client, resolved once at the start of the run: pyarrow's and delta-rs's S3
    clients cannot refresh them, so a role session must outlast the run.
    """

    region: str
    endpoint_url: str | None
    path_style: bool
    access_key_id: str
    secret_access_key: str
    session_token: str | None

    def __repr__(self) -> str:  # never show credentials
        return f"Storage(region={self.region!r}, endpoint_url={self.endpoint_url!r})"

    @classmethod
    def of(cls, cfg: ExportConfig) -> Storage:
        settings = ConnectionSettings.of(cfg)
        session = settings.session()
        try:
            credentials = session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials else None
        except S3ExportError:
            raise
        except Exception as e:  # botocore's credential providers raise many kinds
            raise InvalidCredentials(
                f"cannot get S3 credentials from {settings.describe_source()}: {type(e).__name__}",
                code=type(e).__name__,
            ) from None
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            raise InvalidCredentials(
                f"no S3 credentials found ({settings.describe_source()}). Configure "
                "access_key_id and secret_access_key, a profile_name, or the standard AWS "
                "environment variables",
                code="NoCredentials",
            )
        return cls(
            region=cfg.region or session.region_name or "us-east-1",
            endpoint_url=cfg.endpoint_url,
            path_style=settings.addressing_style == "path",
            access_key_id=frozen.access_key,
            secret_access_key=frozen.secret_key,
            session_token=frozen.token,
        )

    def secrets(self) -> list[str]:
        return [v for v in (self.secret_access_key, self.session_token) if v]

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
    becomes a decimal(20, 0). Dictionary-encoded columns are written as their values.
    Types a table cannot hold fail here, naming the column.
    """
    fields = []
    for f in schema:
        fields.append(f.with_type(_table_type(f.name, f.type, file_format)))
    return pa.schema(fields, metadata=schema.metadata)


_UNSIGNED = {
    pa.uint8(): pa.int16(),
    pa.uint16(): pa.int32(),
    pa.uint32(): pa.int64(),
    pa.uint64(): pa.decimal128(20, 0),
}


def _table_type(name: str, typ: pa.DataType, file_format: str) -> pa.DataType:
    if pa.types.is_dictionary(typ):
        return _table_type(name, typ.value_type, file_format)
    if typ in _UNSIGNED:
        return _UNSIGNED[typ]
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.list_(typ.value_field.with_type(_table_type(name, typ.value_type, file_format)))
    if pa.types.is_struct(typ):
        return pa.struct([f.with_type(_table_type(name, f.type, file_format)) for f in typ])
    if pa.types.is_map(typ):
        key = _table_type(name, typ.key_type, file_format)
        return pa.map_(key, _table_type(name, typ.item_type, file_format))
    problem = None
    if pa.types.is_null(typ):
        problem = "has no type (it is NULL in every row)"
        fix = f"CAST(... AS VARCHAR) AS {name}"
    elif pa.types.is_interval(typ):
        problem = "is an INTERVAL, which neither Iceberg nor Delta can hold"
        fix = f"to_seconds or CAST(... AS VARCHAR) AS {name}"
    elif pa.types.is_timestamp(typ) and typ.unit == "ns" and file_format == "iceberg":
        problem = "has nanosecond timestamps, which Iceberg tables of format version 2 cannot hold"
        fix = f"CAST(... AS TIMESTAMP) AS {name}"
    elif pa.types.is_time(typ) and file_format == "delta":
        problem = "is a TIME, which Delta cannot hold"
        fix = f"CAST(... AS VARCHAR) AS {name}"
    if problem is not None:
        raise SourceError(f"column '{name}' {problem}. Cast it in the model, e.g. {fix}")
    return typ


def _cast_batches(reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    for batch in reader:
        if batch.num_rows:
            yield batch if batch.schema.equals(schema) else batch.cast(schema)


def _snapshot_properties(cfg: ExportConfig, ctx: RunContext) -> dict[str, str]:
    props = {
        PROPERTY_PREFIX + "model": ctx.model,
        PROPERTY_PREFIX + "invocation_id": ctx.invocation_id or "",
        PROPERTY_PREFIX + "unique_id": ctx.unique_id or "",
        PROPERTY_PREFIX + "export_id": ctx.export_id(cfg),
        PROPERTY_PREFIX + "mode": cfg.mode,
    }
    return {k: v for k, v in props.items() if v}


def _effective_mode(cfg: ExportConfig, ctx: RunContext, exists: bool) -> str:
    """A rebuilt incremental model (``--full-refresh``) replaces its append export."""
    if exists and ctx.full_refresh and cfg.mode in ("append", "overwrite_partitions"):
        ctx.log(
            f"s3_export: {ctx.model} was rebuilt from scratch (full refresh): its {cfg.mode} "
            f"export replaces the whole table at {table_location(cfg)}"
        )
        return "replace"
    return cfg.mode


def _exists_error(cfg: ExportConfig, what: str) -> ExportFailed:
    return ExportFailed(
        f"mode is error_if_exists and {what} already exists. Drop the table, or use mode "
        "replace or skip_if_exists"
    )


# -- Iceberg --------------------------------------------------------------------------------


def _iceberg_transform(f: PartitionField) -> Any:
    from pyiceberg import transforms

    if f.transform == "bucket":
        return transforms.BucketTransform(int(f.width or 0))
    if f.transform == "truncate":
        return transforms.TruncateTransform(int(f.width or 0))
    return {
        "identity": transforms.IdentityTransform,
        "year": transforms.YearTransform,
        "month": transforms.MonthTransform,
        "day": transforms.DayTransform,
        "hour": transforms.HourTransform,
    }[f.transform]()


def partition_fields(cfg: ExportConfig) -> list[PartitionField]:
    return [parse_partition_field(c) or PartitionField(c) for c in cfg.partition_cols]


def load_catalog(cfg: ExportConfig, storage: Storage) -> Any:
    """The pyiceberg catalog the export's ``catalog`` options describe."""
    try:
        from pyiceberg.catalog import load_catalog as pyiceberg_catalog
    except ModuleNotFoundError:
        raise _missing_extra("pyiceberg") from None
    catalog = cfg.catalog
    assert catalog is not None
    props: dict[str, str] = {**storage.iceberg(), **dict(catalog.properties)}
    if catalog.type == "glue":
        from pyiceberg.catalog.glue import GlueCatalog

        from .glue import glue_client

        client = glue_client(cfg, catalog.region, catalog.endpoint_url, catalog.catalog_id)
        return GlueCatalog(catalog.name, client=client, **props)
    props["type"] = catalog.type
    for name in ("uri", "warehouse", "token", "credential"):
        value = getattr(catalog, name)
        if value is not None:
            props[name] = value
    try:
        return pyiceberg_catalog(catalog.name, **props)
    except ModuleNotFoundError as e:
        driver = "psycopg2-binary" if "psycopg" in str(e) else str(e.name)
        raise ConfigError(
            "",
            "catalog",
            f"the {catalog.type} catalog needs the Python package '{driver}', which is not "
            "installed",
            f"pip install {driver}",
        ) from None


def _identity_columns(fields: Sequence[PartitionField]) -> list[str]:
    return [f.column for f in fields if f.transform == "identity"]


class IcebergWriter:
    """One run's write to an Iceberg table: check, write data files, commit one snapshot."""

    def __init__(self, cfg: ExportConfig, ctx: RunContext, storage: Storage) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.storage = storage
        self.name = f"{cfg.namespace}.{cfg.table}"
        self.location = table_location(cfg)
        self.fields = partition_fields(cfg)
        self.written: list[Any] = []  # DataFiles of this run, deleted if it fails
        self.io: Any = None

    def run(self, source: BatchSource, result: ExportResult) -> None:
        from pyiceberg.exceptions import NoSuchTableError

        cfg = self.cfg
        schema = table_types(source.schema(), "iceberg")
        self._check_columns(schema)
        namespace, table_name = str(cfg.namespace), str(cfg.table)
        with _catalog_errors(cfg, self.name):
            catalog = load_catalog(cfg, self.storage)
            _create_namespace(catalog, namespace)
            try:
                table = catalog.load_table((namespace, table_name))
            except NoSuchTableError:
                table = None
        if table is not None:
            self._check_location(table)
            if cfg.mode == "error_if_exists":
                raise _exists_error(cfg, f"Iceberg table {self.name}")
            if cfg.mode == "skip_if_exists":
                result.skipped = f"Iceberg table {self.name} already exists"
                return
        mode = _effective_mode(cfg, self.ctx, table is not None)
        with _catalog_errors(cfg, self.name):
            tx = self._begin(catalog, table, schema, mode)
        self.io = tx._table.io  # the table's FileIO; pyiceberg has no public accessor
        order_by = _identity_columns(self.fields)
        reader = source.open(order_by, cfg.batch_size)
        try:
            files = self._write(tx, reader, schema)
        finally:
            reader.close()
        properties = _snapshot_properties(cfg, self.ctx)
        self._snapshot(tx, table, mode, files, properties)
        committed = self._commit(tx)
        snapshot = committed.current_snapshot()
        result.generation = str(snapshot.snapshot_id) if snapshot else ""
        result.files = [_written(self.location, f) for f in files]
        self.ctx.log(
            f"s3_export: {self.ctx.model}: Iceberg table {self.name} at snapshot "
            f"{result.generation} ({mode})"
        )

    def _commit(self, tx: Any) -> Any:
        """The catalog's commit; its files stay if it may have landed without an answer."""
        from pyiceberg.exceptions import CommitFailedException, ValidationException

        try:
            with _catalog_errors(self.cfg, self.name):
                return tx.commit_transaction()
        except BaseException as e:
            if not isinstance(e.__cause__, (CommitFailedException, ValidationException)):
                # Not a refusal: the catalog may hold the new snapshot, files and all.
                self.written = []
            raise

    def abort(self) -> None:
        """Delete the data files this run wrote: no snapshot references them."""
        if self.io is None:
            return
        for data_file in self.written:
            with contextlib.suppress(Exception):
                self.io.delete(data_file.file_path)

    def _check_columns(self, schema: pa.Schema) -> None:
        for f in self.fields:
            if f.column not in schema.names:
                raise SourceError(
                    f"partition column '{f.column}' is not in the model; its columns are: "
                    f"{', '.join(schema.names)}. Fix 'partition_cols'"
                )

    def _check_location(self, table: Any) -> None:
        there = str(table.metadata.location).rstrip("/")
        if there != self.location:
            raise ExportFailed(
                f"Iceberg table {self.name} is at {there}, not at {self.location} where this "
                "export writes. Point bucket and key at the table's location, or give the "
                "export another table name"
            )

    def _begin(self, catalog: Any, table: Any, schema: pa.Schema, mode: str) -> Any:
        """A transaction that creates the table, or evolves its schema and spec."""
        from pyiceberg.io.pyarrow import _pyarrow_to_schema_without_ids
        from pyiceberg.partitioning import PartitionField as IcebergField
        from pyiceberg.partitioning import PartitionSpec
        from pyiceberg.schema import assign_fresh_schema_ids

        cfg = self.cfg
        if table is None:
            iceberg_schema = assign_fresh_schema_ids(_pyarrow_to_schema_without_ids(schema))
            spec = PartitionSpec(
                *(
                    IcebergField(
                        source_id=iceberg_schema.find_field(f.column).field_id,
                        field_id=1000 + i,
                        transform=_iceberg_transform(f),
                        name=f.name,
                    )
                    for i, f in enumerate(self.fields)
                )
            )
            properties = {"write.parquet.compression-codec": _iceberg_codec(cfg.codec)}
            if cfg.compression_level is not None:
                properties["write.parquet.compression-level"] = str(cfg.compression_level)
            return catalog.create_table_transaction(
                (cfg.namespace, cfg.table),
                schema=iceberg_schema,
                location=self.location,
                partition_spec=spec,
                properties=properties,
            )
        evolve = self._schema_changes(table, schema)
        tx = table.transaction()
        if evolve:
            self.ctx.log(
                f"s3_export: {self.ctx.model}: Iceberg table {self.name}: {', '.join(evolve)}"
            )
            with tx.update_schema() as update:
                update.union_by_name(schema)
        self._evolve_spec(tx, table, mode)
        return tx

    def _schema_changes(self, table: Any, schema: pa.Schema) -> list[str]:
        """What the model changes in the table's schema; a change it cannot make fails."""
        from pyiceberg.exceptions import ResolveError
        from pyiceberg.io.pyarrow import _pyarrow_to_schema_without_ids
        from pyiceberg.schema import promote

        current = table.schema()
        model = _pyarrow_to_schema_without_ids(schema)
        changes: list[str] = []
        for f in model.fields:
            try:
                there = current.find_field(f.name)
            except ValueError:
                changes.append(f"adds column {f.name} ({f.field_type})")
                continue
            if there.field_type == f.field_type:
                continue
            with contextlib.suppress(ResolveError):
                promote(f.field_type, there.field_type)
                continue  # the model's type is narrower: its values are written widened
            try:
                promote(there.field_type, f.field_type)
            except ResolveError:
                raise SchemaMismatch(
                    f"column '{f.name}' is {there.field_type} in Iceberg table {self.name} but "
                    f"{f.field_type} in the model, and Iceberg cannot change a column's type "
                    "that way. Cast the column back in the model, or give the new type a new "
                    "column name"
                ) from None
            changes.append(f"widens column {f.name} from {there.field_type} to {f.field_type}")
        return changes

    def _evolve_spec(self, tx: Any, table: Any, mode: str) -> None:
        spec = table.spec()
        names = table.schema()
        have = [(names.find_column_name(f.source_id), str(f.transform)) for f in spec.fields]
        want = [(f.column, str(_iceberg_transform(f))) for f in self.fields]
        if have == want:
            return
        if mode != "replace":
            shown = ", ".join(f"{t}({c})" for c, t in have) or "nothing"
            wanted = ", ".join(self.cfg.partition_cols) or "not at all"
            raise ExportFailed(
                f"Iceberg table {self.name} is partitioned by {shown}, and mode {mode} would "
                f"add rows partitioned as partition_cols says ({wanted}). "
                "Rewrite the table once with mode replace (or --full-refresh) to change its "
                "partitioning"
            )
        with tx.update_spec() as update:
            for f in spec.fields:
                update.remove_field(f.name)
            for f in self.fields:
                update.add_field(f.column, _iceberg_transform(f), f.name)

    def _write(self, tx: Any, reader: pa.RecordBatchReader, schema: pa.Schema) -> list[Any]:
        """Data files from the stream, a chunk of at most CHUNK_BYTES of batches at a time."""
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        write_uuid = uuid.uuid4()
        counter = itertools.count(0)
        files: list[Any] = []
        chunk: list[pa.RecordBatch] = []
        size = 0

        def flush() -> None:
            nonlocal chunk, size
            if not chunk:
                return
            table = pa.Table.from_batches(chunk, schema=schema)
            chunk, size = [], 0
            for data_file in _dataframe_to_data_files(
                table_metadata=tx.table_metadata,
                df=table,
                io=self.io,
                write_uuid=write_uuid,
                counter=counter,
            ):
                self.written.append(data_file)
                files.append(data_file)

        for batch in _cast_batches(reader, schema):
            chunk.append(batch)
            size += batch.nbytes
            if size >= CHUNK_BYTES:
                flush()
        flush()
        return files

    def _snapshot(
        self, tx: Any, table: Any, mode: str, files: list[Any], properties: dict[str, str]
    ) -> None:
        """This run's files as one snapshot: an overwrite removes the files it replaces."""
        live = _live_data_files(table) if table is not None else []
        if mode == "overwrite_partitions":
            touched = {f.partition for f in files}  # all in the table's current spec
            spec_id = tx.table_metadata.default_spec_id
            live = [f for f in live if f.spec_id == spec_id and f.partition in touched]
        elif mode not in ("replace", "error_if_exists", "skip_if_exists"):
            live = []
        update = tx.update_snapshot(snapshot_properties=properties)
        with update.overwrite() if live else update.fast_append() as producer:
            for data_file in live:
                producer.delete_data_file(data_file)
            for data_file in files:
                producer.append_data_file(data_file)


def _create_namespace(catalog: Any, namespace: str) -> None:
    """Create the namespace unless it exists; a run creating it at the same moment is fine."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
            raise


def _iceberg_codec(codec: str) -> str:
    return "uncompressed" if codec == "none" else codec


def _live_data_files(table: Any) -> list[Any]:
    """The data files of the table's current snapshot."""
    from pyiceberg.manifest import DataFileContent

    snapshot = table.current_snapshot()
    if snapshot is None:
        return []
    return [
        entry.data_file
        for manifest in snapshot.manifests(table.io)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
        if entry.data_file.content == DataFileContent.DATA
    ]


def _written(location: str, data_file: Any) -> WrittenFile:
    path = str(data_file.file_path)
    key = path.split("/", 3)[3] if path.startswith("s3://") else path
    relative = path[len(location) + 1 :] if path.startswith(location + "/") else path
    partition = relative.rsplit("/", 1)[0] + "/" if "/" in relative else ""
    return WrittenFile(
        key, int(data_file.record_count), int(data_file.file_size_in_bytes), partition
    )


@contextlib.contextmanager
def _catalog_errors(cfg: ExportConfig, name: str) -> Iterator[None]:
    """pyiceberg's catalog errors as ours, saying what to do."""
    from pyiceberg.exceptions import CommitFailedException, ValidationException

    catalog = cfg.catalog
    kind = catalog.type if catalog else "?"
    try:
        yield
    except S3ExportError:
        raise
    except (CommitFailedException, ValidationException) as e:
        raise TableConflict(
            f"another writer committed to Iceberg table {name} while this run was writing, "
            f"and this run's commit cannot be applied on top of it ({brief(e)}). The table is "
            "at the other writer's snapshot; run again"
        ) from e
    except (OSError, ValueError, RuntimeError) as e:
        raise TransferError(f"the {kind} catalog failed on Iceberg table {name}: {brief(e)}") from e
    except Exception as e:
        # botocore's errors (Glue), SQLAlchemy's (SQL), requests' (REST) have no common base.
        raise TransferError(f"the {kind} catalog failed on Iceberg table {name}: {brief(e)}") from e


# -- Delta ----------------------------------------------------------------------------------


class DeltaWriter:
    """One run's write to a Delta table: delta-rs streams the files and commits the log entry."""

    def __init__(
        self, cfg: ExportConfig, ctx: RunContext, storage: Storage, client: S3Client
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.storage = storage
        self.client = client
        self.uri = table_location(cfg)

    def run(self, source: BatchSource, result: ExportResult) -> None:
        try:
            import deltalake
            from deltalake import CommitProperties, DeltaTable, write_deltalake
        except ModuleNotFoundError:
            raise _missing_extra("deltalake") from None
        cfg = self.cfg
        self._check_commits_are_safe()
        options = self.storage.delta()
        schema = table_types(source.schema(), "delta")
        for col in cfg.partition_cols:
            if col not in schema.names:
                raise SourceError(
                    f"partition column '{col}' is not in the model; its columns are: "
                    f"{', '.join(schema.names)}. Fix 'partition_cols'"
                )
        table = None
        with _delta_errors(self.uri):
            if DeltaTable.is_deltatable(self.uri, storage_options=options):
                table = DeltaTable(self.uri, storage_options=options)
        if table is not None:
            if cfg.mode == "error_if_exists":
                raise _exists_error(cfg, f"Delta table {self.uri}")
            if cfg.mode == "skip_if_exists":
                result.skipped = f"Delta table {self.uri} already exists"
                return
        mode = _effective_mode(cfg, self.ctx, table is not None)
        kwargs: dict[str, Any] = {"mode": "append" if mode == "append" else "overwrite"}
        if table is not None:
            schema = self._fit_schema(table, schema, mode)
            kwargs["schema_mode"] = "merge"
            if mode == "replace" and self._partitioning(table) != list(cfg.partition_cols):
                kwargs["schema_mode"] = "overwrite"  # a new layout: only replace may change it
            elif self._partitioning(table) != list(cfg.partition_cols):
                raise ExportFailed(
                    f"Delta table {self.uri} is partitioned by "
                    f"{self._partitioning(table) or 'nothing'}, and mode {mode} would add rows "
                    f"partitioned by {list(cfg.partition_cols) or 'nothing'}. Rewrite the table "
                    "once with mode replace (or --full-refresh) to change its partitioning"
                )
            if mode == "overwrite_partitions":
                kwargs["predicate"] = self._partitions_predicate(source, schema)
                if kwargs["predicate"] is None:
                    kwargs["mode"] = "append"  # no rows: no partition to replace
        reader = source.open(list(cfg.partition_cols), cfg.batch_size)
        stream = pa.RecordBatchReader.from_batches(schema, _cast_batches(reader, schema))
        try:
            with _delta_errors(self.uri):
                write_deltalake(
                    self.uri,
                    stream,
                    partition_by=list(cfg.partition_cols) or None,
                    storage_options=options,
                    commit_properties=CommitProperties(
                        custom_metadata=_snapshot_properties(cfg, self.ctx)
                    ),
                    writer_properties=deltalake.WriterProperties(
                        compression=_delta_codec(cfg.codec),
                        compression_level=cfg.compression_level,
                    ),
                    **kwargs,
                )
                table = DeltaTable(self.uri, storage_options=options)
        finally:
            reader.close()
        result.generation = str(table.version())
        result.files = self._added_files(table.version())
        self.ctx.log(
            f"s3_export: {self.ctx.model}: Delta table {self.uri} at version {result.generation} "
            f"({mode})"
        )

    def _added_files(self, version: int) -> list[WrittenFile]:
        """The data files the commit of ``version`` added, from its log entry."""
        key = f"{self.cfg.key.rstrip('/')}/_delta_log/{version:020d}.json"
        stored = get_object(self.client, self.cfg.bucket, key)
        files = []
        for line in (stored.body if stored else b"").splitlines():
            add = json.loads(line).get("add") if line.strip() else None
            if not add:
                continue
            stats = json.loads(add.get("stats") or "{}")
            path = unquote(str(add["path"]))
            partition = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
            files.append(
                WrittenFile(
                    f"{self.cfg.key.rstrip('/')}/{path}",
                    int(stats.get("numRecords") or 0),
                    int(add.get("size") or 0),
                    partition,
                )
            )
        return files

    def _check_commits_are_safe(self) -> None:
        """delta-rs commits with ``If-None-Match: *``: a server that ignores it loses commits."""
        cfg = self.cfg
        if cfg.conditional_writes == "true":
            return
        if cfg.conditional_writes == "false":
            self.ctx.log(
                f"s3_export: {self.ctx.model}: conditional_writes is false: two runs writing "
                f"Delta table {self.uri} at once could lose one's commit"
            )
            return
        folder = cfg.key.rstrip("/") + "/"
        if not supports_conditional_writes(self.client, cfg.bucket, folder):
            raise ExportFailed(
                f"the S3 server at {cfg.endpoint_url or 'the default endpoint'} ignores "
                "conditional writes (If-None-Match), which delta-rs relies on to commit; two "
                "runs writing the table at once could each overwrite the other's commit. "
                "Nothing was written. If no two runs ever write this table at once, set "
                "conditional_writes: false"
            )

    @staticmethod
    def _partitioning(table: Any) -> list[str]:
        return list(table.metadata().partition_columns)

    def _fit_schema(self, table: Any, schema: pa.Schema, mode: str) -> pa.Schema:
        """The model's schema with each column at the table's type, where it can be written so."""
        there = pa.schema(table.schema().to_arrow())
        fields = []
        for f in schema:
            if f.name not in there.names:
                fields.append(f)
                continue
            target = there.field(f.name).type
            if _same_delta_type(f.type, target):
                fields.append(f.with_type(target))
                continue
            if mode == "replace" and self._partitioning(table) != list(self.cfg.partition_cols):
                fields.append(f)
                continue
            if _widens(f.type, target):
                fields.append(f.with_type(target))
                continue
            raise SchemaMismatch(
                f"column '{f.name}' is {target} in Delta table {self.uri} but {f.type} in the "
                "model, and the model's values cannot be written into the table's column. "
                "Cast the column back in the model, or give the new type a new column name"
            )
        return pa.schema(fields)

    def _partitions_predicate(self, source: BatchSource, schema: pa.Schema) -> str | None:
        """The SQL predicate naming the partitions this run writes (one pass over them)."""
        cols = list(self.cfg.partition_cols)
        seen: set[tuple[Any, ...]] = set()
        reader = source.open([], self.cfg.batch_size)
        try:
            for batch in reader:
                if batch.num_rows:
                    keys = pa.Table.from_batches([batch]).select(cols).group_by(cols).aggregate([])
                    seen.update(tuple(row[c] for c in cols) for row in keys.to_pylist())
        finally:
            reader.close()
        if not seen:
            return None
        types = {c: schema.field(c).type for c in cols}
        terms = [
            "("
            + " AND ".join(_sql_equals(c, v, types[c]) for c, v in zip(cols, key, strict=True))
            + ")"
            for key in sorted(seen, key=repr)
        ]
        return " OR ".join(terms)


def _sql_equals(column: str, value: Any, typ: pa.DataType) -> str:
    name = '"' + column.replace('"', '""') + '"'
    if value is None:
        return f"{name} IS NULL"
    if isinstance(value, bool):
        return f"{name} = {'true' if value else 'false'}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{name} = {value!r}"
    text = str(value).replace("'", "''")
    if pa.types.is_date(typ):
        return f"{name} = DATE '{text}'"
    if pa.types.is_timestamp(typ):
        return f"{name} = TIMESTAMP '{text}'"
    return f"{name} = '{text}'"


def _same_delta_type(a: pa.DataType, b: pa.DataType) -> bool:
    """Whether Delta stores both alike (string views and large strings are strings)."""
    strings = (pa.string(), pa.large_string(), pa.string_view())
    binaries = (pa.binary(), pa.large_binary(), pa.binary_view())
    if (a in strings and b in strings) or (a in binaries and b in binaries):
        return True
    if pa.types.is_timestamp(a) and pa.types.is_timestamp(b):
        return (a.tz is None) == (b.tz is None)
    return bool(a.equals(b))


def _widens(model: pa.DataType, table: pa.DataType) -> bool:
    """Whether every value of the model's type fits the table's column type exactly."""
    ints = [pa.int8(), pa.int16(), pa.int32(), pa.int64()]
    if model in ints and table in ints:
        return ints.index(model) <= ints.index(table)
    if model == pa.float32() and table == pa.float64():
        return True
    if pa.types.is_decimal(model) and pa.types.is_decimal(table):
        return bool(
            model.scale <= table.scale
            and model.precision - model.scale <= table.precision - table.scale
        )
    return False


def _delta_codec(codec: str) -> Any:
    return {"none": "UNCOMPRESSED"}.get(codec, codec.upper())


@contextlib.contextmanager
def _delta_errors(uri: str) -> Iterator[None]:
    try:
        yield
    except S3ExportError:
        raise
    except Exception as e:
        from deltalake.exceptions import CommitFailedError, SchemaMismatchError

        if isinstance(e, CommitFailedError):
            raise TableConflict(
                f"another writer committed to Delta table {uri} while this run was writing, "
                f"and this run's commit conflicts with it ({brief(e)}). The table is at the "
                "other writer's version; run again"
            ) from e
        if isinstance(e, SchemaMismatchError):
            raise SchemaMismatch(f"Delta table {uri}: {brief(e)}") from e
        raise TransferError(f"writing Delta table {uri} failed: {brief(e)}") from e


# -- the entry point ------------------------------------------------------------------------


def export_table(
    cfg: ExportConfig,
    source: BatchSource,
    client: S3Client,
    ctx: RunContext,
    result: ExportResult,
) -> ExportResult:
    """Write ``source`` as the Iceberg or Delta table ``cfg`` names, in one commit."""
    started = time.monotonic()
    storage = Storage.of(cfg)
    result.generation = new_generation()
    if cfg.file_format == "iceberg":
        writer = IcebergWriter(cfg, ctx, storage)
        try:
            writer.run(source, result)
        except BaseException as e:
            writer.abort()
            if isinstance(e, Exception) and not isinstance(e, S3ExportError):
                raise ExportFailed(
                    f"writing Iceberg table {writer.name} failed: {brief(e)}. The table is "
                    "unchanged"
                ) from e
            raise
    else:
        DeltaWriter(cfg, ctx, storage, client).run(source, result)
    result.seconds = time.monotonic() - started
    return result


__all__ = ["SchemaMismatch", "Storage", "TableConflict", "export_table", "table_types"]
