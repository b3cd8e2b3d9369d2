"""Progress lines: on time, stopped with the export however it ends, wording."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pytest

from dbt_s3_export import ExportConfig, RunContext, S3ExportError, SourceError, progress, run_export
from dbt_s3_export.progress import INTERVAL_ENV, Progress, interval_from_env, plural

from .engine import engine_client
from .support import S3Server


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[list[str]]:
    handler = _Lines()
    log = logging.getLogger("dbt_s3_export.progress")
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    yield handler.lines
    log.removeHandler(handler)
    log.setLevel(old_level)


class _FailingSource:
    """Rows for a while, then a failure in the middle of the export."""

    def schema(self, order_by: Sequence[str] = ()) -> pa.Schema:
        return pa.schema([("id", pa.int64())])

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        def batches() -> Iterator[pa.RecordBatch]:
            for i in range(5):
                time.sleep(0.05)
                yield pa.record_batch([pa.array(range(i * 1000, (i + 1) * 1000))], ["id"])
            raise SourceError("the model's query failed halfway")

        return pa.RecordBatchReader.from_batches(self.schema(), batches())


def _reporters() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "s3-export-progress"]


def _watched() -> set[Progress]:
    """The meters the process's reporting thread logs for."""
    return set(progress._REPORTER._meters)


def test_lines_come_every_interval_and_stop_with_the_export(lines: list[str]) -> None:
    counts = {"rows": 0}

    def written() -> tuple[int, int, int]:
        counts["rows"] += 1000
        return counts["rows"], counts["rows"] * 10, 1

    meter = Progress("m -> s3://b/k/", interval=0.05)
    meter.watch(written)
    time.sleep(0.4)
    meter.stop()
    assert 4 <= len(lines) <= 9, lines
    assert lines[0].startswith("s3_export: m -> s3://b/k/: 1,000 rows, 9.8 KiB written (")
    assert "1 file uploaded" in lines[0] and lines[0].endswith(" s so far")
    assert len(_reporters()) <= 1  # the process's one reporting thread, kept
    assert meter not in _watched()
    count = len(lines)
    time.sleep(0.15)
    assert len(lines) == count


def test_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0")
    meter = Progress("m")
    meter.watch(lambda: (0, 0, 0))
    assert meter.interval == 0 and meter not in _watched()  # switched off: never reported
    monkeypatch.setenv(INTERVAL_ENV, "2.5")
    assert interval_from_env() == 2.5
    monkeypatch.setenv(INTERVAL_ENV, "ten")
    assert interval_from_env() == 10.0
    monkeypatch.delenv(INTERVAL_ENV)
    assert interval_from_env() == 10.0


def test_plural() -> None:
    assert [plural(n, "row") for n in (0, 1, 2, 1_000_000)] == [
        "0 rows",
        "1 row",
        "2 rows",
        "1,000,000 rows",
    ]


def test_failed_export_stops_its_reporter(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, lines: list[str]
) -> None:
    monkeypatch.setenv(INTERVAL_ENV, "0.01")
    client: Any = engine_client(s3_server.endpoint)
    s3_server.create_bucket("progress-fails")
    cfg = ExportConfig.parse({"bucket": "progress-fails", "key": "k/", "file_format": "csv"})
    with pytest.raises(S3ExportError):
        run_export(cfg, _FailingSource(), client, RunContext(model="m"))
    assert lines, "the reporter never ran, so this test proves nothing"
    assert _watched() == set()
    count = len(lines)
    time.sleep(0.05)
    assert len(lines) == count
