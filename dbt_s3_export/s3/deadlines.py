"""Deadlines of S3 and STS requests, so that an export against a silent server ends.

botocore bounds each attempt of a request (``connect_timeout``, ``read_timeout``)
and retries transient faults. Through botocore's event hooks this module adds:

* ``total_timeout``: no retry starts that could end after the request's first
  ``total_timeout`` seconds, so one request, retries included, ends within it.
* Failing fast: once a request has given up because the endpoint took no
  connection or gave no answer within the timeouts, further requests through the
  same client fail at once for the next ``total_timeout`` seconds, instead of each
  waiting out its own timeouts. That bounds the clean-up after such a failure,
  and the exports of the other models of the run. Any answer from the endpoint
  ends it early.

A server that accepts connections and never answers therefore fails an export
within about ``read_timeout`` times the attempts that fit in ``total_timeout``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError

# Defaults, in seconds: what a healthy S3 endpoint never comes near.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
TOTAL_TIMEOUT = 90.0
MAX_ATTEMPTS = 5
# botocore's backoff between attempts doubles up to this (throttling), in seconds.
_MAX_BACKOFF = 20.0
_STARTED = "dbt_s3_export_started"
# Errors after which the endpoint counts as silent: each one cost a full timeout.
_SILENT_ERRORS = (ReadTimeoutError, ConnectTimeoutError)
# Answers botocore may retry: server faults and throttling.
_RETRIED_CODES = {"SlowDown", "Throttling", "RequestTimeout", "RequestTimeoutException"}


@dataclass(frozen=True)
class Timeouts:
    """The bounds of one client's requests, in seconds."""

    connect: float = CONNECT_TIMEOUT
    read: float = READ_TIMEOUT
    total: float = TOTAL_TIMEOUT
    attempts: int = MAX_ATTEMPTS

    def attempt_fits(self, elapsed: float, attempts: int) -> bool:
        """Whether one more attempt, after its backoff, ends within ``total`` at worst."""
        backoff = min(2.0 ** (attempts - 1), _MAX_BACKOFF)
        return elapsed + backoff + self.connect + self.read <= self.total


class EndpointSilent(BotoCoreError):
    """A request not sent: the endpoint gave no answer to an earlier one moments ago."""

    fmt = "not sent: {operation} got no answer {seconds:.0f} s ago"


def annotate(err: BaseException, **facts: Any) -> None:
    """Attach how a request went (attempts, seconds, timeouts) to a botocore error."""
    if isinstance(err, BotoCoreError):
        err.kwargs = {**err.kwargs, **facts}


def facts(err: BaseException) -> dict[str, Any]:
    """What ``annotate`` attached, if anything."""
    return dict(err.kwargs) if isinstance(err, BotoCoreError) else {}


class Deadlines:
    """The hooks of one set of clients (S3, and STS for a role) that share an endpoint."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self._lock = threading.Lock()
        # When and on which operation the endpoint was last found silent.
        self._silent: tuple[float, str] | None = None

    def install(self, client: Any) -> None:
        events = client.meta.events
        service = client.meta.service_model.service_id.hyphenize()
        events.register_first(f"before-call.{service}", self._started)
        events.register_first(f"before-send.{service}", self._fail_fast)
        events.register_first(f"needs-retry.{service}", self._retry_or_stop)

    def _started(self, context: dict[str, Any], **_: Any) -> None:
        context[_STARTED] = time.monotonic()

    def _fail_fast(self, **_: Any) -> None:
        with self._lock:
            silent = self._silent
        if silent is not None:
            ago = time.monotonic() - silent[0]
            if ago < self.timeouts.total:
                raise EndpointSilent(operation=silent[1], seconds=ago)

    def _heard(self) -> None:
        with self._lock:
            self._silent = None

    def _retry_or_stop(
        self,
        attempts: int,
        request_dict: dict[str, Any],
        operation: Any,
        response: Any = None,
        caught_exception: BaseException | None = None,
        **_: Any,
    ) -> None:
        """Runs before botocore's retry handler: stops a retry that would pass the deadline.

        Returning None lets botocore decide; raising ends the request with that error.
        """
        now = time.monotonic()
        elapsed = now - request_dict.get("context", {}).get(_STARTED, now)
        final = attempts >= self.timeouts.attempts or not self.timeouts.attempt_fits(
            elapsed, attempts
        )
        if response is not None:
            self._heard()
            http, parsed = response
            code = parsed.get("Error", {}).get("Code") if isinstance(parsed, dict) else None
            retried = http.status_code >= 500 or http.status_code == 429 or code in _RETRIED_CODES
            if retried and final and http.status_code >= 300:
                parsed.setdefault("ResponseMetadata", {})["RetryAttempts"] = attempts - 1
                raise ClientError(parsed, operation.name)
            return None
        if caught_exception is None:
            return None
        if isinstance(caught_exception, EndpointSilent):
            raise caught_exception
        annotate(
            caught_exception,
            attempts=attempts,
            seconds=elapsed,
            connect_timeout=self.timeouts.connect,
            read_timeout=self.timeouts.read,
            total_timeout=self.timeouts.total,
        )
        if not final:
            return None
        if isinstance(caught_exception, _SILENT_ERRORS):
            with self._lock:
                self._silent = (now, operation.name)
        raise caught_exception
