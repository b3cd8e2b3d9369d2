"""Every answer lost, one at a time: the sweep behind tests/test_lost_answers.py.

A run's requests go through a ``FaultProxy``. Request *i* reaches the server and
takes effect there, then its answer is dropped (the connection is reset), so
botocore sends it again, as it does when a network loses an answer. For each *i*
of a run's request sequence, on a bucket set up afresh, the sweep checks what a
run must never do, whatever answer it lost:

- change, delete or add an object that is not the export's own (its data files,
  its manifest and lease, or its single object);
- leave a manifest that lists a missing object, or rows other than the old or
  the new ones;
- wait on its own lease, or fail with anything but one clear line;
- leave the destination so that the next run, with no fault, cannot finish.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute
import pytest

from dbt_s3_export import ArrowSource, ExportConfig, RunContext, S3ExportError, run_export
from dbt_s3_export.commit import is_data_key, is_symlink_key

from .concurrency import check_invariant, check_settled
from .engine import engine_client, expected_rows, read_rows, table
from .faultproxy import DROP_ANSWER, PASS, FaultProxy, Rule
from .support import MotoServer, S3Server, list_keys

# A run that waits on a lease gives up after this long: a run that waited on its own
# lease fails, and every run of the sweep must end well within it.
LEASE_WAIT = 8


def snapshot(s3: Any, bucket: str) -> dict[str, str]:
    """Every object of the bucket and its ETag."""
    out: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = obj["ETag"]
    return out


@dataclass
class Scenario:
    """One kind of run: what is in the bucket before it, and what it exports."""

    name: str
    key: str
    options: dict[str, Any]
    # The model the run exports, and (for a second export in the way) who it is.
    data: pa.Table
    model: str = "m"
    # Run before the swept run, without faults: (key, options, model, data).
    before: list[tuple[str, dict[str, Any], str, pa.Table]] = field(default_factory=list)
    # Objects that belong to nobody's export, written before the run.
    others: dict[str, bytes] = field(default_factory=dict)
    # The run must fail with this text (an ownership conflict), every time.
    refused: str | None = None
    # What the export holds after a run (by default, the run's rows).
    result: pa.Table | None = None

    @property
    def expected(self) -> pa.Table | None:
        if self.refused is not None:
            return None
        return self.result if self.result is not None else self.data

    @property
    def table(self) -> str | None:
        """The table format, for an Iceberg or Delta export."""
        fmt = self.options.get("file_format")
        return fmt if fmt in TABLE_FORMATS else None

    @property
    def prefix(self) -> str | None:
        cfg = _config("any-bucket", self.key, self.options)
        return cfg.prefix if cfg.is_prefix and self.table is None else None

    def run(self, client: Any, bucket: str) -> Any:
        """The swept run itself."""
        return _export(client, bucket, self.key, self.options, self.model, self.data)

    def own(self, key: str) -> bool:
        """Whether ``key`` is the swept export's own object."""
        if self.table is not None:
            return key.startswith(self.key.rstrip("/") + "/")
        prefix = self.prefix
        if prefix is None:
            return key in (self.key, self.key + ".manifest.json")
        control = (prefix + "_manifest.json", prefix + "_lease.json")
        return key in control or is_data_key(prefix, key) or is_symlink_key(prefix, key)


TABLE_FORMATS = ("iceberg", "delta")
# Iceberg tables of the sweep keep their catalog here, one SQLite file per bucket.
CATALOGS = Path(tempfile.mkdtemp(prefix="lost-answers-catalogs-"))


def _catalog(bucket: str) -> dict[str, str]:
    return {"type": "sql", "name": "sweep", "uri": f"sqlite:///{CATALOGS / bucket}.db"}


def _config(
    bucket: str, key: str, options: dict[str, Any], endpoint: str | None = None
) -> ExportConfig:
    base: dict[str, Any] = {"file_format": "parquet", "lease_wait_seconds": LEASE_WAIT}
    if options.get("file_format") in TABLE_FORMATS:
        # The table libraries reach S3 by the endpoint, so the faults reach them too.
        base.update(endpoint_url=endpoint or "http://127.0.0.1:9")
        if options["file_format"] == "iceberg":
            base.update(catalog=_catalog(bucket), namespace="sweep")
    return ExportConfig.parse({"bucket": bucket, "key": key, **base, **options})


def _export(
    client: Any, bucket: str, key: str, options: dict[str, Any], model: str, data: pa.Table
) -> Any:
    ctx = RunContext(model=model, unique_id=f"model.p.{model}")
    endpoint = str(client.meta.endpoint_url)
    if "glue" in options:  # Glue's requests go the way of the run's S3 requests
        glue = {**options["glue"], "endpoint_url": endpoint, "region": "us-east-1"}
        options = {**options, "glue": glue}
    cfg = _config(bucket, key, options, endpoint)
    return run_export(cfg, ArrowSource(data), client, ctx)


def glue_partitions(endpoint: str, scenario: Scenario) -> set[str] | None:
    """The partition folders the Glue table of the scenario lists (None: no table)."""
    import boto3

    glue = boto3.client("glue", endpoint_url=endpoint, region_name="us-east-1")
    database, name = scenario.options["glue"]["database"], scenario.options["glue"]["table"]
    try:
        table = glue.get_table(DatabaseName=database, Name=name)["Table"]
    except glue.exceptions.EntityNotFoundException:
        return None
    location = table["StorageDescriptor"]["Location"]
    found = set()
    for page in glue.get_paginator("get_partitions").paginate(
        DatabaseName=database, TableName=name
    ):
        for part in page["Partitions"]:
            found.add(part["StorageDescriptor"]["Location"][len(location) :])
    return found


def table_rows(scenario: Scenario, endpoint: str, bucket: str) -> list[Any] | None:
    """The rows of the swept table, read with its own library (None: no table)."""
    storage = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
    if scenario.table == "delta":
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            data = DeltaTable(f"s3://{bucket}/{scenario.key}", storage_options=storage)
        except TableNotFoundError:
            return None
        return expected_rows(data.to_pyarrow_table())
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.exceptions import NoSuchTableError

    catalog = SqlCatalog(
        "sweep", uri=_catalog(bucket)["uri"], **{"s3.endpoint": endpoint, "s3.region": "us-east-1"}
    )
    try:
        table = catalog.load_table(("sweep", str(scenario.options["table"])))
    except NoSuchTableError:
        return None
    return expected_rows(table.scan().to_arrow())


@dataclass
class Outcome:
    scenario: str
    server: str
    index: int
    request: str
    result: str
    seconds: float

    def line(self) -> str:
        return json.dumps(self.__dict__)


def prepare(scenario: Scenario, s3: Any, endpoint: str, bucket: str) -> None:
    """Set the bucket up for the run: earlier exports and objects of nobody's."""
    s3.create_bucket(Bucket=bucket)
    client = engine_client(endpoint)
    for key, options, model, data in scenario.before:
        _export(client, bucket, key, options, model, data)
    for key, body in scenario.others.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def count_requests(scenario: Scenario, s3: Any, endpoint: str, bucket: str) -> int:
    """How many requests the run sends when nothing goes wrong."""
    prepare(scenario, s3, endpoint, bucket)
    proxy = FaultProxy(endpoint).start()
    try:
        try:
            scenario.run(engine_client(proxy.endpoint), bucket)
        except S3ExportError:
            if scenario.refused is None:
                raise
        return len(proxy.seen)
    finally:
        proxy.stop()


def sweep_one(
    scenario: Scenario, s3: Any, endpoint: str, bucket: str, index: int, server: str
) -> Outcome:
    """Drop the answer to request ``index`` (0-based) of one run, and check the aftermath."""
    prepare(scenario, s3, endpoint, bucket)
    before = snapshot(s3, bucket)
    proxy = FaultProxy(endpoint).start()
    proxy.add(Rule(PASS, times=index))
    dropped = proxy.add(Rule(DROP_ANSWER, times=1))
    started = time.monotonic()
    error: S3ExportError | None = None
    try:
        scenario.run(engine_client(proxy.endpoint), bucket)
    except S3ExportError as e:
        error = e
    finally:
        seconds = time.monotonic() - started
        seen = proxy.seen[index] if index < len(proxy.seen) else None
        proxy.stop()
    request = f"{seen.method} {seen.path}?{seen.query}".rstrip("?") if seen else "(none)"
    where = f"{scenario.name}, answer to request {index} ({request}) lost"
    assert dropped.fired == 1 or seen is None, where
    assert seconds < LEASE_WAIT, f"{where}: the run took {seconds:.1f} s (waited on a lease?)"
    if error is not None:
        text = str(error)
        assert "\n" not in text and "Traceback" not in text, f"{where}: {text}"
    if scenario.refused is not None:
        assert error is not None and scenario.refused in str(error), f"{where}: {error}"
    else:
        assert error is None, f"{where}: the run failed: {error}"
    after = snapshot(s3, bucket)
    _check_others(scenario, before, after, where)
    _check_rows(scenario, s3, endpoint, bucket, scenario.expected, where)
    if scenario.refused is None:
        # The destination is left so that the next run, with no fault, finishes cleanly.
        scenario.run(engine_client(endpoint), bucket)
        _check_rows(scenario, s3, endpoint, bucket, scenario.expected, where + ", then a clean run")
        if scenario.prefix is not None:
            near = frozenset(k for k in scenario.others if k.startswith(scenario.prefix))
            check_settled(s3, bucket, scenario.prefix, others=near)
    result = "refused" if scenario.refused is not None else "exported"
    return Outcome(scenario.name, server, index, request, result, round(seconds, 3))


def _check_others(
    scenario: Scenario, before: dict[str, str], after: dict[str, str], where: str
) -> None:
    for key, etag in before.items():
        if not scenario.own(key) or scenario.refused is not None:
            assert after.get(key) == etag, f"{where}: {key} was changed or deleted"
    for key in after.keys() - before.keys():
        mine = scenario.own(key) and scenario.refused is None
        assert mine, f"{where}: {key} was written, and it is not the export's own"


def _check_rows(
    scenario: Scenario,
    s3: Any,
    endpoint: str,
    bucket: str,
    expected: pa.Table | None,
    where: str,
) -> None:
    """The export holds exactly ``expected`` (None: there is no export)."""
    if scenario.table is not None:
        rows = table_rows(scenario, endpoint, bucket)
        want = None if expected is None else expected_rows(expected)
        assert rows == want, f"{where}: the table holds other rows: {rows} != {want}"
        return
    prefix = scenario.prefix
    manifest = None
    if prefix is None:
        keys = [k for k in list_keys(s3, bucket, scenario.key) if k == scenario.key]
    else:
        manifest = check_invariant(s3, bucket, prefix)
        keys = [f["key"] for f in manifest["files"]] if manifest else []
    if expected is None:
        assert not keys, f"{where}: an export appeared: {keys[:3]}"
        return
    assert read_rows(s3, bucket, keys) == expected_rows(expected), f"{where}: other rows"
    if "glue" in scenario.options and manifest is not None:
        # Registered after the commit: the table lists exactly the committed partitions.
        folders = {f["partition"] for f in manifest["files"]}
        got = glue_partitions(endpoint, scenario)
        assert got == folders, f"{where}: Glue lists {got}, the manifest {folders}"


def scenarios() -> list[Scenario]:
    """The runs the sweep covers: each kind of destination and its commit."""
    old = table(12, tag="old", partitions=3)
    new = table(12, tag="new", partitions=3)
    partitioned = {"partition_cols": ["p"], "include_partition_cols": True}
    # With Hive's symlink manifests, written after the commit and trimmed before clean-up.
    linked = {**partitioned, "mode": "overwrite_partitions", "symlink_manifests": True}
    neighbours = {
        "exp-sibling.txt": b"not an export",
        "other/data.csv": b"a,b\n1,2\n",
        # Files that look like an export's but are nobody's.
        f"exp/stray/part-{'0' * 24}-00001.parquet": b"stray",
    }
    return [
        Scenario(
            "folder replace",
            "exp/",
            {},
            new,
            before=[("exp/", {}, "m", old), ("exp2/", {}, "n", old)],
            others={k: v for k, v in neighbours.items() if not k.startswith("exp/")},
        ),
        Scenario(
            "folder overwrite_partitions",
            "exp/",
            linked,
            table(8, tag="new", partitions=2),
            before=[("exp/", linked, "m", old)],
            # Partition 2 is not in the run's rows: its files stay.
            result=pa.concat_tables(
                [table(8, tag="new", partitions=2), old.filter(pa.compute.equal(old["p"], 2))]
            ),
            others={k: v for k, v in neighbours.items() if not k.startswith("exp/")},
        ),
        Scenario("first export to a folder", "exp/", partitioned, new, others=neighbours),
        Scenario(
            "single object, first write",
            "files/one.parquet",
            {},
            new,
            others={"files/other.parquet": b"someone else's"},
        ),
        Scenario(
            "single object, replaced",
            "files/one.parquet",
            {},
            new,
            before=[("files/one.parquet", {}, "m", old)],
        ),
        Scenario(
            "Delta overwrite_partitions",
            "lake/events/",
            {"file_format": "delta", "partition_cols": ["p"], "mode": "overwrite_partitions"},
            table(8, tag="new", partitions=2),
            before=[
                (
                    "lake/events/",
                    {"file_format": "delta", "partition_cols": ["p"]},
                    "m",
                    old,
                )
            ],
            others={k: v for k, v in neighbours.items() if not k.startswith("exp/")},
            result=pa.concat_tables(
                [table(8, tag="new", partitions=2), old.filter(pa.compute.equal(old["p"], 2))]
            ),
        ),
        Scenario("Delta table created", "lake/events/", {"file_format": "delta"}, new),
        Scenario(
            "Iceberg replace",
            "lake/events/",
            {"file_format": "iceberg", "table": "events"},
            new,
            before=[("lake/events/", {"file_format": "iceberg", "table": "events"}, "m", old)],
            others={k: v for k, v in neighbours.items() if not k.startswith("exp/")},
        ),
        Scenario(
            "folder registered in Glue",
            "exp/",
            {"partition_cols": ["p"], "glue": {"database": "sweep", "table": "events"}},
            new,
            before=[
                (
                    "exp/",
                    {"partition_cols": ["p"], "glue": {"database": "sweep", "table": "events"}},
                    "m",
                    old,
                )
            ],
            others={k: v for k, v in neighbours.items() if not k.startswith("exp/")},
        ),
        Scenario(
            "folder nested in another export's",
            "nest/inner/",
            {},
            new,
            model="ny",
            before=[("nest/", {}, "nx", old)],
            refused="belongs to export 'model.p.nx#0'",
        ),
        Scenario(
            "folder around another export's",
            "nest/",
            {},
            new,
            model="nx",
            before=[("nest/inner/", {}, "ny", old)],
            refused="belongs to export 'model.p.ny#0'",
        ),
    ]


def chosen(index: int, count: int, name: str) -> bool:
    """Which requests a sampled sweep drops: every fifth, at an offset per scenario.

    ``DBT_S3_EXPORT_SWEEP=full`` sweeps every request.
    """
    if os.environ.get("DBT_S3_EXPORT_SWEEP") == "full":
        return True
    return index % 5 == sum(map(ord, name)) % 5 or index == count - 1


_buckets = itertools.count()


def sweep(scenario: Scenario, s3: Any, server: S3Server) -> None:
    """Drop each chosen answer of the scenario's run in turn, on a fresh bucket each time.

    ``DBT_S3_EXPORT_SWEEP_OUT`` names a file that gets one JSON line per run swept.
    """
    if "glue" in scenario.options and not isinstance(server, MotoServer):
        pytest.skip("Glue is moto's: SeaweedFS has no Glue")

    def bucket() -> str:
        return f"lost-{os.getpid()}-{next(_buckets)}"

    count = count_requests(scenario, s3, server.endpoint, bucket())
    assert count > 3, count
    out = os.environ.get("DBT_S3_EXPORT_SWEEP_OUT")
    swept = 0
    for index in range(count):
        if not chosen(index, count, scenario.name):
            continue
        outcome = sweep_one(scenario, s3, server.endpoint, bucket(), index, type(server).__name__)
        swept += 1
        if out:
            with open(out, "a") as f:
                f.write(outcome.line() + "\n")
    assert swept >= count // 5
