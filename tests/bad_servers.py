"""Servers that misbehave on purpose, on 127.0.0.1, each on a thread of its own.

``SilentServer`` accepts every TCP connection and never answers (nor closes):
the worst case of a hung endpoint or a firewall that lets the handshake through.
``EmptyAnswerServer`` answers every HTTP request with 200 and an empty body,
which no S3 or STS client can parse.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class _Background:
    """A server on a thread of its own, for a ``with`` block."""

    endpoint: str
    _thread: threading.Thread

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        self._thread.join(5)

    def _stop(self) -> None:
        raise NotImplementedError


class SilentServer(_Background):
    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.endpoint = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            self.connections += 1
            self._held.append(conn)

    def _stop(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        self._sock.close()
        for conn in self._held:
            conn.close()


class _EmptyAnswer(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class EmptyAnswerServer(_Background):
    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyAnswer)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
