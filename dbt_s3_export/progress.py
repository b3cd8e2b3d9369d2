"""Progress lines for long exports, and the wording and timestamps every summary shares.

An export that runs longer than the interval (10 s unless the environment
variable ``DBT_S3_EXPORT_PROGRESS_SECONDS`` says otherwise; 0 turns the lines
off) logs a line each interval with the rows and bytes written so far, the rate
and the files uploaded. A thread of its own does the reporting, so a line comes
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

    The clock starts when the object is made; ``watch`` starts the reporting
    thread once the counts exist, and ``stop`` ends it.
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
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, written: Written) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        # The thread logs in the caller's context, so dbt ties the lines to the model.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run,
            args=(self._report, written),
            name="s3-export-progress",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _report(self, written: Written) -> None:
        due = self.started + self.interval
        while not self._stopped.wait(max(0.0, due - time.monotonic())):
            with contextlib.suppress(Exception):  # a count caught mid-update: skip this line
                self._log(self.line(*written(), time.monotonic() - self.started))
            due = max(due + self.interval, time.monotonic())

    def line(self, rows: int, size: int, files: int, seconds: float) -> str:
        rate = size / seconds if seconds > 0 else 0.0
        return (
            f"s3_export: {self.label}: {plural(rows, 'row')}, {human_bytes(size)} written "
            f"({human_bytes(rate)}/s), {plural(files, 'file')} uploaded, {seconds:.0f} s so far"
        )
