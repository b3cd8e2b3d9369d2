"""Iceberg tables written with pyiceberg, in a Glue, REST or SQL catalog (see tables/common.py).

Data files are written from the stream a chunk at a time (at most ``CHUNK_BYTES`` of
Arrow batches, one file per partition the chunk holds); the schema evolution, the
partition spec, the files this run replaces and the new snapshot are staged in one
pyiceberg transaction, and the catalog's commit makes them the table's state at once.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..commit import RunContext
from ..encoding.files import WrittenFile
from ..encoding.partitioning import check_partition_columns_exist
from ..encoding.typemap import DUCKDB_TYPE, column_error
from ..errors import ExportFailed
from ..options.config import ExportConfig, PartitionField, partition_fields
from .catalog import catalog_errors, create_namespace, load_catalog
from .common import (
    OWNER_PROPERTY,
    SchemaMismatch,
    Storage,
    cast_batches,
    check_holds_no_folder_export,
    check_outside_folder_exports,
    check_owner,
    check_table_partition_types,
    earlier_owner,
    effective_mode,
    snapshot_properties,
    table_location,
    table_types,
)
from .years import years_checked

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..result import ExportResult
    from ..source.base import BatchSource
else:
    S3Client = Any

# Arrow bytes of batches gathered before an Iceberg chunk is written as data files.
CHUNK_BYTES = 64 * 1024 * 1024


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


def _identity_columns(fields: Sequence[PartitionField]) -> list[str]:
    return [f.column for f in fields if f.transform == "identity"]


class IcebergWriter:
    """One run's write to an Iceberg table: check, write data files, commit one snapshot."""

    def __init__(
        self, cfg: ExportConfig, ctx: RunContext, storage: Storage, client: S3Client
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.storage = storage
        self.client = client
        self.name = f"{cfg.namespace}.{cfg.table}"
        self.what = f"Iceberg table {self.name}"
        # Set when this run's commit rewrites the table's owner (a takeover, an adoption).
        self.new_owner: str | None = None
        self.location = table_location(cfg)
        self.fields = partition_fields(cfg.partition_cols)
        self.written: list[Any] = []  # DataFiles of this run, deleted if it fails
        self.io: Any = None

    def run(self, source: BatchSource, result: ExportResult) -> None:
        from pyiceberg.exceptions import NoSuchTableError

        cfg = self.cfg
        schema = table_types(source.schema(), "iceberg")
        check_partition_columns_exist(schema, [f.column for f in self.fields])
        check_table_partition_types(schema, _identity_columns(self.fields), self.what, "iceberg")
        namespace, table_name = str(cfg.namespace), str(cfg.table)
        # Before the catalog is touched: the location is no folder export's.
        check_outside_folder_exports(self.client, cfg, self.what)
        with catalog_errors(cfg, self.name):
            catalog = load_catalog(cfg, self.storage)
            create_namespace(catalog, namespace)
            try:
                table = catalog.load_table((namespace, table_name))
            except NoSuchTableError:
                table = None
        if table is not None:
            self._check_owner(table)
            self._check_location(table)
        else:
            check_holds_no_folder_export(self.client, cfg, self.what)
        mode = effective_mode(
            cfg, self.ctx, result, None if table is None else f"Iceberg table {self.name}"
        )
        if mode is None:
            return
        with catalog_errors(cfg, self.name):
            tx = self._begin(catalog, table, schema, mode)
            if self.new_owner is not None:  # in the same commit as the rows
                tx.set_properties({OWNER_PROPERTY: self.ctx.export_id(cfg)})
        self.io = tx._table.io  # the table's FileIO; pyiceberg has no public accessor
        order_by = _identity_columns(self.fields)
        reader = source.open(order_by, cfg.batch_size)
        try:
            files = self._write(tx, reader, schema)
        finally:
            reader.close()
        properties = snapshot_properties(cfg, self.ctx, result.generation)
        self._snapshot(tx, table, mode, files, properties)
        committed = self._commit(tx)
        if self.new_owner is not None:
            self.ctx.info(f"s3_export: {self.ctx.model}: {self.new_owner}")
        snapshot = committed.current_snapshot()
        result.generation = str(snapshot.snapshot_id) if snapshot else ""
        result.files = [_written(self.location, f) for f in files]
        self.ctx.info(
            f"s3_export: {self.ctx.model}: Iceberg table {self.name} at snapshot "
            f"{result.generation} ({mode})"
        )

    def _commit(self, tx: Any) -> Any:
        """The catalog's commit; its files stay if it may have landed without an answer."""
        from pyiceberg.exceptions import (
            CommitFailedException,
            TableAlreadyExistsError,
            ValidationException,
        )

        refused = (CommitFailedException, TableAlreadyExistsError, ValidationException)
        try:
            with catalog_errors(self.cfg, self.name):
                return tx.commit_transaction()
        except BaseException as e:
            if not isinstance(e.__cause__, refused):
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

    def _check_owner(self, table: Any) -> None:
        """The table is this export's, or passes to it in this run's commit (take_over_from)."""
        snapshots = sorted(table.metadata.snapshots, key=lambda s: -s.timestamp_ms)
        self.new_owner = check_owner(
            self.cfg,
            self.ctx,
            self.what,
            table.properties.get(OWNER_PROPERTY),
            earlier_owner(s.summary.additional_properties for s in snapshots if s.summary),
            elsewhere="another namespace or table name",
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
            properties = {
                "write.parquet.compression-codec": _iceberg_codec(cfg.codec),
                OWNER_PROPERTY: self.ctx.export_id(cfg),
            }
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
            self.ctx.info(
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
                _refuse_case_only_rename(self.name, f.name, current.column_names)
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

        nan_checked = [
            c for c in _identity_columns(self.fields) if pa.types.is_floating(schema.field(c).type)
        ]
        for batch in years_checked(cast_batches(reader, schema), schema, "iceberg", self.what):
            for column in nan_checked:
                _refuse_nan_partition(self.name, column, schema.field(column), batch[column])
            chunk.append(batch)
            size += batch.nbytes
            if size >= CHUNK_BYTES:
                flush()
        flush()
        return list(self.written)

    def _snapshot(
        self, tx: Any, table: Any, mode: str, files: list[Any], properties: dict[str, str]
    ) -> None:
        """This run's files as one snapshot: an overwrite removes the files it replaces."""
        # replace (and the exists modes, on a new table) drops every live file; append none.
        live = [] if table is None or mode == "append" else _live_data_files(table)
        if mode == "overwrite_partitions":
            touched = {f.partition for f in files}  # all in the table's current spec
            spec_id = tx.table_metadata.default_spec_id
            live = [f for f in live if f.spec_id == spec_id and f.partition in touched]
        update = tx.update_snapshot(snapshot_properties=properties)
        with update.overwrite() if live else update.fast_append() as producer:
            for data_file in live:
                producer.delete_data_file(data_file)
            for data_file in files:
                producer.append_data_file(data_file)


def _refuse_nan_partition(table: str, column: str, field: pa.Field, values: Any) -> None:
    """pyiceberg finds a partition's rows by equality, and NaN equals nothing: a NaN in an
    identity partition column would fail the write (or lose its rows)."""
    import pyarrow.compute as pc

    if pc.any(pc.is_nan(values)).as_py():
        duckdb_type = (field.metadata or {}).get(DUCKDB_TYPE, b"").decode()
        raise column_error(
            column,
            duckdb_type or str(field.type),
            f"holds NaN, and it is an identity partition column of Iceberg table {table}: "
            "pyiceberg cannot write NaN into a partition",
            f"Map NaN to NULL in the model (CASE WHEN isnan({column}) THEN NULL ELSE {column} "
            "END), or partition by another column",
        )


def _refuse_case_only_rename(table: str, name: str, columns: Sequence[str]) -> None:
    """Iceberg names are case-sensitive: ``V`` in the model beside ``v`` in the table would
    be added as a new column, and ``v`` left NULL for every new row."""
    same = [c for c in columns if c.lower() == name.lower() and "." not in c]
    if same:
        raise SchemaMismatch(
            f"column '{name}' in the model is '{same[0]}' in Iceberg table {table}: the names "
            f"differ only in case, and Iceberg would add '{name}' as a new column and leave "
            f"'{same[0]}' NULL for new rows. Name it as the table does in the model "
            f'({name} AS "{same[0]}"), or drop the table to create it with the new name'
        )


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
