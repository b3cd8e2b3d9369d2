"""Table formats and catalogs: Iceberg and Delta tables, and Glue registration.

A table commits through its own log or catalog instead of the folder commit's
manifest (``common`` holds what both formats share, ``iceberg`` and ``delta`` one
format each, with ``catalog`` opening Iceberg catalogs, ``delta_types`` what a
Delta table holds and ``years`` the dates and timestamps a table holds; ``glue``
registers file exports and Iceberg tables in AWS Glue). May
import the commit protocol (for owners and claims), encoding, source types, S3
access and options; never the dbt glue or ``export``. pyiceberg and deltalake are
imported only when a table of theirs is written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..commit import RunContext, new_generation
from ..errors import ExportFailed, S3ExportError, brief
from ..options.config import ExportConfig
from ..s3.credentials import CredentialSession
from .common import SchemaMismatch, Storage, TableConflict

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from ..result import ExportResult
    from ..source.base import BatchSource
else:
    S3Client = Any


def export_table(
    cfg: ExportConfig,
    source: BatchSource,
    client: S3Client,
    ctx: RunContext,
    result: ExportResult,
    credentials: CredentialSession | None = None,
) -> ExportResult:
    """Write ``source`` as the Iceberg or Delta table ``cfg`` names, in one commit.

    ``credentials`` is the session behind ``client``: the table's library and Glue use
    its keys (a session of the export's own is made when None).
    """
    storage = Storage.of(cfg, credentials)
    result.generation = new_generation()
    if cfg.file_format == "iceberg":
        from .iceberg import IcebergWriter

        writer = IcebergWriter(cfg, ctx, storage, client)
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
        from .delta import DeltaWriter

        DeltaWriter(cfg, ctx, storage, client).run(source, result)
    return result


__all__ = ["SchemaMismatch", "TableConflict", "export_table"]
