"""Run dbt with the profile's S3 settings and secrets kept from DuckDB itself.

dbt-duckdb applies a profile's ``settings`` to every cursor (``SET s3_region =
...``) and its ``secrets`` to the database (``CREATE SECRET (TYPE s3, ...)``),
and both need DuckDB's httpfs extension, which this machine cannot download for
duckdb 2.0.1. Users have it; here DuckDB's own use of the S3 settings and
secrets is skipped. Everything the plugin gets is what dbt-duckdb really passes:
``initialize_plugins`` and the credentials are untouched.

Usage: python tests/dbt_without_httpfs.py <dbt arguments>
"""

from __future__ import annotations

import sys
from typing import Any

from dbt.adapters.duckdb.credentials import DuckDBCredentials
from dbt.adapters.duckdb.environments import Environment

_initialize_cursor = Environment.initialize_cursor.__func__  # type: ignore[attr-defined]


def _without_s3_settings(
    cls: Any, creds: Any, cursor: Any, plugins: Any = None, registered_df: Any = None
) -> Any:
    full = creds.settings
    creds.settings = {k: v for k, v in (full or {}).items() if not k.lower().startswith("s3_")}
    try:
        return _initialize_cursor(cls, creds, cursor, plugins, registered_df or {})
    finally:
        creds.settings = full


Environment.initialize_cursor = classmethod(_without_s3_settings)  # type: ignore[method-assign,assignment]
DuckDBCredentials.secrets_sql = lambda self: []  # type: ignore[method-assign]

if __name__ == "__main__":
    from dbt.cli.main import cli

    sys.exit(cli())
