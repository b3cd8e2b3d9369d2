"""When an upload waits for the server's ``100 Continue`` before sending its body.

botocore sends ``Expect: 100-continue`` with every object and part it uploads: the
request's headers go first, and the body only once the server has answered that
it will take it. For a big body that saves sending megabytes the server would
refuse (a bad signature, a redirect, a failed condition). For a small one it
costs a round trip and a wait on the socket per request, about a quarter of a
millisecond on a local server and a network round trip on a remote one, to save
sending a few kilobytes: bodies under CONTINUE_FROM_BYTES go at once.
"""

from __future__ import annotations

from typing import Any

# Bodies from this size wait for the server's 100 Continue (AWS's Go SDK draws the
# line at 2 MB by default). Every multipart part (5 MiB or more) still waits.
CONTINUE_FROM_BYTES = 1024 * 1024


def send_small_bodies_at_once(client: Any) -> None:
    """Make ``client`` send bodies under CONTINUE_FROM_BYTES with their headers."""
    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-send.{service}", _no_wait_for_small_bodies)


def _no_wait_for_small_bodies(request: Any, **_: Any) -> None:
    """Drop ``Expect: 100-continue`` from a request whose body is small (not signed)."""
    headers = request.headers
    if "Expect" not in headers:
        return
    length = headers.get("Content-Length")
    try:
        small = length is not None and int(length) < CONTINUE_FROM_BYTES
    except ValueError:
        return
    if small:
        del headers["Expect"]
