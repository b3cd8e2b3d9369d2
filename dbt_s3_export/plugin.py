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
from pathlib import Path
from typing import Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import TargetConfig
from dbt.adapters.events.logging import AdapterLogger
from dbt_common.exceptions import DbtRuntimeError

from .commit import RunContext
from .errors import S3ExportError, brief
from .export import run_export
from .options.config import (
    SECRET_OPTIONS,
    ExportConfig,
    catalog_secret_values,
    check_option_names,
    overlay,
)
from .report import ExportRecord, RunReport
from .result import ExportResult
from .s3.credentials import ClientCache, ConnectionSettings, redact, url_secrets
from .s3.duckdb_s3 import DuckDBS3Config, destination_of, profile_secrets
from .source.batches import relation_sql
from .source.rows import export_source

logger = AdapterLogger("S3Export")
PROFILE_CONTEXT = "profiles.yml plugin 'dbt_s3_export' config"
SWITCHED_OFF = "s3_export: exports are switched off by var dbt_s3_export_enabled (false)"


def _log_facts(text: str, facts: Mapping[str, Any]) -> None:
    """Log ``text``; with --log-format json the event's data.args[0] holds ``facts``."""
    logger.info(text.replace("{", "{{").replace("}", "}}"), dict(facts))


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        # dbt-duckdb merges the profile's DuckDB settings into every plugin's config
        # (s3/duckdb_s3.py): those that are not export options are not ours to check.
        settings = dict(getattr(self.creds, "settings", None) or {})
        known = ExportConfig.option_names()
        config = {k: v for k, v in (plugin_config or {}).items() if k in known or k not in settings}
        try:
            check_option_names(config, context=PROFILE_CONTEXT)
        except S3ExportError as e:
            raise DbtRuntimeError(str(e)) from None
        # A fault in DuckDB's own S3 configuration fails exports, not every dbt command.
        self._duckdb_s3 = DuckDBS3Config()
        self._duckdb_s3_error: S3ExportError | None = None
        try:
            self._duckdb_s3 = DuckDBS3Config.from_profile(settings, profile_secrets(self.creds))
        except S3ExportError as e:
            self._duckdb_s3_error = e
        self._defaults = config
        self._clients = ClientCache()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._done: set[tuple[str, str, str]] = set()
        self._report = RunReport()
        self._report_lock = threading.Lock()

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn

    def store(self, target_config: TargetConfig) -> None:
        payload = target_config.config
        if isinstance(payload, Mapping) and payload.get("action") == "run_end":
            return self._run_end(payload)
        if isinstance(payload, Mapping) and payload.get("action") == "switched_off":
            return self._switched_off(payload)
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
        report, unique_id = self._report_for(payload), payload.get("unique_id")
        report.hook_ran(unique_id)
        try:
            configs = []
            for i, entry in enumerate(entries):
                raw = {**self._defaults, **(entry if isinstance(entry, Mapping) else {})}
                destination = destination_of(raw) or ""
                context = f"s3_export[{i}]" if len(entries) > 1 else ""
                defaults = self._defaults_for(entry)
                configs.append(ExportConfig.parse(entry, defaults, context=context))
            for i, cfg in enumerate(configs):
                destination = cfg.destination
                result = self._export(cfg, i, model, payload, target_config.relation)
                record = ExportRecord.of(result, unique_id)
                report.add(record)
                _log_facts(result.summary(), record.facts())
        except DbtRuntimeError:
            raise
        except Exception as e:
            # One line in dbt's output, naming the model and the destination once; the
            # chain stays out of it, and any secret value that slipped in is scrubbed.
            subject = f"model '{model}'" + (f" exporting to {destination}" if destination else "")
            secrets += self._clients.secrets()
            message = redact(f"s3_export failed for {subject}: {brief(e)}", secrets)
            report.add(ExportRecord(model, unique_id, destination, None, "error", message=message))
            raise DbtRuntimeError(message) from None
        finally:
            self._write_artifact(report)

    def _report_for(self, payload: Mapping[str, Any]) -> RunReport:
        """The report of the payload's dbt invocation; a new invocation starts a new one."""
        invocation_id = payload.get("invocation_id")
        with self._report_lock:
            if invocation_id != self._report.invocation_id:
                self._report = RunReport(invocation_id)
            return self._report

    def _switched_off(self, payload: Mapping[str, Any]) -> None:
        """A model's exports skipped by var dbt_s3_export_enabled: counted, said once a run.

        With on_run_end() in the project the count is said when the run ends; without
        it, the first skipped model says it for the run.
        """
        report = self._report_for(payload)
        first = report.switched_off_model(str(payload.get("model") or "?"))
        if first and not payload.get("run_end_hook"):
            logger.info(
                f"{SWITCHED_OFF}: this run exports nothing (first skipped: "
                f"{payload.get('model')}). Drop the var, or set it to true, to export"
            )

    def _run_end(self, payload: Mapping[str, Any]) -> None:
        """on_run_end(): warn about models that exported nothing, then log the run's totals."""
        report = self._report_for(payload)
        if payload.get("switched_off"):
            count = len(report.switched_off)
            logger.info(
                f"{SWITCHED_OFF}: skipped the exports of {count} model{'' if count == 1 else 's'} "
                "this run. Drop the var, or set it to true, to export"
            )
        warning = report.missing_hooks(payload.get("ran") or [])
        if warning:
            logger.warning(warning)
        lines = report.summary()
        if lines:
            _log_facts(lines[0], report.totals())
        for line in lines[1:]:
            logger.info(line)
        self._write_artifact(report)

    def _write_artifact(self, report: RunReport) -> None:
        """target/s3_export_results.json; a failure to write it never fails the model."""
        from dbt.adapters.factory import get_adapter_by_type

        try:
            config = get_adapter_by_type("duckdb").config  # type: ignore[no-untyped-call]
            report.write(Path(config.project_root) / config.target_path)
        except Exception as e:  # no dbt project (engine used alone), or a file system error
            logger.debug(f"s3_export: could not write the results artifact: {e}")

    def _export(
        self, cfg: ExportConfig, entry: int, model: str, payload: Mapping[str, Any], relation: Any
    ) -> ExportResult:
        """Run one export entry, at most once per dbt invocation."""

        def skipped(reason: str) -> ExportResult:
            return ExportResult(model, cfg.destination, cfg.file_format, "", skipped=reason)

        if not cfg.enabled:
            return skipped("enabled: false")
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
                return skipped("already exported in this dbt invocation; is the hook set twice?")
            self._done.add(done)
        source = export_source(
            self._cursor(),
            _relation_name(relation),
            relation.identifier,
            cfg.where,
            cfg.rows,
            mode=cfg.mode,
            partition_cols=cfg.partition_cols,
            incremental=payload.get("materialized") == "incremental",
            max_partitions=cfg.max_partitions,
            file_format=cfg.file_format,
        )
        if source.note:
            logger.info(f"s3_export: {model}: {source.note}")
        settings = ConnectionSettings.of(cfg)
        client = self._clients.get(settings)
        return run_export(cfg, source, client, ctx, self._clients.credentials(settings))

    def _secrets(self, entries: Any) -> list[str]:
        """Every credential value in the profile config and the model's entries."""
        found: list[str] = self._duckdb_s3.secret_values()
        for options in [self._defaults, *(entries if isinstance(entries, list) else [])]:
            if isinstance(options, Mapping):
                found += [
                    str(v) for k, v in options.items() if k in SECRET_OPTIONS and v is not None
                ]
                found += url_secrets(options.get("endpoint_url"))
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

    def _defaults_for(self, entry: Any) -> dict[str, Any]:
        """The plugin config over the profile's DuckDB S3 configuration for this destination."""
        if self._duckdb_s3_error is not None:
            raise self._duckdb_s3_error
        raw = {**self._defaults, **(entry if isinstance(entry, Mapping) else {})}
        return overlay(self._duckdb_s3.defaults_for(destination_of(raw)), self._defaults)

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


def _relation_name(relation: Any) -> str:
    """The relation as SQL, each part quoted so that no name can end its identifier early.

    A source read from files (``external_location``) is the project's own SQL text.
    """
    external = getattr(relation, "external", None)
    if external:
        return str(external)
    policy = relation.include_policy
    return relation_sql(
        relation.database if policy.database else None,
        relation.schema if policy.schema else None,
        relation.identifier,
    )
