"""The fixed cost of an export: work done once per process, requests sent together, none twice."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from dbt_s3_export import ArrowSource, ExportConfig, OwnershipConflict, RunContext, run_export
from dbt_s3_export.commit.ownership import nearest_claim
from dbt_s3_export.encoding import text
from dbt_s3_export.errors import TransferError
from dbt_s3_export.options import where
from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings
from dbt_s3_export.s3.expect import CONTINUE_FROM_BYTES
from dbt_s3_export.s3.objects import together
from dbt_s3_export.source import batches
from dbt_s3_export.source.batches import DuckDBSource

from .engine import engine_client, export, table
from .faultproxy import FaultProxy
from .support import S3Server, list_keys, read_object


def test_together_runs_calls_at_once_and_gives_outcomes_in_order() -> None:
    # Three calls that each wait for the other two: they finish only if they run at once.
    barrier = threading.Barrier(3, timeout=10)

    def meet(value: int) -> int:
        barrier.wait()
        return value

    assert together(lambda: meet(1), lambda: meet(2), lambda: meet(3)) == [1, 2, 3]
    failure = TransferError("lost", code="500")

    def fail() -> None:
        raise failure

    assert together(lambda: "a", fail, lambda: None) == ["a", failure, None]
    assert together() == []


def test_the_nearest_claim_wins_and_an_error_before_it_is_raised() -> None:
    folders = ["a/b/", "a/", ""]
    assert nearest_claim(folders, [None, "export 'x'", "export 'y'"]) == ("a/", "export 'x'")
    assert nearest_claim(folders, [None, None, None]) is None
    failure = TransferError("lost", code="500")
    with pytest.raises(TransferError):
        nearest_claim(folders, [None, failure, "export 'y'"])
    # An owner found nearer than the error is what the checks in turn would have found.
    assert nearest_claim(folders, ["export 'x'", failure, None]) == ("a/b/", "export 'x'")


def test_renderer_connections_are_kept_for_the_next_writer(monkeypatch: Any) -> None:
    opened = []
    connect = duckdb.connect

    def counted(*args: Any, **kwargs: Any) -> Any:
        con = connect(*args, **kwargs)
        opened.append(con)
        return con

    monkeypatch.setattr(text.duckdb, "connect", counted)
    monkeypatch.setattr(text.Renderer, "_idle", [])
    batch = pa.record_batch({"x": pa.array([1, 2])})
    for _ in range(5):
        renderer = text.Renderer("CAST(x AS VARCHAR) AS t")
        assert renderer(batch).column("t").to_pylist() == ["1", "2"]
    assert len(opened) == 1
    # A projection that fails leaves its connection out of the idle ones.
    with pytest.raises(duckdb.Error):
        text.Renderer("no_such_column")(batch)
    assert text.Renderer._idle == []
    assert text.Renderer("x + 1 AS y")(batch).column("y").to_pylist() == [2, 3]
    assert len(opened) == 2


def test_an_export_sends_no_request_twice(bucket: str, s3_server: S3Server) -> None:
    """The manifest is read once and the probe is sent once per process and bucket."""
    client = engine_client(s3_server.endpoint)
    sent: list[tuple[str, str]] = []
    client.meta.events.register(
        "before-parameter-build.s3",
        lambda model, params, **_: sent.append((model.name, params.get("Key", ""))),
    )
    export(client, bucket, "small/", table(40, tag="a", partitions=4), partition_cols=["p"])
    first = Counter(sent)
    sent.clear()
    export(client, bucket, "small/", table(40, tag="b", partitions=4), partition_cols=["p"])
    again = Counter(sent)
    for counts in (first, again):
        assert counts[("GetObject", "small/_manifest.json")] == 1, counts
        assert counts[("GetObject", "small/_lease.json")] == 1, counts
        assert counts[("PutObject", "small/_manifest.json")] == 1, counts
    # The conditional-write probe: at most once in the process for this server and bucket.
    assert not any(key.rsplit("/", 1)[-1].startswith("_probe-") for _, key in again), again
    # Lease, claims (two listings per folder around, one inside), manifest, four files,
    # commit, one batched delete of the first run's files, release.
    assert sum(again.values()) == 2 + 3 + 1 + 4 + 1 + 1 + 1, again


def _threads_started(monkeypatch: Any) -> list[str]:
    """The names of the threads started from now on (in this process)."""
    started: list[str] = []
    start = threading.Thread.start

    def counted(self: threading.Thread) -> None:
        started.append(self.name)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", counted)
    return started


@pytest.mark.parametrize("file_format", ["parquet", "jsonl"])
def test_an_export_starts_no_thread_the_last_one_started(
    bucket: str, s3_server: S3Server, monkeypatch: Any, file_format: str
) -> None:
    """Pools and helper threads are the process's: a later export makes none of them again."""
    client = engine_client(s3_server.endpoint)
    options = {"partition_cols": ["p"], "file_format": file_format}
    export(client, bucket, f"threads-{file_format}/", table(60, tag="a", partitions=6), **options)
    started = _threads_started(monkeypatch)
    pools: list[str] = []
    make_pool = ThreadPoolExecutor.__init__

    def counted_pool(self: ThreadPoolExecutor, *args: Any, **kwargs: Any) -> None:
        pools.append(str(kwargs.get("thread_name_prefix", "")))
        make_pool(self, *args, **kwargs)

    monkeypatch.setattr(ThreadPoolExecutor, "__init__", counted_pool)
    export(client, bucket, f"threads-{file_format}/", table(60, tag="b", partitions=6), **options)
    assert pools == []
    # A kept pool may add a thread when all of its own are busy ("<name>_<n>"); any other
    # thread is the export's. Only the lease's renewal, which lives as long as the lease.
    own = [name for name in started if not re.search(r"_\d+$", name)]
    assert own == ["s3-export-lease"], started


class _Recording:
    """A DuckDB connection that notes every ``execute``'s parameters, else passes through."""

    def __init__(self, con: duckdb.DuckDBPyConnection, params: list[Any]) -> None:
        self._con = con
        self._params = params

    def execute(self, sql: str, parameters: Any = None) -> Any:
        self._params.append(parameters)
        return self._con.execute(sql) if parameters is None else self._con.execute(sql, parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def __enter__(self) -> _Recording:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._con.close()


def test_the_where_check_binds_no_parameter_and_keeps_its_connection(monkeypatch: Any) -> None:
    """Binding a parameter made DuckDB's client (1.x) import pandas: a second per process."""
    opened: list[Any] = []
    params: list[Any] = []
    connect = duckdb.connect

    def recording(*args: Any, **kwargs: Any) -> _Recording:
        opened.append(args)
        return _Recording(connect(*args, **kwargs), params)

    monkeypatch.setattr(where.duckdb, "connect", recording)
    monkeypatch.setattr(where, "_parser", None)
    assert where.filter_sql("amount > 0") == "(\namount > 0\n)"
    assert where.filter_sql("name = 'it''s' -- a comment") == "(\nname = 'it''s' -- a comment\n)"
    for bad in ("1) OR (1", "x IN (SELECT y FROM z)", "x = ?", "a > 0\x00) OR (true"):
        with pytest.raises(where.FilterError):
            where.filter_sql(bad)
    assert len(opened) == 1
    assert params and all(p is None for p in params), params


def test_the_batch_lookup_binds_no_parameter() -> None:
    con = duckdb.connect()
    con.execute('CREATE TEMP TABLE "it\'s__dbt_tmp20261206" AS SELECT 1 AS x')
    con.execute('CREATE TEMP TABLE "its__dbt_tmp20261207" AS SELECT 1 AS x')
    params: list[Any] = []
    source = DuckDBSource(_Recording(con, params), "main.t")  # type: ignore[arg-type]
    assert source.batch_relation("it's") == 'temp.main."it\'s__dbt_tmp20261206"'
    assert source.batch_relation("it_s") is None  # "_" is not a wildcard
    assert params == [None, None]


def test_an_encoder_runs_at_most_its_share_at_once(monkeypatch: Any) -> None:
    """The encoders' pool is the process's; one encoder still has ENCODE_THREADS running."""
    monkeypatch.setattr(text, "ENCODE_THREADS", 1)
    running = []
    peak = []
    lock = threading.Lock()

    def encode(batch: pa.RecordBatch) -> list[pa.Buffer]:
        with lock:
            running.append(1)
            peak.append(len(running))
        threading.Event().wait(0.01)
        with lock:
            running.pop()
        return [pa.py_buffer(str(batch.num_rows).encode())]

    out: list[bytes] = []
    encoder = text.OrderedEncoder(encode, lambda pieces: out.extend(p.to_pybytes() for p in pieces))
    for n in range(1, 9):
        encoder.submit(pa.record_batch({"x": pa.array(range(n))}))
    encoder.finish()
    assert out == [str(n).encode() for n in range(1, 9)]
    assert max(peak) == 1


class _ReadToTheEnd(ArrowSource):
    """An Arrow source that says when its rows have all been read."""

    def __init__(self, data: pa.Table) -> None:
        super().__init__(data)
        self.read = threading.Event()

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        reader = super().open(order_by, batch_size)

        def batches() -> Iterator[pa.RecordBatch]:
            yield from reader
            self.read.set()

        return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _hold_lease_read_until(client: Any, event: threading.Event) -> tuple[list[bool], list[str]]:
    """Hold the lease's read until ``event`` (at most 10 s); note every key PUT or listed."""
    waited: list[bool] = []
    sent: list[str] = []

    def before(model: Any, params: dict[str, Any], **_: Any) -> None:
        key = str(params.get("Key") or params.get("Prefix") or "")
        if model.name == "GetObject" and key.endswith("_lease.json"):
            waited.append(event.wait(10))
        sent.append(f"{model.name} {key}")

    client.meta.events.register("before-parameter-build.s3", before)
    return waited, sent


def test_a_folder_is_read_and_encoded_while_its_commit_begins(
    bucket: str, s3_server: S3Server
) -> None:
    """The lease's round trips need no rows: the rows are read meanwhile. Nothing is
    sent before the lease is held."""
    client = engine_client(s3_server.endpoint)
    data = table(40, tag="a", partitions=4)
    source = _ReadToTheEnd(data)
    waited, sent = _hold_lease_read_until(client, source.read)
    cfg = ExportConfig.parse(
        {"bucket": bucket, "key": "ahead/", "file_format": "jsonl", "partition_cols": ["p"]}
    )
    result = run_export(cfg, source, client, RunContext(model="m"))
    assert waited == [True]  # every row was read before the lease was even looked at
    assert len(result.files) == 4
    lease_written = sent.index("PutObject ahead/_lease.json")
    data_puts = [i for i, s in enumerate(sent) if s.startswith("PutObject ahead/p=")]
    assert len(data_puts) == 4 and min(data_puts) > lease_written, sent


def test_a_folder_whose_commit_cannot_begin_sends_none_of_its_encoded_files(
    bucket: str, s3_server: S3Server
) -> None:
    """All the files encoded and waiting, then the claim check finds another export's
    folder: none of them is sent, and the error is the claim's, as before."""
    client = engine_client(s3_server.endpoint)
    cfg = ExportConfig.parse(
        {"bucket": bucket, "key": "owned/", "file_format": "csv", "partition_cols": ["p"]}
    )
    run_export(cfg, ArrowSource(table(8, tag="a", partitions=2)), client, RunContext(model="a"))
    before = {k: read_object(client, bucket, k) for k in list_keys(client, bucket, "owned/")}
    source = _ReadToTheEnd(table(40, tag="b", partitions=4))
    waited, sent = _hold_lease_read_until(client, source.read)
    with pytest.raises(
        OwnershipConflict, match=r"belongs to export 'adhoc.a#0'.*Nothing was written"
    ):
        run_export(cfg, source, client, RunContext(model="b"))
    assert waited == [True]
    assert not [s for s in sent if s.startswith("PutObject owned/p=")], sent
    after = {k: read_object(client, bucket, k) for k in list_keys(client, bucket, "owned/")}
    assert after == before


class _Queries:
    """A DuckDB connection that notes the SQL of every ``sql`` and ``execute`` call."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.asked: list[str] = []

    def sql(self, query: str) -> Any:
        self.asked.append(query)
        return self._con.sql(query)

    def execute(self, query: str, *args: Any) -> Any:
        self.asked.append(query)
        return self._con.execute(query, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


@pytest.mark.parametrize(("rows", "sampled"), [(1_000, False), (20_000, True)])
def test_a_table_that_fits_one_batch_at_its_widest_is_not_sampled(rows: int, sampled: bool) -> None:
    """The batch size comes from a sample of rows unless the table's statistics already
    bound the whole table under one batch."""
    con = duckdb.connect()
    # Values of about 1 kB: 20,000 rows may take 20 MB, over one batch's 16 MiB.
    con.execute(
        f"CREATE TABLE t AS SELECT range AS id, repeat('x', 1000) || range AS s FROM range({rows})"
    )
    recording = _Queries(con)
    source = DuckDBSource(recording, "t")  # type: ignore[arg-type]
    reader = source.open([], 100_000)
    got = reader.read_all()
    assert got.num_rows == rows
    samples = [q for q in recording.asked if re.search(r"LIMIT [1-9]", q)]
    assert bool(samples) == sampled, recording.asked
    if not sampled:
        assert len(got.to_batches()) == 1


def test_small_bodies_go_with_their_headers_and_big_ones_wait_for_continue(
    bucket: str, s3_server: S3Server
) -> None:
    """A small upload costs one round trip: no ``Expect: 100-continue`` below 1 MiB."""
    proxy = FaultProxy(s3_server.endpoint).start()
    try:
        client = ClientCache().get(
            ConnectionSettings(region="us-east-1", endpoint_url=proxy.endpoint)
        )
        export(client, bucket, "expect/", table(40, tag="a", partitions=4), partition_cols=["p"])
        puts = proxy.requests("PUT")
        assert len(puts) >= 6, puts  # four files, the lease twice, the manifest
        assert not [p.path for p in puts if "expect" in p.headers], puts
        big = b"x" * CONTINUE_FROM_BYTES
        client.put_object(Bucket=bucket, Key="expect/big.bin", Body=big)
        client.put_object(Bucket=bucket, Key="expect/small.bin", Body=big[:-1])
        # The server took both: the header is not part of the signature.
        assert read_object(client, bucket, "expect/big.bin") == big
        assert read_object(client, bucket, "expect/small.bin") == big[:-1]
        sent = {p.path.rsplit("/", 1)[-1]: p.headers for p in proxy.requests("PUT")}
        assert sent["big.bin"].get("expect") == "100-continue"
        assert "expect" not in sent["small.bin"]
    finally:
        proxy.stop()


@pytest.mark.parametrize("in_transaction", [True, False])
def test_a_small_table_is_read_once(in_transaction: bool) -> None:
    """Its sample holds every row: those rows are the export's, not read again; in the
    transaction that made the table (dbt's post-hooks), DuckDB's statistics are not asked."""
    con = duckdb.connect()
    if in_transaction:
        con.execute("BEGIN")
    con.execute(
        "CREATE TABLE t AS SELECT range AS id, range % 20 AS p, 'v' || range AS s FROM range(1000)"
    )
    recording = _Queries(con)
    got = DuckDBSource(recording, "t").open(["p"], 100_000).read_all()  # type: ignore[arg-type]
    reads = [q for q in recording.asked if q.startswith('SELECT "id", "p", "s" FROM t')]
    reads = [q for q in reads if "LIMIT 0" not in q]
    # Read once: as the sample in the transaction; at once where statistics bound it.
    assert reads == ['SELECT "id", "p", "s" FROM t' + (" LIMIT 1024" if in_transaction else "")]
    assert not [q for q in recording.asked if "GROUP BY" in q], recording.asked  # no count
    assert bool([q for q in recording.asked if "stats(" in q]) != in_transaction
    assert sorted(got.column("id").to_pylist()) == list(range(1000))
    ps = got.column("p").to_pylist()
    runs = [p for i, p in enumerate(ps) if i == 0 or ps[i - 1] != p]
    assert sorted(runs) == list(range(20))  # each partition's rows together
    ids = [i for i, p in zip(got.column("id").to_pylist(), ps, strict=True) if p == 7]
    assert ids == list(range(7, 1000, 20))  # in table order


def test_a_big_table_made_in_this_transaction_is_counted_for_its_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DuckDB says 0 rows until the commit: the plan counts them rather than take 0."""
    con = duckdb.connect()
    con.execute("BEGIN")
    con.execute("CREATE TABLE t AS SELECT range AS id, range % 300 AS p FROM range(30000)")
    assert con.execute("SELECT estimated_size FROM duckdb_tables()").fetchall() == [(0,)]
    monkeypatch.setattr(batches, "SORT_GROUP_BYTES", 100_000)
    monkeypatch.setattr(batches, "MEMORY_BUDGET", 0)  # as if it did not fit the grouping
    source = DuckDBSource(con, "t")
    got = source.open(["p"], 4096).read_all()
    plan = source.read_plan(["p"])
    assert plan.kind == "sorted" and plan.rows == 30000 and plan.groups > 1, plan
    assert sorted(got.column("id").to_pylist()) == list(range(30000))
