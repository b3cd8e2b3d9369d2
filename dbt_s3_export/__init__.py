"""Export dbt-duckdb models to Amazon S3 or any S3-compatible store.

dbt-duckdb loads this module as a plugin (``plugins: - module: dbt_s3_export``)
and looks up ``Plugin``; that name is resolved lazily so the export engine can be
imported and used without dbt.

The package, from the bottom up (each folder's docstring says what it owns and may
import; tests/test_import_rules.py holds them to it):

- ``errors``, ``progress``: the one exception hierarchy; progress lines and times.
- ``options/``: the option table and an export's configuration.
- ``s3/``: S3 requests, the error table, credentials, deadlines.
- ``encoding/``: type plan, format writers, partition paths, files.
- ``source/``: the model as a stream of Arrow batches; ``result``: what an export did.
- ``commit/``: ownership, lease, manifest, clean-up: the commit protocol.
- ``tables/``: Iceberg, Delta and Glue.
- ``export``: one export, start to end: check, claim, stream, commit.
- ``plugin``, ``report``: the dbt glue, the only modules that import dbt.
- ``local_s3``: a local S3 server to try exports on (``python -m dbt_s3_export.local_s3``).
"""

from __future__ import annotations

from typing import Any

from .commit import (
    CorruptManifest,
    LayoutChanged,
    LeaseLost,
    LeaseTimeout,
    OwnershipConflict,
    RunContext,
)
from .errors import (
    AccessDenied,
    BucketNotFound,
    ConfigError,
    EndpointUnreachable,
    ExportFailed,
    InvalidCredentials,
    LocalSpaceError,
    ObjectNotFound,
    PartitionError,
    PreconditionFailed,
    RequestTimeout,
    S3ExportError,
    SourceError,
    TooManyPartitions,
    TransferError,
)
from .export import run_export
from .options.config import ExportConfig
from .result import ExportResult
from .source.base import ArrowSource
from .source.batches import DuckDBSource
from .tables import SchemaMismatch, TableConflict

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "ArrowSource",
    "BucketNotFound",
    "ConfigError",
    "CorruptManifest",
    "DuckDBSource",
    "EndpointUnreachable",
    "ExportConfig",
    "ExportFailed",
    "ExportResult",
    "InvalidCredentials",
    "LayoutChanged",
    "LeaseLost",
    "LeaseTimeout",
    "LocalSpaceError",
    "ObjectNotFound",
    "OwnershipConflict",
    "PartitionError",
    "Plugin",
    "PreconditionFailed",
    "RequestTimeout",
    "RunContext",
    "S3ExportError",
    "SchemaMismatch",
    "SourceError",
    "TableConflict",
    "TooManyPartitions",
    "TransferError",
    "run_export",
]


def __getattr__(name: str) -> Any:
    if name == "Plugin":
        from .plugin import Plugin

        return Plugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
