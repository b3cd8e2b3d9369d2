"""What the exports of one dbt invocation did: the run summary and the facts for CI.

The plugin records every export as it ends (succeeded, failed or skipped) and
keeps the records of the current invocation here. From them come

- the summary that ``dbt_s3_export.on_run_end()`` logs when the run ends: how
  many exports, rows, files and bytes, which failed, which was slowest;
- the warning about models that have ``s3_export`` meta but ran without
  exporting (no export hook);
- ``target/s3_export_results.json``, rewritten after every export, with one
  entry per export for CI jobs to read.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from .progress import human_bytes, plural, utc_now
from .result import ExportResult

ARTIFACT_NAME = "s3_export_results.json"
ARTIFACT_VERSION = 1

Status = Literal["success", "error", "skipped"]


@dataclass(frozen=True)
class ExportRecord:
    """One export of the run, as CI jobs read it."""

    model: str
    unique_id: str | None
    destination: str
    file_format: str | None
    status: Status
    rows: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    message: str | None = None

    @classmethod
    def of(cls, result: ExportResult, unique_id: str | None) -> ExportRecord:
        return cls(
            model=result.model,
            unique_id=unique_id,
            destination=result.destination,
            file_format=result.file_format,
            status="skipped" if result.skipped else "success",
            rows=result.rows,
            files=len(result.files),
            bytes=result.bytes,
            seconds=round(result.seconds, 3),
            message=result.skipped,
        )

    def facts(self) -> dict[str, Any]:
        return asdict(self)


class RunReport:
    """The exports of one dbt invocation; safe to add to from dbt's threads."""

    def __init__(self, invocation_id: str | None = None) -> None:
        self.invocation_id = invocation_id
        self.records: list[ExportRecord] = []
        # Each record as the artifact holds it, rendered once when added: the artifact is
        # rewritten after every export, and rendering every record each time made a
        # project's exports cost time in proportion to the square of their number.
        self._entries: list[str] = []
        # Nodes whose export hook reached the plugin, whatever came of it.
        self.hooked: set[str] = set()
        # Models whose exports var dbt_s3_export_enabled switched off.
        self.switched_off: set[str] = set()
        self._lock = threading.Lock()

    def switched_off_model(self, model: str) -> bool:
        """Count a model whose exports were switched off; True for the run's first."""
        with self._lock:
            first = not self.switched_off
            self.switched_off.add(model)
            return first

    def hook_ran(self, unique_id: str | None) -> None:
        if unique_id:
            with self._lock:
                self.hooked.add(unique_id)

    def add(self, record: ExportRecord) -> None:
        entry = textwrap.indent(json.dumps(record.facts(), indent=2), "    ")
        with self._lock:
            self.records.append(record)
            self._entries.append(entry)

    def totals(self) -> dict[str, Any]:
        with self._lock:
            records = list(self.records)
        done = [r for r in records if r.status == "success"]
        slowest = max(done, key=lambda r: r.seconds, default=None)
        return {
            "exports": len(records),
            "succeeded": len(done),
            "failed": sum(r.status == "error" for r in records),
            "skipped": sum(r.status == "skipped" for r in records),
            "rows": sum(r.rows for r in done),
            "files": sum(r.files for r in done),
            "bytes": sum(r.bytes for r in done),
            "seconds": round(sum(r.seconds for r in done), 3),
            "slowest": None if slowest is None else slowest.facts(),
        }

    def summary(self) -> list[str]:
        """The lines of the run summary; none when nothing was exported."""
        totals = self.totals()
        if not totals["exports"]:
            return []
        counts = ""
        if totals["succeeded"] < totals["exports"]:
            kinds = ("succeeded", "failed", "skipped")
            counts = " (" + ", ".join(f"{totals[k]} {k}" for k in kinds if totals[k]) + ")"
        lines = [
            f"s3_export: {plural(totals['exports'], 'export')} this run{counts}: "
            f"{plural(totals['rows'], 'row')}, {plural(totals['files'], 'file')}, "
            f"{human_bytes(totals['bytes'])}"
        ]
        slowest = totals["slowest"]
        if slowest is not None and totals["succeeded"] > 1:
            lines.append(
                f"s3_export: slowest: {slowest['model']} -> {slowest['destination']} "
                f"({slowest['seconds']:.2f}s)"
            )
        with self._lock:
            failed = [r for r in self.records if r.status == "error"]
        if failed:
            lines.append(
                "s3_export: failed: "
                + ", ".join(f"{r.model} -> {r.destination or '?'}" for r in failed)
            )
        return lines

    def missing_hooks(self, ran: Iterable[Sequence[str]]) -> str | None:
        """A warning naming the nodes with s3_export meta whose export hook never ran."""
        with self._lock:
            names = sorted({name for uid, name in ran if uid not in self.hooked})
        if not names:
            return None
        return (
            f"s3_export: {plural(len(names), 'model')} with s3_export meta ran without "
            f"exporting anything: {', '.join(names)}. Give "
            f"{'it' if len(names) == 1 else 'them'} the export hook, "
            'post_hook="{{ dbt_s3_export.export_to_s3() }}", or set +post-hook for '
            "their folder in dbt_project.yml"
        )

    def _head(self) -> dict[str, Any]:
        return {
            "metadata": {
                "artifact_version": ARTIFACT_VERSION,
                "invocation_id": self.invocation_id,
                "generated_at": utc_now(),
            },
            "totals": self.totals(),
        }

    def document(self) -> dict[str, Any]:
        with self._lock:
            records = [r.facts() for r in self.records]
        return {**self._head(), "exports": records}

    def text(self) -> str:
        """``document()`` as the artifact's JSON text, from the records rendered when added."""
        with self._lock:
            entries = list(self._entries)
        head = json.dumps(self._head(), indent=2)  # "{ ... }": the exports go before its "}"
        exports = "[\n" + ",\n".join(entries) + "\n  ]" if entries else "[]"
        return f'{head[:-2]},\n  "exports": {exports}\n}}'

    def write(self, target_dir: Path) -> Path:
        """Write the artifact into ``target_dir`` (replacing it whole, never half-written)."""
        path = target_dir / ARTIFACT_NAME
        target_dir.mkdir(parents=True, exist_ok=True)
        body = self.text()
        with self._lock:
            partial = path.with_name(f".{ARTIFACT_NAME}.{os.getpid()}.tmp")
            partial.write_text(body)
            os.replace(partial, path)
        return path
