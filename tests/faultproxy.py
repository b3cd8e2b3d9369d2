"""An HTTP proxy for tests that injects S3 faults between boto3 and the S3 server.

boto3 talks to the proxy as if it were the endpoint (``endpoint_url`` = the
proxy); the proxy forwards each request to the real server unless a rule
matches it, in which case it answers with an error status, resets the TCP
connection halfway through the request body, delays, forwards and then drops
the answer, or holds the request until released. Rules match on method, path
and query and fire a given number of times, so a test can make a fault
transient (fires once or twice, then botocore's retry gets through) or
persistent (fires every time).
"""

from __future__ import annotations

import http.client
import re
import socket
import socketserver
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import urlsplit

# Answer with ``status`` and an S3 error document whose code is ``code`` (after ``delay``).
STATUS = "status"
# Read half of the request body, then reset the connection (RST, no answer).
RESET = "reset"
# Wait ``delay`` seconds, then forward as usual.
DELAY = "delay"
# Forward the request (it takes effect on the server), then reset without answering.
DROP_ANSWER = "drop_answer"
# Forward the request, send the answer's headers and half its body, then reset.
CUT_ANSWER = "cut_answer"
# Forward as usual (a rule that lets a counted number of requests through first).
PASS = "pass"
# Signal ``FaultProxy.held`` and keep the request until the proxy stops; never forward it.
HOLD = "hold"
# Signal ``FaultProxy.held``, wait until ``FaultProxy.gate`` is set, then forward.
GATE = "gate"
# Forward without If-Match / If-None-Match: a server that ignores conditional writes.
# (It breaks a SigV4 signature that covers those headers: use it with moto, which
# does not check signatures.)
STRIP_CONDITIONS = "strip_conditions"

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "expect",
    "te",
    "upgrade",
}
_KEPT_BODY = 256 * 1024
# What S3 itself says with each error code.
_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "AccessDenied": "Access Denied",
    "InvalidAccessKeyId": "The AWS Access Key Id you provided does not exist in our records.",
    "SignatureDoesNotMatch": (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    ),
}


@dataclass
class Rule:
    """Which requests to fault, how, and how many times (``times=None``: always)."""

    action: str
    method: str | None = None
    path: str = ""
    query: str = ""
    times: int | None = 1
    status: int = 503
    code: str = "SlowDown"
    delay: float = 0.0
    fired: int = 0
    # GATE with events of its own (else the proxy's ``held`` and ``gate``), for a test that
    # pauses one run at several points in turn.
    held: threading.Event | None = field(default=None, repr=False)
    gate: threading.Event | None = field(default=None, repr=False)

    def matches(self, method: str, path: str, query: str) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return bool(re.search(self.path, path)) and bool(re.search(self.query, query))


@dataclass
class Seen:
    """One request the proxy received, and what it did with it."""

    method: str
    path: str
    query: str
    action: str
    body: bytes = field(repr=False, default=b"")
    # The request's headers, names in lower case (as sent, before any rule's change).
    headers: dict[str, str] = field(repr=False, default_factory=dict)


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self.held = threading.Event()
        self.gate = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.seen.clear()

    def requests(self, method: str | None = None, query: str = "") -> list[Seen]:
        with self._lock:
            return [
                s
                for s in self.seen
                if (method is None or s.method == method) and re.search(query, s.query)
            ]

    def _decide(self, method: str, path: str, query: str) -> tuple[Rule | None, Seen]:
        with self._lock:
            rule = next((r for r in self.rules if r.matches(method, path, query)), None)
            if rule is not None:
                rule.fired += 1
            seen = Seen(method, path, query, rule.action if rule else "forward")
            self.seen.append(seen)
            return rule, seen


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=120)
        try:
            while not proxy._stopping.is_set():
                if not self._one_request(proxy, upstream):
                    return
        except (OSError, http.client.HTTPException):
            return
        finally:
            upstream.close()

    def _one_request(self, proxy: FaultProxy, upstream: http.client.HTTPConnection) -> bool:
        line = self.rfile.readline(65537)
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers = _read_headers(self.rfile)
        path, _, query = target.partition("?")
        lowered = {k.lower(): v for k, v in headers}
        if lowered.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
        length = int(lowered.get("content-length", "0") or 0)
        chunked = "chunked" in lowered.get("transfer-encoding", "").lower()
        rule, seen = proxy._decide(method, path, query)
        seen.headers = lowered
        if rule is not None and rule.action == RESET:
            if length:
                self.rfile.read(max(1, length // 2))
            self._reset()
            return False
        body = _read_chunked(self.rfile) if chunked else self.rfile.read(length) if length else b""
        if len(body) <= _KEPT_BODY:
            seen.body = body
        if rule is not None and rule.action == STATUS:
            if rule.delay and proxy._stopping.wait(rule.delay):
                return False
            self._answer_error(rule.status, rule.code)
            return True
        if rule is not None and rule.action == HOLD:
            proxy.held.set()
            proxy._stopping.wait(300)
            self._reset()
            return False
        if rule is not None and rule.action == DELAY and proxy._stopping.wait(rule.delay):
            return False
        if rule is not None and rule.action == GATE:
            (rule.held or proxy.held).set()
            while not (rule.gate or proxy.gate).wait(0.1):
                if proxy._stopping.is_set():
                    return False
        if rule is not None and rule.action == STRIP_CONDITIONS:
            headers = [(k, v) for k, v in headers if k.lower() not in ("if-match", "if-none-match")]
        status, reason, out_headers, data = _forward(upstream, method, target, headers, body)
        if rule is not None and rule.action == DROP_ANSWER:
            self._reset()
            return False
        if rule is not None and rule.action == CUT_ANSWER and len(data) > 1:
            self._answer(status, reason, out_headers, data, head=False, cut=len(data) // 2)
            self._reset()
            return False
        self._answer(status, reason, out_headers, data, head=method == "HEAD")
        return True

    def _answer(
        self,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        data: bytes,
        *,
        head: bool,
        cut: int | None = None,
    ) -> None:
        """Send an answer; with ``cut``, only that many bytes of the body."""
        lines = [f"HTTP/1.1 {status} {reason}"]
        for name, value in headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP or (lowered == "content-length" and not head):
                continue
            lines.append(f"{name}: {value}")
        if not head:
            lines.append(f"Content-Length: {len(data)}")
        body = data if cut is None else data[:cut]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    def _answer_error(self, status: int, code: str) -> None:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{_MESSAGES.get(code, code)}</Message>"
            "<RequestId>fault</RequestId></Error>"
        ).encode()
        self._answer(status, "Injected", [("Content-Type", "application/xml")], body, head=False)

    def _reset(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _read_headers(rfile: BinaryIO) -> list[tuple[str, str]]:
    headers = []
    while True:
        line = rfile.readline(65537).decode("latin-1")
        if line in ("\r\n", "\n", ""):
            return headers
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))


def _read_chunked(rfile: BinaryIO) -> bytes:
    out = bytearray()
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(out)
        out += rfile.read(size)
        rfile.readline()


def _forward(
    upstream: http.client.HTTPConnection,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> tuple[int, str, list[tuple[str, str]], bytes]:
    upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
            upstream.putheader(name, value)
    if body or method in ("PUT", "POST"):
        upstream.putheader("Content-Length", str(len(body)))
    upstream.endheaders(body or None)
    response = upstream.getresponse()
    data = response.read()
    if response.will_close:
        upstream.close()
    return response.status, response.reason, list(response.getheaders()), data


__all__: list[Any] = [
    "CUT_ANSWER",
    "DELAY",
    "DROP_ANSWER",
    "GATE",
    "HOLD",
    "PASS",
    "RESET",
    "STATUS",
    "STRIP_CONDITIONS",
    "FaultProxy",
    "Rule",
]
