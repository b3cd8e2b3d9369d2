"""The dbt-duckdb plugin: the only module that imports dbt.

``export_to_s3()`` (macros/) calls ``adapter.store_relation('dbt_s3_export',
this, [], '', 's3', payload)`` where ``payload`` carries the model's name and
its ``s3_export`` entries. The plugin validates every entry against the
profile's defaults before reading anything, then runs the exports on the
model's own connection, so a post-hook inside the model's transaction sees the
table it just built.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import TargetConfig
from dbt.adapters.events.logging import AdapterLogger
from dbt_common.exceptions import DbtRuntimeError

from .commit import RunContext
from .config import SECRET_OPTIONS, ExportConfig, catalog_secret_values, check_option_names
from .credentials import ClientCache, ConnectionSettings, redact
from .errors import S3ExportError
from .export import ExportResult, run_export
from .source import export_source

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
        self._lock = threading.Lock()
        self._done: set[tuple[str, str, str]] = set()

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
        entries = payload["exports"]
        secrets = self._secrets(entries)
        self._warn_about_credentials(model, entries, adhoc=payload.get("unique_id") is None)
        destination = ""
        try:
            configs = []
            for i, entry in enumerate(entries):
                destination = _destination_of(entry, self._defaults)
                where = f"s3_export[{i}]" if len(entries) > 1 else ""
                configs.append(ExportConfig.parse(entry, self._defaults, where=where))
            for i, cfg in enumerate(configs):
                destination = cfg.destination
                result = self._export(cfg, i, model, payload, target_config.relation)
                if result is not None:
                    logger.info(result.summary())
        except S3ExportError as e:
            # One line in dbt's output, naming the model and the destination once; the
            # chain stays out of it, and any secret value that slipped in is scrubbed.
            subject = f"model '{model}'" + (f" exporting to {destination}" if destination else "")
            message = redact(f"s3_export failed for {subject}: {e}", secrets)
            raise DbtRuntimeError(message) from None

    def _export(
        self, cfg: ExportConfig, entry: int, model: str, payload: Mapping[str, Any], relation: Any
    ) -> ExportResult | None:
        """Run one export entry, at most once per dbt invocation."""
        if not cfg.enabled:
            logger.info(f"s3_export: {model} -> {cfg.destination}: skipped (enabled: false)")
            return None
        ctx = RunContext(
            model=model,
            unique_id=payload.get("unique_id"),
            invocation_id=payload.get("invocation_id"),
            entry=entry,
            full_refresh=bool(payload.get("full_refresh")),
            log=logger.info,
        )
        # A model whose hook is listed twice (say in dbt_project.yml and in its own
        # config) would export twice, and an append export would add its rows twice.
        done = (ctx.invocation_id or "", ctx.export_id(cfg), cfg.destination)
        with self._lock:
            if ctx.invocation_id and done in self._done:
                logger.info(
                    f"s3_export: {model} -> {cfg.destination}: skipped (already exported in "
                    "this dbt invocation; is the export hook set twice?)"
                )
                return None
            self._done.add(done)
        source = export_source(
            self._cursor(), str(relation), relation.identifier, cfg.where, cfg.rows
        )
        if source.note:
            logger.info(f"s3_export: {model}: {source.note}")
        client = self._clients.get(ConnectionSettings.of(cfg))
        return run_export(cfg, source, client, ctx)

    def _secrets(self, entries: Any) -> list[str]:
        """Every credential value in the profile config and the model's entries."""
        found: list[str] = []
        for options in [self._defaults, *(entries if isinstance(entries, list) else [])]:
            if isinstance(options, Mapping):
                found += [
                    str(v) for k, v in options.items() if k in SECRET_OPTIONS and v is not None
                ]
                found += catalog_secret_values(options.get("catalog"))
        return found

    def _warn_about_credentials(self, model: str, entries: Any, *, adhoc: bool) -> None:
        """Warn before validating: the meta holds the credentials even if it is invalid."""
        in_meta = {
            name for entry in entries if isinstance(entry, Mapping) for name in entry
        } & SECRET_OPTIONS
        if any(catalog_secret_values(e.get("catalog")) for e in entries if isinstance(e, Mapping)):
            in_meta.add("catalog")
        if in_meta and adhoc:
            logger.warning(
                f"s3_export: the export of '{model}' was given credentials "
                f"({', '.join(sorted(in_meta))}) in --args, which shell history and dbt's logs "
                "may keep. Put them in the profile's dbt_s3_export plugin config with "
                "env_var('DBT_ENV_SECRET_...') instead, or leave them out and let boto3 find them"
            )
        elif in_meta:
            logger.warning(
                f"s3_export: model '{model}' has credentials ({', '.join(sorted(in_meta))}) in "
                "its meta, and dbt stores meta in plain text in target/manifest.json. Put them "
                "in the profile's dbt_s3_export plugin config with "
                "env_var('DBT_ENV_SECRET_...') instead, or leave them out and let boto3 find them"
            )

    def _cursor(self) -> Any:
        """The calling thread's dbt connection: it sees the model's uncommitted table."""
        from dbt.adapters.factory import get_adapter_by_type

        try:
            adapter = get_adapter_by_type("duckdb")  # type: ignore[no-untyped-call]
            connection = adapter.connections.get_if_exists()
        except KeyError:  # no duckdb adapter registered: the plugin is used outside dbt
            connection = None
        if connection is not None and connection.handle is not None:
            return connection.handle.cursor()
        if self._conn is None:
            raise DbtRuntimeError("dbt_s3_export: no DuckDB connection is open to read from")
        return self._conn.cursor()


def _destination_of(entry: Any, defaults: Mapping[str, Any]) -> str:
    """Where an entry points, as far as it can be told before it is validated."""
    if not isinstance(entry, Mapping):
        return ""
    merged = {**defaults, **entry}
    to, bucket, key = merged.get("to"), merged.get("bucket"), merged.get("key")
    if isinstance(to, str) and to.startswith("s3://"):
        return to
    if isinstance(bucket, str) and isinstance(key, str):
        return f"s3://{bucket}/{key}"
    return ""
