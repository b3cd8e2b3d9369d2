"""Delta tables written with delta-rs (see tables/common.py).

delta-rs writes the data files from the stream and commits by creating the next
``_delta_log`` entry only if it is absent (``If-None-Match: *``), so concurrent writers
need no lock table on a server that honours that condition; the export checks that it
does before writing.

The table's owner is a key of its configuration (tables/common.py). delta-rs writes no key it
does not know with the data, so a new table is first created empty with its owner
(version 0, created only where no table is: of two exports creating it at once, one
wins and the other is refused as any other owner is), and the rows follow as version 1.
A takeover rewrites the owner in a commit of its own before the rows; a run of the old
owner that read the table before that commit fails on it ("metadata changed").
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa

from ..commit import RunContext, supports_conditional_writes
from ..encoding.files import WrittenFile
from ..encoding.partitioning import check_partition_columns_exist
from ..encoding.typemap import DUCKDB_TYPE, column_error
from ..errors import ExportFailed, S3ExportError, TransferError, brief
from ..options.config import ExportConfig
from ..s3.objects import get_object
from .common import (
    OWNER_PROPERTY,
    RUN_PROPERTY,
    SchemaMismatch,
    Storage,
    TableConflict,
    cast_batches,
    check_holds_no_folder_export,
    check_outside_folder_exports,
    check_owner,
    earlier_owner,
    effective_mode,
    missing_extra,
    snapshot_properties,
    table_location,
    table_types,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..result import ExportResult
    from ..source.base import BatchSource
else:
    S3Client = Any


# How many of the newest commits are searched for the export id an earlier version of
# this package wrote (before tables had an owner record).
EARLIER_COMMITS = 20


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
        self.what = f"Delta table {self.uri}"

    def run(self, source: BatchSource, result: ExportResult) -> None:
        try:
            import deltalake
            from deltalake import CommitProperties, DeltaTable, write_deltalake
            from deltalake.exceptions import TableNotFoundError
        except ModuleNotFoundError:
            raise missing_extra("deltalake") from None
        cfg = self.cfg
        self._check_commits_are_safe()
        options = self.storage.delta()
        schema = table_types(source.schema(), "delta")
        check_partition_columns_exist(schema, cfg.partition_cols)
        check_outside_folder_exports(self.client, cfg, self.what)
        with _delta_errors(self.uri):
            try:
                table: DeltaTable | None = DeltaTable(self.uri, storage_options=options)
            except TableNotFoundError:
                table = None
        new_owner = None
        if table is not None:
            new_owner = self._check_owner(table)
        else:
            check_holds_no_folder_export(self.client, cfg, self.what)
        mode = effective_mode(cfg, self.ctx, result, None if table is None else self.what)
        if mode is None:
            return
        run = result.generation
        commit_properties = CommitProperties(
            custom_metadata=snapshot_properties(cfg, self.ctx, run)
        )
        owner = {OWNER_PROPERTY: self.ctx.export_id(cfg)}
        if table is None:
            table = self._create(schema, owner, commit_properties)
            schema = self._fit_schema(table, schema, replaces_layout=False)
            kwargs: dict[str, Any] = {"mode": "append"}  # into the empty table just made
        else:
            if new_owner is not None:
                with _delta_errors(self.uri):
                    table.alter.set_table_properties(
                        owner, raise_if_not_exists=False, commit_properties=commit_properties
                    )
                self.ctx.info(f"s3_export: {self.ctx.model}: {new_owner}")
            kwargs, schema = self._existing(table, source, schema, mode)
        reader = source.open(list(cfg.partition_cols), cfg.batch_size)
        batches = _partition_values_checked(
            cast_batches(reader, schema), schema, list(cfg.partition_cols), self.uri
        )
        stream = pa.RecordBatchReader.from_batches(schema, batches)
        before = table.version()
        try:
            with _delta_errors(self.uri):
                # Written through the table read above, which then stands at this run's
                # commit, even when another writer commits right after it.
                write_deltalake(
                    table,
                    stream,
                    partition_by=list(cfg.partition_cols) or None,
                    storage_options=options,
                    commit_properties=commit_properties,
                    writer_properties=deltalake.WriterProperties(
                        compression=_delta_codec(cfg.codec),
                        compression_level=cfg.compression_level,
                    ),
                    **kwargs,
                )
            version = table.version()
        except TransferError:
            # The log entry may have landed with its answer lost: then it names this run.
            landed = self._committed_by(run, before, options)
            if landed is None:
                raise
            version = landed
        finally:
            reader.close()
        result.generation = str(version)
        result.files = self._added_files(version)
        self.ctx.info(
            f"s3_export: {self.ctx.model}: Delta table {self.uri} at version {result.generation} "
            f"({mode})"
        )

    def _committed_by(self, run: str, since: int, options: dict[str, str]) -> int | None:
        """The version after ``since`` that this run committed, if one did."""
        from deltalake import DeltaTable

        try:
            table = DeltaTable(self.uri, storage_options=options)
            newer = table.version() - since
            history = table.history(newer) if newer > 0 else []
        except Exception:
            return None  # the table cannot be read now: the write's own error stands
        return next((int(c["version"]) for c in history if c.get(RUN_PROPERTY) == run), None)

    def _check_owner(self, table: Any) -> str | None:
        """The table is this export's, or passes to it before the rows (take_over_from)."""
        with _delta_errors(self.uri):
            recorded = table.metadata().configuration.get(OWNER_PROPERTY)
            earlier = None if recorded else earlier_owner(table.history(EARLIER_COMMITS))
        return check_owner(
            self.cfg, self.ctx, self.what, recorded, earlier, elsewhere="another key"
        )

    def _create(self, schema: pa.Schema, owner: dict[str, str], commit_properties: Any) -> Any:
        """The table, empty, with this export as its owner; made only where none is."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        options = self.storage.delta()
        try:
            return DeltaTable.create(
                self.uri,
                pa.schema([f.with_type(_creatable(f.type)) for f in schema]),
                mode="error",
                partition_by=list(self.cfg.partition_cols) or None,
                configuration=owner,
                storage_options=options,
                commit_properties=commit_properties,
                raise_if_key_not_exists=False,
            )
        except Exception as e:
            # Another writer made the table at the same moment: its owner decides.
            with _delta_errors(self.uri):
                try:
                    table = DeltaTable(self.uri, storage_options=options)
                except TableNotFoundError:
                    raise e from None  # no table there: the create failed for another reason
            if self._check_owner(table) is not None:
                raise TableConflict(
                    f"another writer created {self.what} while this run was creating it. "
                    "Nothing was written; run again"
                ) from e
            return table  # another run of this export made it

    def _existing(
        self, table: Any, source: BatchSource, schema: pa.Schema, mode: str
    ) -> tuple[dict[str, Any], pa.Schema]:
        """The arguments of the write into an existing table, and the schema of its rows."""
        cfg = self.cfg
        kwargs: dict[str, Any] = {"mode": "append" if mode == "append" else "overwrite"}
        current = list(table.metadata().partition_columns)
        relayout = current != list(cfg.partition_cols)
        schema = self._fit_schema(table, schema, replaces_layout=relayout and mode == "replace")
        kwargs["schema_mode"] = "merge"
        if relayout and mode == "replace":
            kwargs["schema_mode"] = "overwrite"  # a new layout: only replace may change it
        elif relayout:
            raise ExportFailed(
                f"Delta table {self.uri} is partitioned by "
                f"{current or 'nothing'}, and mode {mode} would add rows "
                f"partitioned by {list(cfg.partition_cols) or 'nothing'}. Rewrite the table "
                "once with mode replace (or --full-refresh) to change its partitioning"
            )
        if mode == "overwrite_partitions":
            kwargs["predicate"] = self._partitions_predicate(source, schema)
            if kwargs["predicate"] is None:
                kwargs["mode"] = "append"  # no rows: no partition to replace
        return kwargs, schema

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
            self.ctx.info(
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

    def _fit_schema(self, table: Any, schema: pa.Schema, *, replaces_layout: bool) -> pa.Schema:
        """The model's schema with each column at the table's type, where it can be written so.

        A replace that changes the partitioning rewrites the table: each column as the model has it.
        """
        there = pa.schema(table.schema().to_arrow())
        fields = []
        for f in schema:
            if f.name not in there.names:
                fields.append(f)
                continue
            target = there.field(f.name).type
            if _same_delta_type(f.type, target):
                fields.append(_into_column(f, there.field(f.name)))
                continue
            if replaces_layout:
                fields.append(f)
                continue
            if _widens(f.type, target):
                fields.append(_into_column(f, there.field(f.name)))
                continue
            raise SchemaMismatch(
                f"column '{f.name}' is {target} in Delta table {self.uri} but {f.type} in the "
                "model, and the model's values cannot be written into the table's column. "
                "Cast the column back in the model, or give the new type a new column name"
            )
        return pa.schema(fields)

    def _partitions_predicate(self, source: BatchSource, schema: pa.Schema) -> str | None:
        """The SQL predicate naming the partitions this run writes (one pass over them).

        Each value is a literal of the column's own type in the table (``arrow_cast``):
        delta-rs compares without coercion, so a ``TIMESTAMP '...'`` (nanoseconds, no
        zone) against a column of microseconds in UTC fails, and ``nan`` unquoted is
        read as a column name.
        """
        cols = list(self.cfg.partition_cols)
        seen: set[tuple[str | None, ...]] = set()
        reader = source.open([], self.cfg.batch_size)
        try:
            for batch in reader:
                if batch.num_rows:
                    keys = pa.Table.from_batches([batch]).select(cols).group_by(cols).aggregate([])
                    literals = [_sql_literals(keys.column(c), schema.field(c).type) for c in cols]
                    seen.update(zip(*literals, strict=True))
        finally:
            reader.close()
        if not seen:
            return None
        terms = [
            "(" + " AND ".join(_sql_equals(c, v) for c, v in zip(cols, key, strict=True)) + ")"
            for key in sorted(seen, key=repr)
        ]
        return " OR ".join(terms)


def _creatable(typ: pa.DataType) -> pa.DataType:
    """The type Delta declares the column with (the write casts the rows to it).

    delta-rs converts the rows' types when a write creates the table, but not when a table
    is created empty: timestamps are microseconds, with the zone named UTC if they have one.
    """
    if pa.types.is_timestamp(typ):
        return pa.timestamp("us", "UTC" if typ.tz else None)
    if pa.types.is_fixed_size_binary(typ):
        return pa.binary()
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return pa.list_(typ.value_field.with_type(_creatable(typ.value_type)))
    if pa.types.is_struct(typ):
        return pa.struct([f.with_type(_creatable(f.type)) for f in typ])
    if pa.types.is_map(typ):
        return pa.map_(_creatable(typ.key_type), _creatable(typ.item_type))
    return typ


# Partition values delta-rs 1.6 writes wrongly or cannot read back: negative decimals
# (it stores -12.5 as "-12.-50"), and dates and timestamps outside the years 1 to 9999.
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, days since 1970
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _partition_values_checked(
    batches: Iterator[pa.RecordBatch], schema: pa.Schema, cols: list[str], uri: str
) -> Iterator[pa.RecordBatch]:
    """The batches, refused at the first partition value the Delta table could not hold."""
    import pyarrow.compute as pc

    checked = [
        schema.field(c)
        for c in cols
        if pa.types.is_decimal(schema.field(c).type)
        or pa.types.is_date32(schema.field(c).type)
        or pa.types.is_timestamp(schema.field(c).type)
    ]
    for batch in batches:
        for field in checked:
            values = batch.column(field.name)
            if pa.types.is_decimal(field.type):
                low = pc.min(values)
                if low.is_valid and low.as_py() < 0:
                    raise _partition_value_error(uri, field, str(low.as_py()), "writes wrongly")
                continue
            if pa.types.is_date32(field.type):
                first, last = _FIRST_DAY, _LAST_DAY
                ints = values.view(pa.int32())
            else:
                per_day = 86_400 * _PER_SECOND[field.type.unit]
                first, last = _FIRST_DAY * per_day, (_LAST_DAY + 1) * per_day - 1
                ints = values.view(pa.int64())
            low, high = pc.min_max(ints).values()
            if low.is_valid and (low.as_py() < first or high.as_py() > last):
                bad = low.as_py() if low.as_py() < first else high.as_py()
                raise _partition_value_error(
                    uri,
                    field,
                    _duckdb_text(pa.array([bad], ints.type).view(field.type)),
                    "cannot read back",
                )
        yield batch


def _duckdb_text(value: pa.Array) -> str:
    """A date or timestamp as DuckDB writes it (Arrow has no text for BC instants)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("v", pa.table({"v": value}))
        return str(con.execute("SELECT CAST(v AS VARCHAR) FROM v").fetchall()[0][0])
    finally:
        con.close()


def _partition_value_error(uri: str, field: pa.Field, value: str, problem: str) -> Exception:
    duckdb_type = (field.metadata or {}).get(DUCKDB_TYPE, b"").decode() or str(field.type)
    return column_error(
        field.name,
        duckdb_type,
        f"holds {value}, a partition value of Delta table {uri} that delta-rs {problem} "
        "(negative decimals, dates and timestamps outside the years 1 to 9999)",
        f"Partition by a text or integer form of it instead, e.g. CAST({field.name} AS VARCHAR) "
        f"AS {field.name}_key, or by another column",
    )


def _sql_equals(column: str, literal: str | None) -> str:
    name = '"' + column.replace('"', '""') + '"'
    return f"{name} IS NULL" if literal is None else f"{name} = {literal}"


_ARROW_UNITS = {"s": "Second", "ms": "Millisecond", "us": "Microsecond", "ns": "Nanosecond"}
_ARROW_NAMES = {
    pa.int8(): "Int8",
    pa.int16(): "Int16",
    pa.int32(): "Int32",
    pa.int64(): "Int64",
    pa.float32(): "Float32",
    pa.float64(): "Float64",
}


def _sql_literals(values: Any, typ: pa.DataType) -> list[str | None]:
    """Each value as a DataFusion SQL literal of ``typ`` exactly (None for NULL).

    Dates and timestamps go as their integers, so every instant Arrow holds (BC, past
    9999, nanoseconds) is named exactly; floats as text (``NaN``, ``inf``, ``-0.0``).
    """
    values = values.combine_chunks().cast(typ)
    present = values.is_valid().to_pylist()
    if pa.types.is_timestamp(typ):
        zone = "None" if typ.tz is None else 'Some("' + typ.tz.replace('"', "") + '")'
        target = f"Timestamp({_ARROW_UNITS[typ.unit]}, {zone})"
        ints = values.view(pa.int64()).to_pylist()
        texts = [f"arrow_cast(arrow_cast({n}, 'Int64'), '{target}')" for n in ints]
    elif pa.types.is_date32(typ):
        ints = values.view(pa.int32()).to_pylist()
        texts = [f"arrow_cast(arrow_cast({n}, 'Int32'), 'Date32')" for n in ints]
    elif typ in _ARROW_NAMES:
        name = _ARROW_NAMES[typ]
        texts = [
            f"arrow_cast({n}, '{name}')"
            if pa.types.is_integer(typ)
            else f"arrow_cast('{_float_text(n)}', '{name}')"
            for n in values.to_pylist()
        ]
    elif pa.types.is_decimal(typ):
        name = f"Decimal{typ.bit_width}({typ.precision}, {typ.scale})"
        texts = [f"arrow_cast('{d:f}', '{name}')" for d in values.to_pylist()]
    elif pa.types.is_boolean(typ):
        texts = ["true" if b else "false" for b in values.to_pylist()]
    else:
        texts = ["'" + str(v).replace("'", "''") + "'" for v in values.to_pylist()]
    return [t if ok else None for t, ok in zip(texts, present, strict=True)]


def _float_text(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value)


def _into_column(field: pa.Field, column: pa.Field) -> pa.Field:
    """The model's field written into the table's column: the column's type, and the
    model's metadata (its DuckDB type) where the column records none of its own.

    delta-rs refuses to merge two values of one metadata key, so an INTEGER written
    into a BIGINT column, or a VARCHAR into an ENUM, JSON or UUID one, keeps the
    column's record: the column still holds that type.
    """
    meta = {**(field.metadata or {}), **(column.metadata or {})}
    return field.with_type(column.type).with_metadata(meta or None)


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
