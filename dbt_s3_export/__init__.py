"""Export dbt-duckdb models to Amazon S3 or any S3-compatible store.

dbt-duckdb loads this module as a plugin (``plugins: - module: dbt_s3_export``)
and looks up ``Plugin``; that name is resolved lazily so the export engine can be
imported and used without dbt.
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
from .config import ExportConfig
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
from .export import ExportResult, run_export
from .source import ArrowSource, DuckDBSource
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
