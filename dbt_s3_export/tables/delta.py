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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa

from ..commit import RunContext, supports_conditional_writes
from ..encoding.files import WrittenFile
from ..encoding.partitioning import check_partition_columns_exist
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
    check_table_partition_types,
    earlier_owner,
    effective_mode,
    missing_extra,
    snapshot_properties,
    table_location,
    table_types,
)
from .delta_types import (
    check_partition_types,
    creatable,
    into_column,
    kept_errors,
    partition_values_checked,
    refuse_case_only_rename,
    same_delta_type,
    sql_equals,
    sql_literals,
    widens,
)
from .years import years_checked

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..result import ExportResult
    from ..source.base import BatchSource
else:
    S3Client = Any


# How many of the newest commits are searched for the export id an earlier version of
# this package wrote (before tables had an owner record).
EARLIER_COMMITS = 20
# How many log entries after the version a write started from may hold its commit.
COMMITS_LOOKED_AT = 3


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
        check_partition_types(schema, list(cfg.partition_cols), self.uri)
        check_table_partition_types(schema, cfg.partition_cols, self.what, "delta")
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
        batches = years_checked(
            partition_values_checked(
                cast_batches(reader, schema), schema, list(cfg.partition_cols), self.uri
            ),
            schema,
            "delta",
            self.what,
        )
        refused: list[S3ExportError] = []  # a value refused mid-stream, said as it is
        stream = pa.RecordBatchReader.from_batches(schema, kept_errors(batches, refused))
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
            if refused:  # delta-rs stopped at our refusal, before its commit
                raise refused[0] from None
            # The log entry may have landed with its answer lost: then it names this run.
            landed = self._committed_by(run, before)
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

    def _committed_by(self, run: str, since: int) -> int | None:
        """The version after ``since`` that this run committed, if one did.

        Read from the log entries themselves through the export's own S3 client: a
        commit names its run in its ``commitInfo``. A write whose answer is lost is
        not retried by delta-rs, so this run's entry, if any, is among the next few.
        """
        for version in range(since + 1, since + 1 + COMMITS_LOOKED_AT):
            try:
                stored = get_object(self.client, self.cfg.bucket, self._log_key(version))
            except S3ExportError:
                return None  # the log cannot be read now: the write's own error stands
            if stored is None:
                return None
            for line in stored.body.splitlines():
                info = json.loads(line).get("commitInfo") if line.strip() else None
                if isinstance(info, dict) and info.get(RUN_PROPERTY) == run:
                    return version
        return None

    def _log_key(self, version: int) -> str:
        return f"{self.cfg.key.rstrip('/')}/_delta_log/{version:020d}.json"

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
                pa.schema([f.with_type(creatable(f.type)) for f in schema]),
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
        # delta-rs has no type widening in place: a replace rewrites the table's schema
        # (a new layout or a wider column); other modes keep it.
        rewrite = mode == "replace" and (relayout or self._widened(table, schema) is not None)
        schema = self._fit_schema(table, schema, replaces_layout=rewrite)
        kwargs["schema_mode"] = "overwrite" if rewrite else "merge"
        if relayout and not rewrite:
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
        stored = get_object(self.client, self.cfg.bucket, self._log_key(version))
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

    @staticmethod
    def _widened(table: Any, schema: pa.Schema) -> str | None:
        """The first column the model holds at a wider type than the table's, if any."""
        there = pa.schema(table.schema().to_arrow())
        for f in schema:
            if f.name in there.names:
                target = there.field(f.name).type
                if not same_delta_type(f.type, target) and widens(target, f.type):
                    return str(f.name)
        return None

    def _fit_schema(self, table: Any, schema: pa.Schema, *, replaces_layout: bool) -> pa.Schema:
        """The model's schema with each column at the table's type, where it can be written so.

        A replace that changes the partitioning rewrites the table: each column as the model has it.
        """
        there = pa.schema(table.schema().to_arrow())
        fields = []
        for f in schema:
            if f.name not in there.names:
                refuse_case_only_rename(self.uri, f.name, there.names)
                fields.append(f)
                continue
            target = there.field(f.name).type
            if same_delta_type(f.type, target):
                fields.append(into_column(f, there.field(f.name)))
                continue
            if replaces_layout:
                fields.append(f)
                continue
            if widens(f.type, target):
                fields.append(into_column(f, there.field(f.name)))
                continue
            if widens(target, f.type):
                raise SchemaMismatch(
                    f"column '{f.name}' is {target} in Delta table {self.uri} but the wider "
                    f"{f.type} in the model. Delta writers here cannot widen a column in place: "
                    "run once with mode replace (or --full-refresh of an incremental model) to "
                    "rewrite the table with the wider type, or cast the column back in the model"
                )
            raise SchemaMismatch(
                f"column '{f.name}' is {target} in Delta table {self.uri} but {f.type} in the "
                "model, and the model's values cannot be written into the table's column. "
                "Cast the column back in the model, or give the new type a new column name"
            )
        return pa.schema(fields)

    def _partitions_predicate(self, source: BatchSource, schema: pa.Schema) -> str | None:
        """The SQL predicate naming the partitions this run writes.

        delta-rs takes the predicate before it reads the stream, so the values come
        from one ``SELECT DISTINCT`` of the partition columns (``BatchSource.distinct``),
        not from a second pass over the model. Each value is a literal of the column's
        own type in the table (``arrow_cast``): delta-rs compares without coercion, so a
        ``TIMESTAMP '...'`` (nanoseconds, no zone) against a column of microseconds in
        UTC fails, and ``nan`` unquoted is read as a column name.
        """
        cols = list(self.cfg.partition_cols)
        keys = source.distinct(cols)
        literals = [sql_literals(keys.column(c), schema.field(c).type) for c in cols]
        seen = set(zip(*literals, strict=True))
        if not seen:
            return None
        terms = [
            "(" + " AND ".join(sql_equals(c, v) for c, v in zip(cols, key, strict=True)) + ")"
            for key in sorted(seen, key=repr)
        ]
        return " OR ".join(terms)


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
