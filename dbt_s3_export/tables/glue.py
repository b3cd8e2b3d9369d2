"""Register a folder export as an external table in the AWS Glue Data Catalog.

``glue: {database, table}`` makes a CSV, Parquet or JSONL export queryable from
Athena, Trino or Spark as soon as ``dbt run`` ends: the table's columns and types
come from the model's Arrow schema, its partition keys from ``partition_cols``, its
location is the export's folder, and each partition folder the export's manifest
lists is registered as a partition.

When: before the export writes anything, the database is made and the table's
owner checked (tables/common.py): a table another export registered, or one that names no
owner (made by something else), is refused, as a folder another export owns is,
unless ``take_over_from`` names its owner (``'*'`` for none). The owner is checked
again right before the table is written, on every path (a table created meanwhile by
another creator included). After the export's manifest is committed, and while the run still
holds the folder's lease, the table is brought in line with the manifest as it is
then: the definition replaced if it changed, new partitions added and partitions no
longer listed dropped, in batches. The lease keeps runs of one export from doing this
at the same time. The definition is replaced conditionally on the ``VersionId`` read
with it, so a change made meanwhile by anyone else fails the update instead of being
overwritten; the next run retries. A run whose lease is lost stops before it writes
to Glue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import unquote

import pyarrow as pa
from botocore.config import Config
from botocore.exceptions import ClientError

from ..commit import MANIFEST_NAME, SYMLINK_FOLDER, Commit, FolderCommit, RunContext
from ..encoding.partitioning import NULL_SEGMENT
from ..errors import ExportFailed, TransferError, brief
from ..options.config import ExportConfig, GlueTarget
from ..s3.credentials import ClientCache, ConnectionSettings, CredentialSession
from ..s3.error_table import GlueRequest
from ..s3.objects import get_object
from ..s3.translate import BOTOCORE_ERRORS, translate
from .common import OWNER_PROPERTY, check_owner

# Requests are built with optional arguments (CatalogId, NextToken, VersionId) spread in,
# which the generated stubs cannot follow: the client is typed loosely.
GlueClient = Any

T = TypeVar("T")
# The input format of a table whose partitions are symlink manifests (commit/symlinks.py).
SYMLINK_INPUT = "org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat"
# Table parameter naming the export that registered the table.
OWNER_PARAMETER = OWNER_PROPERTY
# Glue's limits per request.
CREATE_BATCH = 100
DELETE_BATCH = 25

# Sessions for exports run without one (the engine used alone): one per settings, as before.
_sessions = ClientCache()


def glue_client(
    cfg: ExportConfig,
    region: str | None,
    endpoint_url: str | None,
    catalog_id: str | None = None,
    credentials: CredentialSession | None = None,
) -> GlueClient:
    """A Glue client of the export's credential session (the one behind its S3 client)."""
    credentials = credentials or _sessions.credentials(ConnectionSettings.of(cfg))
    region = region or cfg.region

    def prepare(client: GlueClient) -> None:
        if catalog_id:
            # pyiceberg's Glue catalog sends no CatalogId itself: add it to every request.
            from pyiceberg.catalog.glue import _register_glue_catalog_id_with_glue_client

            _register_glue_catalog_id_with_glue_client(client, catalog_id)

    return credentials.client(
        "glue",
        # The retries and timeouts of the export's S3 and STS requests.
        credentials.settings.retry_config().merge(
            Config(region_name=region, user_agent_extra="dbt-s3-export")
        ),
        region=region,
        endpoint_url=endpoint_url,
        tag=catalog_id,
        prepare=prepare,
    )


def _call(what: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except BOTOCORE_ERRORS as e:
        raise translate(e, GlueRequest(what)) from e


def _code(err: BaseException) -> str:
    cause = err.__cause__
    if isinstance(cause, ClientError):
        return str(cause.response.get("Error", {}).get("Code", ""))
    return ""


# -- types ----------------------------------------------------------------------------------


def hive_type(typ: pa.DataType, file_format: str) -> str:
    """The Hive DDL type Athena and Spark read the column's values as."""
    if pa.types.is_dictionary(typ):
        return hive_type(typ.value_type, file_format)
    simple = {
        pa.bool_(): "boolean",
        pa.int8(): "tinyint",
        pa.int16(): "smallint",
        pa.int32(): "int",
        pa.int64(): "bigint",
        pa.uint8(): "smallint",
        pa.uint16(): "int",
        pa.uint32(): "bigint",
        pa.float16(): "float",
        pa.float32(): "float",
        pa.float64(): "double",
        pa.date32(): "date",
        pa.date64(): "date",
    }
    if typ in simple:
        return simple[typ]
    if typ == pa.uint64():
        # Parquet keeps UINT_64 as a 64-bit column; text keeps digits that overflow bigint.
        return "bigint" if file_format == "parquet" else "decimal(20,0)"
    if pa.types.is_decimal(typ):
        return f"decimal({typ.precision},{typ.scale})"
    if pa.types.is_timestamp(typ):
        return "timestamp"
    if (
        pa.types.is_binary(typ)
        or pa.types.is_large_binary(typ)
        or pa.types.is_fixed_size_binary(typ)
    ):
        return "binary"
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return f"array<{hive_type(typ.value_type, file_format)}>"
    if pa.types.is_struct(typ):
        inner = ",".join(f"{f.name}:{hive_type(f.type, file_format)}" for f in typ)
        return f"struct<{inner}>"
    if pa.types.is_map(typ):
        key, item = hive_type(typ.key_type, file_format), hive_type(typ.item_type, file_format)
        return f"map<{key},{item}>"
    # Text, and what Hive has no type for (time of day, UUID, intervals): their text.
    return "string"


_SERDES: dict[str, dict[str, Any]] = {
    "parquet": {
        "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        "SerdeInfo": {
            "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        },
    },
    "csv": {
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.serde2.OpenCSVSerde"},
    },
    "jsonl": {
        "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
        "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        "SerdeInfo": {"SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe"},
    },
}


def table_input(
    cfg: ExportConfig, target: GlueTarget, schema: pa.Schema, export_id: str
) -> dict[str, Any]:
    """The Glue ``TableInput`` of the export: columns, partition keys, format, location."""
    fmt = cfg.file_format
    partition = set(cfg.partition_cols)
    columns = [
        {"Name": f.name, "Type": hive_type(f.type, fmt)} for f in schema if f.name not in partition
    ]
    keys = [
        {"Name": c, "Type": hive_type(schema.field(c).type, "text")} for c in cfg.partition_cols
    ]
    descriptor: dict[str, Any] = {
        "Columns": columns,
        "Location": data_location(cfg),
        **{k: (dict(v) if isinstance(v, dict) else v) for k, v in _SERDES[fmt].items()},
    }
    if cfg.symlink_manifests:  # each partition's files are those its symlink manifest names
        descriptor["InputFormat"] = SYMLINK_INPUT
        descriptor["OutputFormat"] = _SERDES["csv"]["OutputFormat"]
    serde = dict(descriptor["SerdeInfo"])
    parameters = {
        "EXTERNAL": "TRUE",
        "classification": "json" if fmt == "jsonl" else fmt,
        OWNER_PARAMETER: export_id,
    }
    if fmt == "csv":
        serde["Parameters"] = {
            "separatorChar": cfg.csv_delimiter,
            "quoteChar": '"',
            "escapeChar": "\\",
        }
        if cfg.csv_header:
            parameters["skip.header.line.count"] = "1"
    if fmt != "parquet" and cfg.codec != "none":
        parameters["compressionType"] = cfg.codec
    descriptor["SerdeInfo"] = serde
    return {
        "Name": target.table,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": parameters,
        "PartitionKeys": keys,
        "StorageDescriptor": descriptor,
    }


def data_location(cfg: ExportConfig) -> str:
    """Where the table's readers look: the export's folder, or its symlink manifests."""
    folder = f"s3://{cfg.bucket}/{cfg.prefix}"
    return folder + SYMLINK_FOLDER if cfg.symlink_manifests else folder


def partition_values(path: str) -> list[str]:
    """``a=1/b=x%2Fy/`` as ``['1', 'x/y']``: the values as readers decode them."""
    values = []
    for segment in path.strip("/").split("/"):
        value = segment.split("=", 1)[1] if "=" in segment else segment
        values.append(value if value == NULL_SEGMENT else unquote(value))
    return values


# -- the registration -----------------------------------------------------------------------


class GlueRegistration:
    """One run's registration of its export in Glue: checked before, done after the commit."""

    def __init__(
        self,
        cfg: ExportConfig,
        ctx: RunContext,
        schema: pa.Schema,
        credentials: CredentialSession | None = None,
    ) -> None:
        assert cfg.glue is not None
        self.cfg = cfg
        self.ctx = ctx
        self.schema = schema  # the model's columns, partition columns included
        self.target = cfg.glue
        self.export_id = ctx.export_id(cfg)
        self.name = f"{self.target.database}.{self.target.table}"
        self.client = glue_client(
            cfg, self.target.region, self.target.endpoint_url, credentials=credentials
        )
        self._catalog = {"CatalogId": self.target.catalog_id} if self.target.catalog_id else {}

    def prepare(self) -> None:
        """Before anything is written: the database exists and the table is this export's."""
        database = self.target.database
        try:
            _call(
                f"read database {database}",
                lambda: self.client.get_database(Name=database, **self._catalog),
            )
        except TransferError as e:
            if _code(e) != "EntityNotFoundException":
                raise
            try:
                _call(
                    f"create database {database}",
                    lambda: self.client.create_database(
                        DatabaseInput={"Name": database}, **self._catalog
                    ),
                )
            except TransferError as created:
                if _code(created) != "AlreadyExistsException":
                    raise
        current = self._table()
        if current is not None:
            self._check_owner(current)

    def _table(self) -> dict[str, Any] | None:
        try:
            answer = _call(
                f"read table {self.name}",
                lambda: self.client.get_table(
                    DatabaseName=self.target.database, Name=self.target.table, **self._catalog
                ),
            )
        except TransferError as e:
            if _code(e) == "EntityNotFoundException":
                return None
            raise
        return dict(answer["Table"])

    def _check_owner(self, table: dict[str, Any]) -> str | None:
        """The table is this export's, or passes to it (take_over_from): see tables/common.py."""
        owner = (table.get("Parameters") or {}).get(OWNER_PARAMETER)
        return check_owner(
            self.cfg,
            self.ctx,
            f"Glue table {self.name}",
            str(owner) if owner else None,
            elsewhere="another glue table name",
        )

    def publish(self, commit: Commit) -> None:
        """After the commit, under the lease: bring the table in line with the manifest."""
        assert isinstance(commit, FolderCommit) and commit.lease is not None
        cfg = self.cfg
        stored = get_object(commit.client, cfg.bucket, cfg.prefix + MANIFEST_NAME)
        manifest = json.loads(stored.body) if stored is not None else {}
        if manifest.get("generation") != commit.generation:
            return  # a later run committed since, and registers its own export
        wanted = table_input(cfg, self.target, self.schema, self.export_id)
        commit.lease.check()
        current = self._table()
        keys_changed = False
        if current is None:
            try:
                _call(
                    f"create table {self.name}",
                    lambda: self.client.create_table(
                        DatabaseName=self.target.database, TableInput=wanted, **self._catalog
                    ),
                )
            except TransferError as e:
                if _code(e) != "AlreadyExistsException":
                    raise
                current = self._table()
        if current is not None:
            note = self._check_owner(current)
            # New keys, or a new location (symlink_manifests switched): every partition anew.
            moved = (current.get("StorageDescriptor") or {}).get("Location") != (
                wanted["StorageDescriptor"]["Location"]
            )
            keys_changed = moved or _names(current.get("PartitionKeys")) != _names(
                wanted["PartitionKeys"]
            )
            if _differs(current, wanted):
                version = current.get("VersionId")
                extra = {"VersionId": version} if version else {}
                _call(
                    f"update table {self.name}",
                    lambda: self.client.update_table(
                        DatabaseName=self.target.database,
                        TableInput=wanted,
                        **extra,
                        **self._catalog,
                    ),
                )
            if note is not None:
                self.ctx.info(f"s3_export: {self.ctx.model}: {note}")
        paths = {str(f.get("partition") or "") for f in manifest.get("files") or []}
        self._sync_partitions(commit, wanted, sorted(p for p in paths if p), keys_changed)

    def _sync_partitions(
        self, commit: FolderCommit, wanted: dict[str, Any], paths: Sequence[str], reset: bool
    ) -> None:
        if not self.cfg.partition_cols:
            return
        have = {tuple(p["Values"]): p for p in self._partitions()}
        want = {tuple(partition_values(p)): p for p in paths}
        stale = [list(v) for v in have if reset or v not in want]
        new = [v for v in want if reset or v not in have]
        db, table = self.target.database, self.target.table
        self._in_batches(
            commit,
            f"drop partitions of {self.name}",
            [{"Values": v} for v in stale],
            DELETE_BATCH,
            "EntityNotFoundException",
            lambda chunk: self.client.batch_delete_partition(
                DatabaseName=db, TableName=table, PartitionsToDelete=chunk, **self._catalog
            ),
        )
        base = wanted["StorageDescriptor"]
        location = data_location(self.cfg)
        self._in_batches(
            commit,
            f"add partitions to {self.name}",
            [
                {"Values": list(v), "StorageDescriptor": {**base, "Location": location + want[v]}}
                for v in new
            ],
            CREATE_BATCH,
            "AlreadyExistsException",
            lambda chunk: self.client.batch_create_partition(
                DatabaseName=db, TableName=table, PartitionInputList=chunk, **self._catalog
            ),
        )
        if stale or new:
            self.ctx.info(
                f"s3_export: {self.ctx.model}: Glue table {self.name}: {len(new)} partition(s) "
                f"added, {len(stale)} dropped"
            )

    @staticmethod
    def _in_batches(
        commit: FolderCommit,
        what: str,
        items: Sequence[dict[str, Any]],
        size: int,
        harmless: str,
        send: Callable[[Sequence[dict[str, Any]]], Any],
    ) -> None:
        """Send ``items`` in batches of ``size``, each only while the lease is still ours."""
        assert commit.lease is not None
        for chunk in _batches(items, size):
            commit.lease.check()
            _check_batch(_call(what, lambda chunk=chunk: send(chunk)), what, harmless)  # type: ignore[misc]

    def _partitions(self) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            extra = {"NextToken": token} if token else {}
            answer = _call(
                f"list partitions of {self.name}",
                lambda extra=extra: self.client.get_partitions(  # type: ignore[misc]
                    DatabaseName=self.target.database,
                    TableName=self.target.table,
                    **extra,
                    **self._catalog,
                ),
            )
            yield from answer.get("Partitions", [])
            token = answer.get("NextToken")
            if not token:
                return


def _names(columns: Any) -> list[str]:
    return [str(c.get("Name")) for c in columns or []]


def _differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the table's definition differs from what the export would register."""
    for key in ("TableType", "PartitionKeys"):
        if (current.get(key) or []) != (wanted.get(key) or []):
            return True
    have, want = current.get("StorageDescriptor") or {}, wanted["StorageDescriptor"]
    for key in ("Columns", "Location", "InputFormat", "OutputFormat"):
        if have.get(key) != want.get(key):
            return True
    if (have.get("SerdeInfo") or {}).get("SerializationLibrary") != want["SerdeInfo"][
        "SerializationLibrary"
    ] or ((have.get("SerdeInfo") or {}).get("Parameters") or {}) != (
        want["SerdeInfo"].get("Parameters") or {}
    ):
        return True
    params = current.get("Parameters") or {}
    return any(params.get(k) != v for k, v in wanted["Parameters"].items())


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_batch(answer: dict[str, Any], what: str, harmless: str) -> None:
    """A batch call answers per entry; an entry that failed for a real reason fails the run."""
    for error in answer.get("Errors") or []:
        detail = error.get("ErrorDetail") or {}
        if detail.get("ErrorCode") != harmless:
            raise TransferError(
                f"Glue failed to {what}: {detail.get('ErrorCode')}: {detail.get('ErrorMessage')}",
                code=str(detail.get("ErrorCode")),
            )


def registration_failed(target: GlueTarget, error: Exception) -> ExportFailed:
    return ExportFailed(
        f"the export is committed, but registering it as Glue table "
        f"{target.database}.{target.table} failed: {brief(error)}. The next successful run "
        "registers it"
    )


__all__ = ["GlueRegistration", "glue_client", "hive_type", "registration_failed", "table_input"]
