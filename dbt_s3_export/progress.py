"""Progress lines for long exports, and the wording and timestamps every summary shares.

An export that runs longer than the interval (10 s unless the environment
variable ``DBT_S3_EXPORT_PROGRESS_SECONDS`` says otherwise; 0 turns the lines
off) logs a line each interval with the rows and bytes written so far, the rate
and the files uploaded. One thread of the process does the reporting, so a line comes
on time even while the export waits on DuckDB or on S3. Lines go where the run
context logs (dbt's log, from the plugin), else to the ``dbt_s3_export`` logger.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable

INTERVAL_ENV = "DBT_S3_EXPORT_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 10.0

logger = logging.getLogger(__name__)

# Rows and bytes written so far, files uploaded; called from the reporting thread.
Written = Callable[[], tuple[int, int, int]]


def utc_now() -> str:
    """Now, in UTC to the second, as manifests, leases and results write it."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def plural(n: int, word: str) -> str:
    """``1 row``, ``2 rows``, ``1,000,000 rows``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def human_bytes(n: float) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def interval_from_env() -> float:
    """Seconds between progress lines; 0 when they are switched off."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        logger.warning(
            f"{INTERVAL_ENV}={raw!r} is not a number of seconds; using {DEFAULT_INTERVAL:g}"
        )
        return DEFAULT_INTERVAL
    return max(value, 0.0)


class Progress:
    """Reports an export's progress every ``interval`` seconds while it is watched.

    The clock starts when the object is made; ``watch`` hands the meter to the
    process's reporting thread once the counts exist, and ``stop`` takes it back:
    no line comes after ``stop`` returns.
    """

    def __init__(
        self,
        label: str,
        interval: float | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.label = label
        self._log = log or logger.info
        self.interval = interval_from_env() if interval is None else interval
        self.started = time.monotonic()
        self._written: Written | None = None
        self._context: contextvars.Context | None = None
        self.due = 0.0
        # Held while a line is logged: stop() waits for a line being logged to end.
        self._lock = threading.Lock()
        self._watched = False

    def watch(self, written: Written) -> None:
        if self.interval <= 0 or self._watched:
            return
        # Lines are logged in the caller's context, so dbt ties them to the model.
        self._context = contextvars.copy_context()
        self._written = written
        self.due = self.started + self.interval
        self._watched = True
        _REPORTER.add(self)

    def stop(self) -> None:
        with self._lock:
            if not self._watched:
                return
            self._watched = False
        _REPORTER.remove(self)

    def report(self, now: float) -> None:
        """Log a line if still watched (the reporting thread calls this when it is due)."""
        with self._lock:
            if not self._watched or self._written is None or self._context is None:
                return
            with contextlib.suppress(Exception):  # a count caught mid-update: skip this line
                line = self.line(*self._written(), now - self.started)
                self._context.run(self._log, line)
            self.due = max(self.due + self.interval, time.monotonic())

    def line(self, rows: int, size: int, files: int, seconds: float) -> str:
        rate = size / seconds if seconds > 0 else 0.0
        return (
            f"s3_export: {self.label}: {plural(rows, 'row')}, {human_bytes(size)} written "
            f"({human_bytes(rate)}/s), {plural(files, 'file')} uploaded, {seconds:.0f} s so far"
        )


class _Reporter:
    """The one thread of the process that logs every watched meter's lines when due.

    Started with the first meter watched and kept: an export starts no thread for
    its progress (most end before their first line).
    """

    def __init__(self) -> None:
        self._meters: set[Progress] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, meter: Progress) -> None:
        with self._changed:
            self._meters.add(meter)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="s3-export-progress", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def remove(self, meter: Progress) -> None:
        with self._changed:
            self._meters.discard(meter)
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [m for m in self._meters if m.due <= now]
                if not due:
                    soonest = min((m.due for m in self._meters), default=now + 3600)
                    self._changed.wait(max(0.0, soonest - now))
                    continue
            for meter in due:  # outside the condition: a meter's log may take time
                meter.report(now)


_REPORTER = _Reporter()
