from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import DUMMY_CREDENTIALS, SERVERS, DbtProject, S3Server, chosen_servers, s3_client

_bucket_numbers = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--s3-servers",
        default=",".join(SERVERS),
        help="comma-separated S3 servers the end-to-end tests run against "
        f"(default: {','.join(SERVERS)})",
    )
    parser.addoption(
        "--quick",
        action="store_true",
        help="the fast lane: unit tests and one end-to-end export per format",
    )


# Tests that need none of these are unit tests: the fast lane runs them all.
SERVICE_FIXTURES = {"s3_server", "project", "spark"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--quick``: unit tests, and the tests marked ``quick`` (one export per format)."""
    if not config.getoption("--quick"):
        return
    kept, dropped = [], []
    for item in items:
        needs = SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        slow = item.get_closest_marker("slow") is not None
        quick = item.get_closest_marker("quick") is not None
        (kept if quick or not (needs or slow) else dropped).append(item)
    items[:] = kept
    config.hook.pytest_deselected(items=dropped)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses an S3 server runs once per server chosen with --s3-servers."""
    if "s3_server" in metafunc.fixturenames:
        names = chosen_servers(metafunc.config)
        unknown = set(names) - set(SERVERS)
        if unknown:
            known = ", ".join(SERVERS)
            raise pytest.UsageError(f"--s3-servers: unknown {sorted(unknown)}; known: {known}")
        metafunc.parametrize("s3_server", names, indirect=True, scope="session")


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest) -> Iterator[S3Server]:
    server = SERVERS[request.param]().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3(s3_server: S3Server) -> Any:
    return s3_client(s3_server.endpoint)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"test-bucket-{next(_bucket_numbers)}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def project(tmp_path: Path, s3_server: S3Server) -> DbtProject:
    return DbtProject(tmp_path / "project", s3_server.endpoint)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session (pyspark, Java 17) for every test that reads with Spark."""
    import os

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", "python3")
    session = (
        SparkSession.builder.master("local[1]")
        .appName("dbt-s3-export-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        # Spark's own limits with Parquet's TIME and TIMESTAMP(NANOS) (docs/types.md).
        .config("spark.sql.legacy.parquet.nanosAsLong", "true")
        .config("spark.sql.timeType.enabled", "true")
        .getOrCreate()
    )
    yield session
    session.stop()
