"""Readers see exactly one committed generation, during a run as after it.

A ``replace`` run is paused (faultproxy's gates) between its upload and its commit,
between the commit and its symlink manifests, and between those and its clean-up.
At each pause three readers look: ``readers.dataset`` (the manifest's files), a
reader of the symlink manifests applying Hive's rules (partition values from the
symlink folders, files from the lines; Trino and Athena are not available here),
and, to show that the pauses are real, a reader that lists the folder, which sees
the mix the other two never do.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from dbt_s3_export import ArrowSource, ExportConfig, ExportFailed, run_export
from dbt_s3_export.commit import (
    CorruptManifest,
    Manifest,
    is_data_key,
    is_symlink_key,
    symlink_key,
)
from dbt_s3_export.commit.lease import Lease
from dbt_s3_export.commit.symlinks import SYMLINK_FOLDER, symlink_bodies
from dbt_s3_export.local_s3 import duckdb_secret
from dbt_s3_export.readers import NotAnExport, dataset, files
from dbt_s3_export.s3.objects import StoredObject
from dbt_s3_export.tables.glue import SYMLINK_INPUT, table_input

from .faultproxy import DROP_ANSWER, GATE, PASS, STATUS, FaultProxy, Rule
from .support import (
    DbtProject,
    S3Server,
    list_keys,
    only_on_first_server,
    read_object,
    s3_client,
)

PREFIX = "events/"


def rows(tag: str, parts: list[int], n: int = 30) -> pa.Table:
    ids = [i for i in range(n) if i % 4 in parts]
    return pa.table({"id": ids, "p": [i % 4 for i in ids], "tag": [tag] * len(ids)})


def cfg(bucket: str, **extra: Any) -> ExportConfig:
    return ExportConfig.parse(
        {
            "bucket": bucket,
            "key": PREFIX,
            "file_format": "parquet",
            "partition_cols": ["p"],
            "symlink_manifests": True,
            **extra,
        }
    )


def arrow_fs(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        endpoint_override=endpoint,
        scheme="http",
        region="us-east-1",
    )


def through_symlinks(s3: Any, bucket: str, prefix: str) -> dict[str, set[str]]:
    """The tags each partition holds for a Hive reader of the symlink manifests."""
    out: dict[str, set[str]] = {}
    root = prefix + SYMLINK_FOLDER
    for key in list_keys(s3, bucket, root):
        partition = key[len(root) :].rsplit("/", 1)[0]
        values = dict(unquote(seg).split("=", 1) for seg in partition.split("/") if seg)
        for line in read_object(s3, bucket, key).decode().splitlines():
            data_key = line.removeprefix(f"s3://{bucket}/")
            table = pq.read_table(pa.BufferReader(read_object(s3, bucket, data_key)))
            assert "p" not in table.column_names
            out.setdefault(f"p={values['p']}/", set()).update(table.column("tag").to_pylist())
    return out


def through_manifest(endpoint: str, bucket: str) -> tuple[dict[str, set[str]], int]:
    table = dataset(f"s3://{bucket}/{PREFIX}", filesystem=arrow_fs(endpoint)).to_table()
    out: dict[str, set[str]] = {}
    for p, tag in zip(table.column("p").to_pylist(), table.column("tag").to_pylist(), strict=True):
        out.setdefault(f"p={p}/", set()).add(tag)
    return out, table.num_rows


def through_listing(endpoint: str, bucket: str) -> set[str]:
    """What a reader that lists the folder (Spark, DuckDB's glob, pyarrow) sees."""
    table = ds.dataset(
        f"{bucket}/{PREFIX}", filesystem=arrow_fs(endpoint), partitioning="hive"
    ).to_table()
    return set(table.column("tag").to_pylist())


ONE = {"p=0/": {"one"}, "p=1/": {"one"}, "p=2/": {"one"}}
TWO = {"p=1/": {"two"}, "p=2/": {"two"}, "p=3/": {"two"}}


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_server.endpoint).start()
    yield p
    p.stop()


def test_every_reader_sees_one_generation_while_a_replace_run_is_paused(
    s3_server: S3Server, s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    endpoint = s3_server.endpoint
    run_export(cfg(bucket), ArrowSource(rows("one", [0, 1, 2])), s3)
    assert through_symlinks(s3, bucket, PREFIX) == ONE
    assert through_manifest(endpoint, bucket) == (ONE, len(rows("one", [0, 1, 2])))

    pauses = {
        "upload-commit": Rule(GATE, method="PUT", path=r"_manifest\.json$"),
        # The listing that comes before the symlink manifests are written (16 at once).
        "commit-symlinks": Rule(GATE, method="GET", query="_symlink_format_manifest"),
        "symlinks-cleanup": Rule(GATE, method="POST", query="delete"),
    }
    # The first delete is p=0's symlink manifest (its partition is gone), the second the clean-up.
    proxy.add(Rule(PASS, method="POST", query="delete", times=1))
    for rule in pauses.values():
        rule.held, rule.gate = threading.Event(), threading.Event()
        proxy.add(rule)
    failure: list[BaseException] = []

    def second_run() -> None:
        try:
            run_export(cfg(bucket), ArrowSource(rows("two", [1, 2, 3])), s3_client(proxy.endpoint))
        except BaseException as e:
            failure.append(e)

    runner = threading.Thread(target=second_run)
    runner.start()
    seen = {}
    for name, rule in pauses.items():
        assert rule.held is not None and rule.gate is not None
        assert rule.held.wait(60), f"the run never reached the pause {name}: {failure}"
        seen[name] = (
            through_manifest(endpoint, bucket),
            through_symlinks(s3, bucket, PREFIX),
            through_listing(endpoint, bucket),
        )
        rule.gate.set()
    runner.join(60)
    assert not failure, failure
    n_one, n_two = len(rows("one", [0, 1, 2])), len(rows("two", [1, 2, 3]))
    # Before the commit, the previous export for both; the folder already holds a mix.
    assert seen["upload-commit"][:2] == ((ONE, n_one), ONE)
    assert seen["upload-commit"][2] == {"one", "two"}
    # Committed: the manifest's readers see the new export, the symlinks' the old one, whole.
    assert seen["commit-symlinks"][:2] == ((TWO, n_two), ONE)
    # Symlinks switched, nothing deleted yet: the new export for both, a mix for the listing.
    assert seen["symlinks-cleanup"][:2] == ((TWO, n_two), TWO)
    assert seen["symlinks-cleanup"][2] == {"one", "two"}
    # Afterwards p=0's symlink manifest is gone with its files, and nothing else is left.
    assert through_symlinks(s3, bucket, PREFIX) == TWO
    assert through_listing(endpoint, bucket) == {"two"}
    manifest = json.loads(read_object(s3, bucket, PREFIX + "_manifest.json"))
    symlinks = sorted(k for k in list_keys(s3, bucket, PREFIX) if SYMLINK_FOLDER in k)
    assert symlinks == [symlink_key(PREFIX, f"p={i}/") for i in (1, 2, 3)]
    listed = {f["key"] for f in manifest["files"]}
    control = {PREFIX + "_manifest.json", PREFIX + "_lease.json", *symlinks}
    assert set(list_keys(s3, bucket, PREFIX)) == listed | control


def test_symlink_manifests_are_written_only_where_they_change_and_removed_when_turned_off(
    s3_server: S3Server, s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    through = s3_client(proxy.endpoint)
    run_export(cfg(bucket), ArrowSource(rows("one", [0, 1, 2])), through)
    assert len(proxy.requests("PUT", "")) and _symlink_puts(proxy) == 3
    proxy.clear()
    run_export(cfg(bucket, mode="append"), ArrowSource(rows("two", [1])), through)
    assert _symlink_puts(proxy) == 1  # only p=1 changed
    assert through_symlinks(s3, bucket, PREFIX) == {**ONE, "p=1/": {"one", "two"}}

    # A failed write of a symlink manifest: committed, but nothing the old ones name goes.
    proxy.add(Rule(STATUS, method="PUT", path=SYMLINK_FOLDER, status=403, code="AccessDenied"))
    with pytest.raises(ExportFailed, match="writing its symlink manifests failed"):
        run_export(cfg(bucket), ArrowSource(rows("three", [0])), through)
    assert through_symlinks(s3, bucket, PREFIX) == {**ONE, "p=1/": {"one", "two"}}
    run_export(cfg(bucket), ArrowSource(rows("four", [0])), through)
    assert through_symlinks(s3, bucket, PREFIX) == {"p=0/": {"four"}}
    left = [k for k in list_keys(s3, bucket, PREFIX) if is_data_key(PREFIX, k)]
    manifest = json.loads(read_object(s3, bucket, PREFIX + "_manifest.json"))
    assert sorted(left) == sorted(f["key"] for f in manifest["files"])  # "three"'s went too

    run_export(cfg(bucket, symlink_manifests=False), ArrowSource(rows("five", [0])), through)
    assert not [k for k in list_keys(s3, bucket, PREFIX) if SYMLINK_FOLDER in k]


def _symlink_puts(proxy: FaultProxy) -> int:
    return sum(SYMLINK_FOLDER in s.path for s in proxy.requests("PUT"))


def test_the_manifest_readers_follow_an_unpartitioned_csv_export(
    s3_server: S3Server, s3: Any, bucket: str
) -> None:
    config = {"bucket": bucket, "key": "flat/", "file_format": "csv", "max_rows_per_file": 4}
    run_export(ExportConfig.parse(config), ArrowSource(pa.table({"v": list(range(10))})), s3)
    s3.put_object(Bucket=bucket, Key="flat/stray.csv", Body=b"v\n99\n")  # not listed
    found = files(f"s3://{bucket}/flat", filesystem=arrow_fs(s3_server.endpoint))
    assert len(found.paths) == 3 and all(u.startswith(f"s3://{bucket}/flat/") for u in found.uris)
    table = dataset(f"s3://{bucket}/flat/", filesystem=arrow_fs(s3_server.endpoint)).to_table()
    assert sorted(table.column("v").to_pylist()) == list(range(10))
    with pytest.raises(NotAnExport, match="could not be read"):
        files(f"s3://{bucket}/nothing/", filesystem=arrow_fs(s3_server.endpoint))


# -- no server -----------------------------------------------------------------------------


def test_symlink_manifests_are_control_files_never_data() -> None:
    bodies = symlink_bodies(
        "b",
        "x/",
        [
            {
                "key": "x/p=1/q=a%2Fb/part-0123456789abcdef01234567-0.parquet",
                "partition": "p=1/q=a%2Fb/",
            },
            {
                "key": "x/p=1/q=a%2Fb/part-0123456789abcdef01234567-1.parquet",
                "partition": "p=1/q=a%2Fb/",
            },
            {"key": "x/p=2/q=c/part-0123456789abcdef01234567-0.parquet"},
        ],
    )
    assert bodies == {
        "x/_symlink_format_manifest/p=1/q=a%2Fb/manifest": (
            b"s3://b/x/p=1/q=a%2Fb/part-0123456789abcdef01234567-0.parquet\n"
            b"s3://b/x/p=1/q=a%2Fb/part-0123456789abcdef01234567-1.parquet\n"
        ),
        "x/_symlink_format_manifest/p=2/q=c/manifest": (
            b"s3://b/x/p=2/q=c/part-0123456789abcdef01234567-0.parquet\n"
        ),
    }
    assert symlink_key("x/", "") == "x/_symlink_format_manifest/manifest"
    for key in [*bodies, "x/_symlink_format_manifest/manifest"]:
        assert is_symlink_key("x/", key)
        assert not is_data_key("x/", key)
    assert not is_symlink_key("x/", "x/_symlink_format_manifest/other")
    assert not is_symlink_key("x/", "x/_symlink_format_manifest/notapartition/manifest")
    # A manifest that names one as a file is refused, so nothing deletes it on its word.
    body = {
        "format_version": 2,
        "generation": "0123456789abcdef01234567",
        "file_format": "parquet",
        "files": [{"key": "x/_symlink_format_manifest/manifest"}],
    }
    now = dt.datetime.now(dt.timezone.utc)
    stored = StoredObject("x/_manifest.json", json.dumps(body).encode(), '"e"', now, now)
    with pytest.raises(CorruptManifest, match="not a data file"):
        Manifest.parse(
            stored, ExportConfig.parse({"bucket": "bbb", "key": "x/", "file_format": "parquet"})
        )


def test_glue_registers_a_symlink_table_when_asked() -> None:
    schema = pa.schema([("id", pa.int64()), ("p", pa.int64())])
    config = cfg("bbb", glue={"database": "d", "table": "t"})
    assert config.glue is not None
    table = table_input(config, config.glue, schema, "me")
    descriptor = table["StorageDescriptor"]
    assert descriptor["InputFormat"] == SYMLINK_INPUT
    assert descriptor["Location"] == "s3://bbb/events/_symlink_format_manifest/"
    assert descriptor["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    plain = table_input(
        cfg("bbb", symlink_manifests=False, glue={"database": "d", "table": "t"}),
        config.glue,
        schema,
        "me",
    )
    assert plain["StorageDescriptor"]["Location"] == "s3://bbb/events/"


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"key": "one.parquet"}, "names one object"),
        ({"file_format": "json"}, "Use file_format jsonl"),
    ],
)
def test_symlink_manifests_refused_where_hive_cannot_follow_them(
    options: dict[str, Any], problem: str
) -> None:
    base = {"bucket": "bbb", "key": "x/", "file_format": "parquet", "symlink_manifests": True}
    with pytest.raises(Exception, match=problem) as failure:
        ExportConfig.parse({**base, **options})
    assert "symlink_manifests" in str(failure.value)


def test_local_s3_prints_a_duckdb_secret_for_its_endpoint() -> None:
    sql = duckdb_secret("http://127.0.0.1:9000", "ak", "sk")
    for part in ("TYPE s3", "KEY_ID 'ak'", "SECRET 'sk'", "ENDPOINT '127.0.0.1:9000'"):
        assert part in sql
    assert "URL_STYLE 'path'" in sql and "USE_SSL false" in sql
    assert "USE_SSL true" in duckdb_secret("https://s3.example.com", "ak", "sk")


def _mirror(s3: Any, bucket: str, prefix: str, into: Path) -> None:
    """Copy what is under ``prefix`` to ``into`` (a local stand-in for DuckDB's httpfs)."""
    for key in list_keys(s3, bucket, prefix):
        path = into / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(read_object(s3, bucket, key))


@pytest.mark.dbt
def test_the_dbt_macro_reads_only_the_listed_files(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    s3_server: S3Server,
    s3: Any,
    bucket: str,
    project: DbtProject,
) -> None:
    only_on_first_server(request, s3_server, "the macro reads a local copy")
    # DuckDB here has no httpfs: the macro reads a local copy of the bucket holding the
    # files of two generations (as the bucket does during a run) and the newer manifest.
    mirror = tmp_path / "mirror"
    flat = {"bucket": bucket, "key": "flat/", "file_format": "csv", "max_rows_per_file": 3}
    for tag in ("one", "two"):
        run_export(cfg(bucket), ArrowSource(rows(tag, [0, 1, 2] if tag == "one" else [1, 3])), s3)
        data = pa.table({"v": list(range(5)), "tag": [tag] * 5})
        run_export(ExportConfig.parse(flat), ArrowSource(data), s3)
        _mirror(s3, bucket, "", mirror)
    read = "select * from {{ dbt_s3_export.read_export('" + str(mirror) + "/%s') }}"
    project.model("events_read", read % PREFIX)
    project.model("flat_read", read % "flat/")
    project.dbt("run")
    con = duckdb.connect(str(project.database), read_only=True)
    try:
        events = con.sql(
            "select p, tag, count(*) from events_read group by all order by p"
        ).fetchall()
        flat_rows = con.sql("select tag, count(*) from flat_read group by all").fetchall()
        both = con.sql(f"select distinct tag from read_csv('{mirror}/flat/*.csv')").fetchall()
    finally:
        con.close()
    expected = rows("two", [1, 3])
    assert events == [(1, "two", 8), (3, "two", 7)] and len(expected) == 15
    assert flat_rows == [("two", 5)]
    assert {t for (t,) in both} == {"one", "two"}  # a glob over the folder mixes them


TAKEOVER_TTL = {"lease_ttl_seconds": 3}


def taken_over_while_held(
    s3: Any,
    bucket: str,
    proxy: FaultProxy,
    monkeypatch: pytest.MonkeyPatch,
    *,
    held: str,
    then: list[int],
) -> ExportFailed:
    """Run A ("two", partitions 1 to 3, renewing nothing) through ``proxy`` after "one"
    (0 to 2), its symlink write of partition ``held`` held; once A's lease has expired,
    run B ("three", partitions ``then``) takes it over; then A's write goes. A's failure."""
    monkeypatch.setattr(Lease, "_renew_loop", lambda self: None)
    run_export(cfg(bucket, **TAKEOVER_TTL), ArrowSource(rows("one", [0, 1, 2])), s3)
    name = held.replace("=", "(=|%3D)")
    proxy.add(Rule(GATE, method="PUT", path=rf"_symlink_format_manifest/{name}/manifest$"))
    failure: list[BaseException] = []

    def run_a() -> None:
        try:
            client = s3_client(proxy.endpoint)
            run_export(cfg(bucket, **TAKEOVER_TTL), ArrowSource(rows("two", [1, 2, 3])), client)
        except BaseException as e:
            failure.append(e)

    runner = threading.Thread(target=run_a)
    runner.start()
    try:
        assert proxy.held.wait(60), failure
        time.sleep(TAKEOVER_TTL["lease_ttl_seconds"] + 1.5)  # A's lease expires
        run_export(cfg(bucket, **TAKEOVER_TTL), ArrowSource(rows("three", then)), s3)
    finally:
        proxy.gate.set()
        runner.join(60)
    assert failure and isinstance(failure[0], ExportFailed), failure
    return failure[0]


def test_a_run_taken_over_while_writing_symlinks_leaves_its_successors(
    s3_server: S3Server, s3: Any, bucket: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A commits, and one of its symlink manifests is held on the way; A stops
    renewing, B takes the lease over, commits and writes its own, and deletes A's files.
    When A's write arrives it must not put back a list of files that are gone."""
    failure = taken_over_while_held(s3, bucket, proxy, monkeypatch, held="p=1", then=[1, 2])
    text = str(failure)
    assert "lease was taken over while it wrote its symlink manifests" in text, text
    assert "(another run wrote s3://" in text and "nothing to do" in text, text
    assert "p%3D1" not in text and "p=1/manifest after this run listed it" in text, text
    # B's export, whole, for every reader; A's files are gone and nothing names them.
    assert through_symlinks(s3, bucket, PREFIX) == {"p=1/": {"three"}, "p=2/": {"three"}}
    assert through_listing(s3_server.endpoint, bucket) == {"three"}


def test_a_symlink_manifest_whose_answer_is_lost_is_found_to_be_the_runs_own(
    s3: Any, bucket: str, proxy: FaultProxy
) -> None:
    """The write landed but its answer was lost: the retry's condition fails on the run's
    own write, which the run reads back and accepts."""
    run_export(cfg(bucket), ArrowSource(rows("one", [0, 1, 2])), s3)
    for existed in (r"p(=|%3D)1", r"p(=|%3D)3"):  # one written over, one new
        proxy.add(Rule(DROP_ANSWER, method="PUT", path=existed + r"/manifest$", times=1))
    run_export(cfg(bucket), ArrowSource(rows("two", [1, 2, 3])), s3_client(proxy.endpoint))
    dropped = [s for s in proxy.seen if s.action == DROP_ANSWER]
    assert len(dropped) == 2, proxy.seen
    assert through_symlinks(s3, bucket, PREFIX) == TWO


def test_a_run_taken_over_before_deleting_stale_symlinks_deletes_none(
    s3_server: S3Server, s3: Any, bucket: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A's last symlink write (a partition new to it) is held while B takes over and
    writes p=0's again; A must not then delete p=0's as stale, as it was before B."""
    failure = taken_over_while_held(s3, bucket, proxy, monkeypatch, held="p=3", then=[0, 1])
    assert "it was gone before the stale ones were deleted" in str(failure), failure
    # B's p=0 and p=1 stand. (A's p=3, created after B looked, names files B deleted:
    # the next run removes it, see docs/concurrency.md.)
    symlinks = {k for k in list_keys(s3, bucket, PREFIX) if SYMLINK_FOLDER in k}
    assert {symlink_key(PREFIX, "p=0/"), symlink_key(PREFIX, "p=1/")} <= symlinks
    manifest = json.loads(read_object(s3, bucket, PREFIX + "_manifest.json"))
    for partition in ("p=0/", "p=1/"):
        lines = read_object(s3, bucket, symlink_key(PREFIX, partition)).decode().splitlines()
        listed = {f"s3://{bucket}/{f['key']}" for f in manifest["files"]}
        assert lines and set(lines) <= listed, (partition, lines)
    run_export(cfg(bucket, **TAKEOVER_TTL), ArrowSource(rows("four", [0, 1])), s3)
    assert through_symlinks(s3, bucket, PREFIX) == {"p=0/": {"four"}, "p=1/": {"four"}}
