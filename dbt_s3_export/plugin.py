"""The dbt-duckdb plugin: the only module that imports dbt.

``export_to_s3()`` (macros/) calls ``adapter.store_relation('dbt_s3_export',
this, [], '', 's3', payload)`` where ``payload`` carries the model's name and
its ``s3_export`` entries. The plugin validates every entry against the
profile's defaults before reading anything, then runs the exports on the
model's own connection, so a post-hook inside the model's transaction sees the
table it just built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import TargetConfig
from dbt.adapters.events.logging import AdapterLogger
from dbt_common.exceptions import DbtRuntimeError

from .config import SECRET_OPTIONS, ExportConfig, check_option_names
from .credentials import ClientCache, ConnectionSettings
from .errors import S3ExportError
from .export import run_export
from .source import DuckDBSource

logger = AdapterLogger("S3Export")
PROFILE_WHERE = "profiles.yml plugin 'dbt_s3_export' config"


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        config = dict(plugin_config or {})
        try:
            check_option_names(config, where=PROFILE_WHERE)
        except S3ExportError as e:
            raise DbtRuntimeError(str(e)) from None
        self._defaults = config
        self._clients = ClientCache()
        self._conn: duckdb.DuckDBPyConnection | None = None

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn

    def store(self, target_config: TargetConfig) -> None:
        payload = target_config.config
        if not isinstance(payload, Mapping) or "exports" not in payload:
            raise DbtRuntimeError(
                "dbt_s3_export: store_relation was called without an export payload; "
                "call the dbt_s3_export.export_to_s3() macro instead"
            )
        model = str(payload.get("model") or target_config.relation.identifier)
        try:
            self._export_all(model, payload, target_config.relation)
        except S3ExportError as e:
            # One clear line in dbt's output; the chain stays out of the message.
            raise DbtRuntimeError(f"s3_export failed for model '{model}': {e}") from None

    def _export_all(self, model: str, payload: Mapping[str, Any], relation: Any) -> None:
        entries = payload["exports"]
        configs = []
        for i, entry in enumerate(entries):
            where = f"model '{model}' s3_export" + (f"[{i}]" if len(entries) > 1 else "")
            configs.append(ExportConfig.parse(entry, self._defaults, where=where))
            if isinstance(entry, Mapping) and SECRET_OPTIONS & set(entry):
                logger.warning(
                    f"s3_export: model '{model}' has credentials in its meta; dbt stores meta "
                    "in plain text in target/manifest.json. Put them in the profile's plugin "
                    "config with env_var('DBT_ENV_SECRET_...') instead"
                )
        extra = {
            "invocation_id": payload.get("invocation_id"),
            "unique_id": payload.get("unique_id"),
        }
        cursor = self._cursor()
        for cfg in configs:
            if not cfg.enabled:
                logger.info(f"s3_export: {model} -> {cfg.destination}: skipped (enabled: false)")
                continue
            source = DuckDBSource(cursor, str(relation), cfg.where)
            if cfg.rows == "batch":
                batch = source.batch_relation(relation.identifier)
                if batch is not None:
                    source = DuckDBSource(cursor, batch, cfg.where)
                    logger.info(f"s3_export: {model}: exporting this run's incremental batch only")
            client = self._clients.get(ConnectionSettings.of(cfg))
            result = run_export(cfg, source, client, model=model, extra_manifest=extra)
            logger.info(result.summary())

    def _cursor(self) -> Any:
        """The calling thread's dbt connection: it sees the model's uncommitted table."""
        from dbt.adapters.factory import get_adapter_by_type

        try:
            connection = get_adapter_by_type("duckdb").connections.get_if_exists()
        except Exception:  # no adapter registered (the plugin used outside a dbt run)
            connection = None
        if connection is not None and connection.handle is not None:
            return connection.handle.cursor()
        if self._conn is None:
            raise DbtRuntimeError("dbt_s3_export: no DuckDB connection is open to read from")
        return self._conn.cursor()
