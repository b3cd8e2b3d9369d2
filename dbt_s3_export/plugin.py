"""The dbt-duckdb plugin: the only module that imports dbt.

``export_to_s3()`` (macros/) calls ``adapter.store_relation('dbt_s3_export',
this, [], '', 's3', payload)`` where ``payload`` carries the model's name and
its ``s3_export`` entries. The plugin validates every entry against the
profile's defaults before reading anything, then runs the exports on the
model's own connection, so a post-hook inside the model's transaction sees the
table it just built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import TargetConfig
from dbt.adapters.events.logging import AdapterLogger
from dbt_common.exceptions import DbtRuntimeError

from .config import SECRET_OPTIONS, ExportConfig, check_option_names
from .credentials import ClientCache, ConnectionSettings, redact
from .errors import S3ExportError
from .export import ExportResult, run_export
from .report import ExportRecord, RunReport
from .source import DuckDBSource

logger = AdapterLogger("S3Export")
PROFILE_WHERE = "profiles.yml plugin 'dbt_s3_export' config"


class _ToDbtLog(logging.Handler):
    """Passes the engine's log lines (progress of long exports) on to dbt's log."""

    def emit(self, record: logging.LogRecord) -> None:
        log = logger.warning if record.levelno >= logging.WARNING else logger.info
        log(record.getMessage())


def _log_facts(text: str, facts: Mapping[str, Any]) -> None:
    """Log ``text``; with --log-format json the event's data.args[0] holds ``facts``."""
    logger.info(text.replace("{", "{{").replace("}", "}}"), dict(facts))


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
        self._report = RunReport()
        self._report_lock = threading.Lock()
        engine_log = logging.getLogger("dbt_s3_export")
        if not any(isinstance(h, _ToDbtLog) for h in engine_log.handlers):
            engine_log.addHandler(_ToDbtLog())
            engine_log.setLevel(logging.INFO)
            engine_log.propagate = False

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        self._conn = conn

    def store(self, target_config: TargetConfig) -> None:
        payload = target_config.config
        if isinstance(payload, Mapping) and payload.get("action") == "run_end":
            return self._run_end(payload)
        if not isinstance(payload, Mapping) or "exports" not in payload:
            raise DbtRuntimeError(
                "dbt_s3_export: store_relation was called without an export payload; "
                "call the dbt_s3_export.export_to_s3() macro instead"
            )
        model = str(payload.get("model") or target_config.relation.identifier)
        secrets = self._secrets(payload["exports"])
        destination = ""
        report, unique_id = self._report_for(payload), payload.get("unique_id")
        report.hook_ran(unique_id)
        try:
            for cfg, result in self._export_all(model, payload, target_config.relation):
                destination = cfg.destination
                if result is not None:
                    record = ExportRecord.of(result, unique_id)
                    report.add(record)
                    _log_facts(result.summary(), record.facts())
        except S3ExportError as e:
            # One clear line in dbt's output; the chain stays out of the message, and
            # any secret value that slipped into it is scrubbed as a last resort.
            subject = f"model '{model}'" + (f" exporting to {destination}" if destination else "")
            text = str(e).removeprefix(f"model '{model}': ")
            message = redact(f"s3_export failed for {subject}: {text}", secrets)
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

    def _run_end(self, payload: Mapping[str, Any]) -> None:
        """on_run_end(): warn about models that exported nothing, then log the run's totals."""
        report = self._report_for(payload)
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

    def _secrets(self, entries: Any) -> list[str]:
        """Every credential value in the profile config and the model's entries."""
        found: list[str] = []
        for options in [self._defaults, *(entries if isinstance(entries, list) else [])]:
            if isinstance(options, Mapping):
                found += [
                    str(v) for k, v in options.items() if k in SECRET_OPTIONS and v is not None
                ]
        return found

    def _export_all(
        self, model: str, payload: Mapping[str, Any], relation: Any
    ) -> Iterator[tuple[ExportConfig, ExportResult | None]]:
        """Validate every entry, then export them one by one (yielding before each)."""
        entries = payload["exports"]
        # Warn before validating: the meta holds the credentials even if it is invalid.
        in_meta = {
            name for entry in entries if isinstance(entry, Mapping) for name in entry
        } & SECRET_OPTIONS
        if in_meta and payload.get("unique_id") is None:
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
        configs = []
        for i, entry in enumerate(entries):
            where = f"model '{model}' s3_export" + (f"[{i}]" if len(entries) > 1 else "")
            configs.append(ExportConfig.parse(entry, self._defaults, where=where))
        extra = {
            "invocation_id": payload.get("invocation_id"),
            "unique_id": payload.get("unique_id"),
        }
        cursor = self._cursor()
        for cfg in configs:
            yield cfg, None
            if not cfg.enabled:
                off = "enabled: false"
                yield cfg, ExportResult(model, cfg.destination, cfg.file_format, "", skipped=off)
                continue
            source = DuckDBSource(cursor, str(relation), cfg.where)
            if cfg.rows == "batch":
                batch = source.batch_relation(relation.identifier)
                if batch is not None:
                    source = DuckDBSource(cursor, batch, cfg.where)
                    logger.info(f"s3_export: {model}: exporting this run's incremental batch only")
            client = self._clients.get(ConnectionSettings.of(cfg))
            yield cfg, run_export(cfg, source, client, model=model, extra_manifest=extra)

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
