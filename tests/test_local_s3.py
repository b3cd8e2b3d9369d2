"""The local SeaweedFS server: a port taken between picking and binding it.

Its ports are picked free just before `weed` binds them; with the tests running
in parallel workers, another process can take one in between.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from dbt_s3_export import local_s3

# Starts servers or dbt of its own: the fast lane (scripts/test --quick) leaves it out.
pytestmark = pytest.mark.slow


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_a_port_taken_meanwhile_starts_the_server_on_others(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([taken_port])
    fresh = local_s3.free_port
    # The first port picked, the S3 port, is one another process holds.
    monkeypatch.setattr(local_s3, "free_port", lambda: next(picks, None) or fresh())
    server = local_s3.SeaweedFS()
    first_endpoint = server.endpoint
    server.start()
    try:
        assert server.client().list_buckets()["Buckets"] == []
        assert server.endpoint != first_endpoint
    finally:
        server.stop()


def test_a_given_port_that_is_taken_fails_saying_why(taken_port: int) -> None:
    server = local_s3.SeaweedFS(port=taken_port)
    with pytest.raises(RuntimeError, match=rf"SeaweedFS exited .*{taken_port}.* address already"):
        server.start()
    assert server.proc is None
