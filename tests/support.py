"""Test helpers: S3 servers (SeaweedFS, moto) in their own processes, and throwaway dbt projects."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """An S3-compatible server on 127.0.0.1, in a process of its own."""

    name = "s3"
    endpoint: str

    def start(self) -> S3Server:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket``; one that exists already (from an earlier test) is fine."""
        s3 = s3_client(self.endpoint)
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=bucket)

    def fresh_bucket(self, bucket: str) -> None:
        """``bucket``, empty: for tests that use fixed names (the README's examples)."""
        self.create_bucket(bucket)
        s3 = s3_client(self.endpoint)
        keys = list_keys(s3, bucket)
        for start in range(0, len(keys), 1000):
            objects: list[Any] = [{"Key": k} for k in keys[start : start + 1000]]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects})


class MotoServer(S3Server):
    """moto's server: an emulation of AWS, IAM and STS included."""

    name = "moto"

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        # The port was free when picked; if another process took it since, moto exits
        # at once and starts again on another.
        for _ in range(3):
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=self._env,
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()
                    return self
                except OSError:
                    time.sleep(0.1)
            if self.proc.poll() is None:
                self.stop()
                raise RuntimeError("moto server did not start within 30 s")
            self.port = free_port()
            self.endpoint = f"http://127.0.0.1:{self.port}"
        raise RuntimeError(f"moto server exited with {self.proc.returncode}, three times")

    def reset(self) -> None:
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class SeaweedServer(S3Server):
    """SeaweedFS: a real object store that checks signatures against its own identities."""

    name = "seaweedfs"

    def __init__(self) -> None:
        from dbt_s3_export.local_s3 import SeaweedFS

        access_key = DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]
        secret_key = DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        self._server = SeaweedFS(access_key=access_key, secret_key=secret_key)
        self.endpoint = self._server.endpoint

    def start(self) -> SeaweedServer:
        self._server.start()
        self.endpoint = self._server.endpoint  # another port if the first was taken meanwhile
        return self

    def stop(self) -> None:
        self._server.stop()


SERVERS: dict[str, type[S3Server]] = {"seaweedfs": SeaweedServer, "moto": MotoServer}


def chosen_servers(config: Any) -> list[str]:
    """The S3 servers named by --s3-servers, in order."""
    return [n.strip() for n in config.getoption("s3_servers").split(",") if n.strip()]


def only_on_first_server(request: Any, server: S3Server, why: str) -> None:
    """Skip all but the first of the --s3-servers, for tests whose result cannot differ."""
    import pytest

    if server.name != chosen_servers(request.config)[0]:
        pytest.skip(f"{why}: run against the first server only")


@dataclass
class BackgroundDbt:
    """A dbt command running in the background; ``wait`` gives its result."""

    proc: subprocess.Popen[bytes]
    log: Path
    args: tuple[str, ...]

    def wait(self, timeout: float = 300, *, check: bool = True) -> DbtResult:
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        result = DbtResult(self.proc.returncode, self.log.read_text(errors="replace"))
        self.log.unlink(missing_ok=True)
        if check and not result.ok:
            raise AssertionError(f"dbt {' '.join(self.args)} failed:\n{result.output}")
        return result

    def wait_for_output(self, text: str, timeout: float = 120) -> None:
        """Wait until the command has printed ``text`` (or has ended)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"dbt {' '.join(self.args)} never printed {text!r}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self.log.unlink(missing_ok=True)


@dataclass
class DbtResult:
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass
class DbtProject:
    """A dbt project in a temporary folder that uses this repository as a package."""

    root: Path
    endpoint: str
    plugin_config: dict[str, Any] = field(default_factory=dict)
    threads: int = 1
    env: dict[str, str] = field(default_factory=dict)
    project_config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.root / "models").mkdir(parents=True, exist_ok=True)
        (self.root / "seeds").mkdir(exist_ok=True)
        packages = self.root / "dbt_packages"
        packages.mkdir(exist_ok=True)
        link = packages / "dbt_s3_export"
        if not link.exists():
            link.symlink_to(REPO, target_is_directory=True)
        (self.root / "packages.yml").write_text("packages:\n  - local: " + str(REPO) + "\n")
        self.write_project()
        self.write_profile()

    @property
    def database(self) -> Path:
        return self.root / "test.duckdb"

    def write_project(self) -> None:
        project = {
            "name": "export_test",
            "version": "1.0",
            "config-version": 2,
            "profile": "export_test",
            **self.project_config,
        }
        (self.root / "dbt_project.yml").write_text(yaml.safe_dump(project))

    def write_profile(self) -> None:
        # A run may be pointed elsewhere (a fault proxy, a database of its own) by env vars.
        endpoint = "{{ env_var('TEST_S3_ENDPOINT', '" + self.endpoint + "') }}"
        config = {"endpoint_url": endpoint, "region": "us-east-1", **self.plugin_config}
        profile = {
            "export_test": {
                "target": "dev",
                "outputs": {
                    "dev": {
                        "type": "duckdb",
                        "path": "{{ env_var('TEST_DUCKDB_PATH', '" + str(self.database) + "') }}",
                        "threads": self.threads,
                        "plugins": [{"module": "dbt_s3_export", "config": config}],
                    }
                },
            }
        }
        (self.root / "profiles.yml").write_text(yaml.safe_dump(profile))

    def model(self, name: str, sql: str, *, folder: str = "models") -> None:
        path = self.root / folder / f"{name}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(sql).strip() + "\n")

    def file(self, relpath: str, text: str) -> None:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())

    def remove(self, relpath: str) -> None:
        path = self.root / relpath
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    def _command(
        self, args: tuple[str, ...], env: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        full_env = {
            **os.environ,
            **DUMMY_CREDENTIALS,
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DO_NOT_TRACK": "1",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            **self.env,
            **env,
        }
        dbt = str(Path(sys.executable).parent / "dbt")
        command = [dbt, *args, "--project-dir", str(self.root), "--profiles-dir", str(self.root)]
        return command, full_env

    def dbt(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 300,
        env: Mapping[str, str] | None = None,
    ) -> DbtResult:
        command, full_env = self._command(args, env or {})
        proc = subprocess.run(
            command, cwd=self.root, env=full_env, capture_output=True, text=True, timeout=timeout
        )
        result = DbtResult(proc.returncode, proc.stdout + proc.stderr)
        if check and not result.ok:
            raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.output}")
        return result

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> BackgroundDbt:
        """Start a dbt command without waiting for it (to overlap runs, or to kill one)."""
        command, full_env = self._command(args, env or {})
        log = tempfile.NamedTemporaryFile(prefix="dbt-", suffix=".log", delete=False)  # noqa: SIM115
        proc = subprocess.Popen(
            command, cwd=self.root, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
        return BackgroundDbt(proc, Path(log.name), args)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import duckdb

        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql).fetchall()

    def arrow(self, sql: str) -> Any:
        import duckdb

        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.sql(sql).to_arrow_table()


HOOK = "post_hook='{{ dbt_s3_export.export_to_s3() }}'"


def exported_model(meta: str, sql: str, materialized: str = "table", hook: str = HOOK) -> str:
    """A model whose config sets meta.s3_export to the Jinja literal ``meta``."""
    config = f"materialized='{materialized}', meta={{'s3_export': {meta}}}, {hook}"
    return "{{ config(" + config + ") }}\n" + sql


def export_meta(bucket: str, key: str, fmt: str, extra: str = "") -> str:
    return f"{{'bucket': '{bucket}', 'key': '{key}', 'file_format': '{fmt}'{extra}}}"


def s3_client(endpoint: str) -> Any:
    """A plain boto3 client for checking what landed on the test server."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )


def list_keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(keys)


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
