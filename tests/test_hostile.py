"""Hostile input and bad servers: nothing leaks, nothing injects, nothing hangs.

Each case of the product's promises is tried the way a careless (or malicious)
user would: filters that try to run a second statement, names with an embedded
quote, attributes S3 would drop or refuse, a model partitioned far too finely, a
full spill disk, and servers that never answer or answer with garbage.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import duckdb
import pyarrow as pa
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from dbt_s3_export import (
    ArrowSource,
    DuckDBSource,
    ExportConfig,
    RunContext,
    S3ExportError,
    run_export,
)
from dbt_s3_export.errors import (
    AccessDenied,
    BucketNotFound,
    ConfigError,
    InvalidCredentials,
    ObjectNotFound,
    PreconditionFailed,
    RequestTimeout,
    TooManyPartitions,
    TransferError,
)
from dbt_s3_export.options.attributes import content_type_problem, metadata_problem, tags_problem
from dbt_s3_export.options.where import FilterError, filter_sql
from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings, redact, url_secrets
from dbt_s3_export.s3.error_table import AssumeRole, S3Request
from dbt_s3_export.s3.translate import translate

from .bad_servers import EmptyAnswerServer, SilentServer
from .engine import engine_client
from .faultproxy import STATUS, FaultProxy, Rule
from .leaks import spellings
from .support import REPO, DbtProject, S3Server, exported_model, list_keys, read_object

# -- where: one condition, as DuckDB's parser sees it ------------------------------------

ACCEPTED_FILTERS = [
    "id > 1",
    "lower(name) = 'bob' and id between 1 and 5",
    "day >= DATE '2024-01-01' -- recent days only",
    "name = 'x'' OR 1=1 --'",  # all one string literal
    "coalesce(flag, false) /* nested /* comments */ are fine */",
]
REFUSED_FILTERS = {
    "true); COPY (SELECT 'owned') TO 'owned.txt'; SELECT (true": "is not one SQL expression",
    "id > 0 UNION SELECT * FROM secret_rows": "set operation",
    "id > 0; DROP TABLE orders": "more than one statement",
    "id IN (SELECT id FROM secret_rows)": "holds a subquery",
    "EXISTS (SELECT * FROM read_text('/etc/passwd'))": "holds a subquery",
    "id > 1, id < 5": "single expression",
    "id > 1 ORDER BY id": "modifier",
    "id > 1 /* unterminated": "unterminated",
    "true) OR (false": "is not one SQL expression",
    "id > 1 -- hidden\n) UNION SELECT * FROM secret_rows --": "is not one SQL expression",
    "id > $1": "holds a parameter",
}


@pytest.mark.parametrize("where", ACCEPTED_FILTERS)
def test_a_filter_that_is_one_condition_is_used_on_lines_of_its_own(where: str) -> None:
    assert filter_sql(where) == f"(\n{where}\n)"


@pytest.mark.parametrize(("where", "problem"), REFUSED_FILTERS.items(), ids=range(11))
def test_anything_but_one_condition_is_refused_before_it_runs(where: str, problem: str) -> None:
    with pytest.raises(FilterError, match=problem):
        filter_sql(where)
    with pytest.raises(ConfigError) as failure:
        ExportConfig.parse(
            {"bucket": "exports", "key": "x.csv", "file_format": "csv", "where": where}
        )
    assert "option 'where'" in str(failure.value) and "\n" not in str(failure.value)


def test_the_filter_must_be_a_condition_and_keeps_its_grouping() -> None:
    con = duckdb.connect()
    con.execute("create table orders as select i as id, i % 3 as p from range(9) t(i)")
    with pytest.raises(S3ExportError, match=r"'where' \('id'\) is a BIGINT value, not a condition"):
        DuckDBSource(con, "orders", "id").open([], 1024)
    # An OR inside the filter stays inside it when the read adds conditions of its own.
    source = DuckDBSource(con, "orders", "id = 1 OR id = 2")
    assert source._select().endswith("WHERE (\nid = 1 OR id = 2\n)")
    assert "(\nid = 1 OR id = 2\n) AND p = 0" in source._where_clause(["p = 0"])
    assert sorted(r[0] for r in con.sql(source._select()).fetchall()) == [1, 2]


# -- object attributes against S3's rules ------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"source system": "dbt"}, "key 'source system' holds ' '"),
        ({"x-amz-meta-team": "a"}, "starts with 'x-amz-meta-'"),
        ({"Team": "a", "team": "b"}, "differ only in case"),
        ({"city": "Zürich"}, "other than printable ASCII ('ü' at position 1)"),
        ({"note": "two\nlines"}, "other than printable ASCII"),
        ({"note": " padded"}, "starts or ends with whitespace"),
        ({"k": "v" * 2048}, "is 2049 bytes"),  # with the key's byte
    ],
)
def test_metadata_that_s3_would_drop_or_refuse(metadata: dict[str, str], problem: str) -> None:
    found = metadata_problem(sorted(metadata.items()))
    assert found is not None and problem in found[0], found


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ({f"t{i}": "x" for i in range(11)}, "has 11 tags"),
        ({"team": "a&b"}, "holds '&'"),
        ({"team;drop": "x"}, "holds ';'"),
        ({"k" * 129: "x"}, "is 129 characters"),
        ({"team": "v" * 257}, "is 257 characters"),
        ({"aws:team": "x"}, "reserves"),
        ({"team": "tab\there"}, "holds '\\t'"),
    ],
)
def test_tags_that_s3_would_refuse(tags: dict[str, str], problem: str) -> None:
    found = tags_problem(sorted(tags.items()))
    assert found is not None and problem in found[0], found


def test_attributes_within_the_rules_pass() -> None:
    assert metadata_problem([("source-system", "dbt"), ("run_by", "ci job #42")]) is None
    assert metadata_problem([("k", "v" * 2046)]) is None
    assert tags_problem([("team", "data eng"), ("owner", "ana@example.com")]) is None
    assert tags_problem([("city", "Zürich"), ("path", "a/b:c=d+e-f_g.h")]) is None
    for good in ("text/csv", "text/csv; charset=utf-8; header=present", 'a/b;x="q;\\"t"'):
        assert content_type_problem(good) is None, good
    for bad in ("csv", "text/csv; charset", "text /csv", "text/csv\r\nX-Evil: 1", "téxt/csv"):
        assert content_type_problem(bad) is not None, bad


# -- secrets in every spelling -----------------------------------------------------------

K8S_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY=EXAMPLEKEY\n"  # as read from a mounted file


def fragments(secret: str) -> list[str]:
    """Runs of the secret that any spelling of it keeps as they are."""
    return [run for run in secret.strip().replace("+", "/").replace("=", "/").split("/")]


@pytest.mark.parametrize("spelled", spellings(K8S_SECRET))
def test_redact_hides_every_spelling_of_a_secret(spelled: str) -> None:
    text = redact(f"before {spelled} after", [K8S_SECRET])
    assert text.startswith("before ") and text.endswith(" after")
    for run in fragments(K8S_SECRET):
        assert run not in text, (spelled, text)


@pytest.mark.parametrize(
    "url",
    ["http://exporter:hunter2%2Fsecret@minio:9000", "http://exporter:hunter2/secret@minio:9000"],
)
def test_endpoint_url_with_credentials_is_refused_without_showing_them(url: str) -> None:
    with pytest.raises(ConfigError) as failure:
        ExportConfig.parse(
            {"bucket": "b-x", "key": "x.csv", "file_format": "csv", "endpoint_url": url}
        )
    text = str(failure.value)
    assert "'http://***@minio:9000' (credentials hidden)" in text
    assert "access_key_id and secret_access_key" in text
    assert "hunter2" not in text and "exporter" not in text
    assert "hunter2" not in redact(f"a message quoting {url}", url_secrets(url))


def test_keys_read_from_files_lose_their_newline() -> None:
    cfg = ExportConfig.parse(
        {
            "bucket": "b-x",
            "key": "x.csv",
            "file_format": "csv",
            "access_key_id": "AKIAEXAMPLE000000001\n",
            "secret_access_key": K8S_SECRET,
        }
    )
    assert cfg.access_key_id == "AKIAEXAMPLE000000001"
    assert cfg.secret_access_key == K8S_SECRET.strip()


# -- deadlines against a server that never answers ---------------------------------------


def data_keys(s3: Any, bucket: str) -> list[str]:
    """The objects in ``bucket`` but the folders' leases (claims, which failed runs keep)."""
    return [k for k in list_keys(s3, bucket) if not k.endswith("_lease.json")]


def test_a_silent_server_fails_the_export_by_total_timeout_and_the_rest_fail_fast() -> None:
    data = pa.table({"id": [1, 2, 3], "p": [1, 1, 2]})
    with SilentServer() as silent:
        options = {
            "bucket": "exports",
            "file_format": "csv",
            "endpoint_url": silent.endpoint,
            "region": "us-east-1",
            "connect_timeout": 1,
            "read_timeout": 1,
            "total_timeout": 5,
        }
        cache = ClientCache()
        cfg = ExportConfig.parse({**options, "key": "out/", "partition_cols": ["p"]})
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as failure:
            run_export(
                cfg, ArrowSource(data), cache.get(ConnectionSettings.of(cfg)), RunContext(model="m")
            )
        took = time.monotonic() - started
        text = str(failure.value)
        # Two 1 s attempts fit in 5 s (a third could end after it); the clean-up that
        # follows does not wait on the silent server again.
        assert 2 <= took < 5, took
        # The first request is the probe of conditional writes under out/.
        assert "S3 did not answer in time while trying to write to out/" in text, text
        assert re.search(
            r"no answer within read_timeout \(1 s\), [12] attempts? in [1-4] s\.", text
        ), text
        # Another export through the same client fails at once, saying why.
        other = ExportConfig.parse({**options, "key": "other.csv"})
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as fast:
            run_export(
                other,
                ArrowSource(data),
                cache.get(ConnectionSettings.of(other)),
                RunContext(model="m"),
            )
        assert time.monotonic() - started < 1.5  # waiting would take two 1 s attempts
        assert "S3 request not sent while trying to write to the bucket root in s3://exports" in (
            str(fast.value)
        )
        assert "gave no answer to PutObject" in str(fast.value)


def test_a_role_whose_sts_endpoint_never_answers_fails_by_total_timeout() -> None:
    with SilentServer() as silent:
        cfg = ExportConfig.parse(
            {
                "bucket": "exports",
                "key": "x.csv",
                "file_format": "csv",
                "endpoint_url": silent.endpoint,
                "region": "us-east-1",
                "role_arn": "arn:aws:iam::123456789012:role/exporter",
                "connect_timeout": 1,
                "read_timeout": 1,
                "total_timeout": 3,
            }
        )
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as failure:
            client = ClientCache().get(ConnectionSettings.of(cfg))
            run_export(cfg, ArrowSource(pa.table({"id": [1]})), client, RunContext(model="m"))
        assert time.monotonic() - started < 3
    assert str(failure.value).startswith(
        "cannot assume role arn:aws:iam::123456789012:role/exporter: STS did not "
        "answer in time: no answer within read_timeout (1 s), 1 attempt in "
    ), failure.value


def test_slow_server_errors_are_retried_only_within_total_timeout(
    s3_server: S3Server, bucket: str
) -> None:
    proxy = FaultProxy(s3_server.endpoint).start()
    try:
        rule = proxy.add(
            Rule(STATUS, "PUT", times=None, status=500, code="InternalError", delay=0.8)
        )
        cfg = ExportConfig.parse(
            {
                "bucket": bucket,
                "key": "x.csv",
                "file_format": "csv",
                "endpoint_url": proxy.endpoint,
                "region": "us-east-1",
                "connect_timeout": 1,
                "read_timeout": 1,
                "total_timeout": 4,
                # No probe of the server first: the one PUT is the file's.
                "conditional_writes": "true",
            }
        )
        client = ClientCache().get(ConnectionSettings.of(cfg))
        started = time.monotonic()
        with pytest.raises(S3ExportError) as failure:
            run_export(cfg, ArrowSource(pa.table({"id": [1]})), client, RunContext(model="m"))
        took = time.monotonic() - started
    finally:
        proxy.stop()
    # Five attempts would take 4 s and more; after two, a third might end after 4 s.
    assert rule.fired == 2 and took < 4, (rule.fired, took)
    assert "after 2 attempts: InternalError (HTTP 500)" in str(failure.value)


def test_timeouts_are_checked_against_each_other() -> None:
    base = {"bucket": "b-x", "key": "x.csv", "file_format": "csv"}
    with pytest.raises(ConfigError, match="less than one attempt may take"):
        ExportConfig.parse({**base, "read_timeout": 60, "total_timeout": 60})
    with pytest.raises(ConfigError, match="must be a number of seconds, got str"):
        ExportConfig.parse({**base, "connect_timeout": "5s"})
    cfg = ExportConfig.parse({**base, "connect_timeout": 2.5, "read_timeout": 5})
    config = ConnectionSettings.of(cfg).botocore_config()
    assert (config.connect_timeout, config.read_timeout) == (2.5, 5)


@pytest.mark.slow
@pytest.mark.dbt
def test_silent_and_garbled_servers_fail_in_one_line_within_two_minutes(tmp_path: Path) -> None:
    """Default timeouts: the worst case, a server that takes connections and never answers."""
    with SilentServer() as silent, EmptyAnswerServer() as garbled:
        project = DbtProject(tmp_path / "p", silent.endpoint)
        for name in ("silent_a", "silent_b"):
            meta = f"{{'bucket': 'exports', 'key': '{name}/', 'file_format': 'csv'}}"
            project.model(name, exported_model(meta, "select 1 as id"))
        role = "arn:aws:iam::123456789012:role/exporter"
        meta = (
            f"{{'bucket': 'exports', 'key': 'r.csv', 'file_format': 'csv', "
            f"'endpoint_url': '{garbled.endpoint}', 'role_arn': '{role}'}}"
        )
        project.model("garbled_sts", exported_model(meta, "select 1 as id"))
        started = time.monotonic()
        result = project.dbt("run", check=False)
        took = time.monotonic() - started
    assert took < 120, took
    out = result.output
    assert "Traceback" not in out and "Compilation Error" not in out, out
    lines = {
        m: [x for x in out.splitlines() if f"s3_export failed for model '{m}'" in x]
        for m in ("silent_a", "silent_b", "garbled_sts")
    }
    assert all(len(found) == 1 for found in lines.values()), out
    silent_lines = lines["silent_a"] + lines["silent_b"]
    waited = [x for x in silent_lines if "S3 did not answer in time while trying to write" in x]
    assert len(waited) == 1, silent_lines
    assert "no answer within read_timeout (30 s), 2 attempts in 6" in waited[0], waited
    fast = [x for x in silent_lines if "S3 request not sent while trying to write" in x]
    assert len(fast) == 1 and "gave no answer to PutObject" in fast[0], silent_lines
    assert (
        f"cannot assume role {role}: the endpoint's answer is not an STS answer: it could not "
        "be parsed" in lines["garbled_sts"][0]
    )


# -- hostile options in a real dbt project -----------------------------------------------


@pytest.mark.dbt
def test_hostile_options_are_refused_and_good_attributes_land_as_given(
    tmp_path: Path, s3_server: S3Server, s3: Any, bucket: str
) -> None:
    project = DbtProject(tmp_path / "p", s3_server.endpoint)
    project.model("secret_rows", "select 'TOPSECRET-ROW' as v, 1 as id")
    orders = "select i as id, 'row-' || i as v from range(10) t(i)"

    def model(name: str, extra: str, sql: str = orders) -> None:
        meta = f"{{'bucket': '{bucket}', 'key': '{name}/', 'file_format': 'csv'{extra}}}"
        project.model(name, exported_model(meta, sql))

    model("filtered", ", 'where': 'id >= 5 -- upper half'")
    copy = "true); COPY (SELECT 42) TO 'owned.txt'; SELECT (true"
    model("copy_injection", f", 'where': {copy!r}")
    model("union_injection", ", 'where': 'id > 0 UNION SELECT id, v FROM secret_rows'")
    model("spaced_metadata", ", 'metadata': {'source system': 'dbt'}")
    model(
        "wide",
        ", 'partition_cols': ['p'], 'max_partitions': 10",
        "select i as id, i as p from range(12) t(i)",
    )
    model("url_credentials", ", 'endpoint_url': 'http://exporter:hunter2-pass@127.0.0.1:9'")
    model(
        "attributes",
        ", 'metadata': {'source-system': 'dbt', 'run_by': 'ci job #42'}"
        ", 'tags': {'team': 'data eng', 'owner': 'ana@example.com', 'city': 'Zürich'}"
        ", 'content_type': 'text/csv; charset=utf-8; header=present'",
    )
    result = project.dbt("run", check=False)
    out = result.output

    def failure(name: str) -> str:
        found = [x for x in out.splitlines() if f"s3_export failed for model '{name}'" in x]
        assert len(found) == 1, out
        return found[0]

    assert "option 'where': \"true); COPY" in failure("copy_injection")
    assert not (project.root / "owned.txt").exists()
    assert "holds a set operation" in failure("union_injection")
    assert "key 'source system' holds ' '" in failure("spaced_metadata")
    assert "the model has 12 partitions by p, more than max_partitions (10)" in failure("wide")
    assert "(credentials hidden)" in failure("url_credentials")
    assert "hunter2-pass" not in out
    log = (project.root / "logs" / "dbt.log").read_text()
    assert "hunter2-pass" not in log and '"endpoint_url": "http://***@127.0.0.1:9"' in log
    assert "Traceback" not in out

    keys = list_keys(s3, bucket)
    # Refused exports write nothing; a folder's lease (its claim) stays.
    written = [k for k in keys if not k.endswith("/_lease.json")]
    assert not any(k.startswith(("copy_injection/", "union_injection/", "wide/")) for k in written)
    assert not any("TOPSECRET" in read_object(s3, bucket, k).decode() for k in keys)
    filtered = [k for k in keys if k.startswith("filtered/part-")]
    rows = read_object(s3, bucket, filtered[0]).decode().split()[1:]
    assert sorted(int(r.split(",")[0]) for r in rows) == [5, 6, 7, 8, 9]
    data = next(k for k in keys if k.startswith("attributes/part-"))
    head = s3.head_object(Bucket=bucket, Key=data)
    assert head["Metadata"] == {"source-system": "dbt", "run_by": "ci job #42"}
    assert head["ContentType"] == "text/csv; charset=utf-8; header=present"
    tags = s3.get_object_tagging(Bucket=bucket, Key=data)["TagSet"]
    assert {t["Key"]: t["Value"] for t in tags} == {
        "team": "data eng",
        "owner": "ana@example.com",
        "city": "Zürich",
    }

    # export_relation resolves the name through the catalog, and quotes what it found.
    injected = 'main.filtered" UNION SELECT id, v FROM main.secret_rows --'
    adhoc = {"bucket": bucket, "key": "adhoc/", "file_format": "csv"}
    args = json.dumps({"relation": injected, "s3_export": adhoc})
    bad = project.dbt("run-operation", "dbt_s3_export.export_relation", "--args", args, check=False)
    assert not bad.ok and f"relation '{injected}' does not exist" in bad.output, bad.output
    assert not any(k.startswith("adhoc/") for k in list_keys(s3, bucket))


# -- partitions capped -------------------------------------------------------------------


def test_partitions_of_a_table_are_counted_before_any_row_is_read(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    con = duckdb.connect()
    con.execute("create table orders as select i as id, i % 101 as p from range(1000) t(i)")
    con.execute("create view orders_view as select * from orders")
    client = engine_client(s3_server.endpoint)
    base = {"bucket": bucket, "file_format": "csv", "partition_cols": ["p"], "max_partitions": 100}
    cfg = ExportConfig.parse({**base, "key": "table/"})
    with pytest.raises(
        TooManyPartitions, match=r"has 101 partitions by p, more than max_partitions \(100\)"
    ):
        run_export(
            cfg, DuckDBSource(con, "orders", max_partitions=100), client, RunContext(model="m")
        )
    assert data_keys(s3, bucket) == []  # refused before a file was written
    # A view is not counted ahead (that would run its query twice): the stream is.
    cfg = ExportConfig.parse({**base, "key": "view/"})
    with pytest.raises(TooManyPartitions, match="has 101 partitions by p") as failure:
        run_export(cfg, DuckDBSource(con, "orders_view"), client, RunContext(model="m"))
    assert "set max_partitions to 101 or more" in str(failure.value)
    assert data_keys(s3, bucket) == []  # the files written before the count passed are gone
    ok = ExportConfig.parse({**base, "key": "ok/", "max_partitions": 101})
    result = run_export(
        ok, DuckDBSource(con, "orders", max_partitions=101), client, RunContext(model="m")
    )
    assert len({f.partition for f in result.files}) == 101


# -- spill space -------------------------------------------------------------------------

_SPILL = """
import sys
import duckdb
import dbt_s3_export.source.grouping as grouping
from dbt_s3_export import DuckDBSource, ExportConfig, RunContext, S3ExportError, run_export
from tests.engine import engine_client

grouping.MEMORY_BUDGET = 1 << 20
con = duckdb.connect()
con.execute(
    "create table orders as select i as id, i % 4 as p, repeat('x', 100) as pad "
    "from range(200000) t(i)"
)
cfg = ExportConfig.parse(
    {"bucket": sys.argv[2], "key": "out/", "file_format": "csv", "partition_cols": ["p"]},
    context="model 'orders' s3_export",
)
try:
    client = engine_client(sys.argv[1])
    run_export(cfg, DuckDBSource(con, "orders"), client, RunContext(model="orders"))
except S3ExportError as e:
    print(type(e).__name__, e)
"""


def spill_failure(tmp: Path, endpoint: str, bucket: str) -> str:
    """The export's error with TMPDIR on a 2 MiB file system of its own (a user namespace)."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a small file system")
    tmp.mkdir(parents=True, exist_ok=True)
    mount = 'mount -t tmpfs -o size=2m tmpfs "$0" && exec "$@"'
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            "unshare",
            "-Urm",
            "sh",
            "-c",
            mount,
            str(tmp),
            sys.executable,
            "-c",
            _SPILL,
            endpoint,
            bucket,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    if "mount" in proc.stderr and proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_full_spill_disk_names_tmpdir_and_the_space_needed(
    tmp_path: Path, s3: Any, bucket: str, s3_server: S3Server
) -> None:
    text = spill_failure(tmp_path / "small", s3_server.endpoint, bucket)
    assert text.startswith("LocalSpaceError the temporary directory "), text
    assert f"{tmp_path / 'small'} (TMPDIR) ran out of space" in text
    needed = int(text.split("which needs about ")[1].split(" bytes")[0].replace(",", ""))
    assert 15 * 2**20 < needed < 60 * 2**20, text  # ~200,000 rows of ~120 bytes, less 1 MiB
    assert "set TMPDIR to a directory on a disk that has it" in text
    assert data_keys(s3, bucket) == []


# -- one table of S3 and STS errors ------------------------------------------------------


def _client_error(code: str, status: int, operation: str = "PutObject") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} happened."},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


@pytest.mark.parametrize(
    ("code", "status", "what", "error", "text"),
    [
        ("NoSuchKey", 404, "read m.json", ObjectNotFound, "no object to read m.json in s3://b"),
        ("404", 404, "check whether x.csv exists", ObjectNotFound, "exists in s3://b (404)"),
        ("404", 404, "list s3://b/p/", BucketNotFound, "bucket 'b' does not exist"),
        ("PreconditionFailed", 412, "write m.json", PreconditionFailed, "changed since it was"),
        ("412", 412, "replace m.json", PreconditionFailed, "S3 refused to replace m.json"),
        ("ConditionalRequestConflict", 409, "write m.json", PreconditionFailed, "(Conditional"),
        ("RequestTimeTooSkewed", 403, "write x.csv", TransferError, "set it right (NTP)"),
        ("PermanentRedirect", 301, "write x.csv", TransferError, "set 'region'"),
        ("SlowDown", 503, "write x.csv", TransferError, "lower max_concurrency"),
        ("WeirdNewCode", 400, "write x.csv", TransferError, "WeirdNewCode (HTTP 400)"),
    ],
)
def test_s3_error_codes_map_to_our_errors_with_a_fix(
    code: str, status: int, what: str, error: type[Exception], text: str
) -> None:
    mapped = translate(_client_error(code, status), S3Request("b", what))
    assert type(mapped) is error and text in str(mapped), str(mapped)


def test_sts_answers_map_to_our_errors_naming_the_role() -> None:
    role = AssumeRole("arn:aws:iam::123456789012:role/r", "the configured keys")
    denied = translate(_client_error("AccessDenied", 403, "AssumeRole"), role)
    assert type(denied) is AccessDenied and "trust policy" in str(denied)
    rejected = translate(_client_error("InvalidClientTokenId", 403, "AssumeRole"), role)
    assert type(rejected) is InvalidCredentials and "Check the configured keys" in str(rejected)
    garbled = translate(ResponseParserError("Unable to parse response\nb''"), role)
    assert str(garbled).startswith(f"cannot assume role {role.role_arn}: the endpoint's answer")
    assert "\n" not in str(garbled)


def test_every_botocore_error_becomes_one_of_ours_on_one_line() -> None:
    translated = 0
    for _, cls in inspect.getmembers(botocore.exceptions, inspect.isclass):
        if not issubclass(cls, botocore.exceptions.BotoCoreError):
            continue
        names = {f for _, f, _, _ in string.Formatter().parse(cls.fmt) if f}
        try:
            err = cls(**{name: "detail\nsecond line" for name in names})
        except Exception:
            continue  # a constructor of its own (ParamValidationError, ...): not raised by I/O
        for request in (S3Request("b", "write x.csv"), AssumeRole("arn:r", "the chain")):
            mapped = translate(err, request)
            assert isinstance(mapped, S3ExportError) and "\n" not in str(mapped), (cls, mapped)
        translated += 1
    assert translated > 50


def test_a_model_name_too_long_for_the_key_is_blamed_on_the_template(
    s3_server: S3Server, s3: Any, bucket: str
) -> None:
    cfg = ExportConfig.parse(
        {
            "bucket": bucket,
            "key": "out/",
            "file_format": "csv",
            "filename_template": "{model}-{run_id}-{part}",
        }
    )
    client = engine_client(s3_server.endpoint)
    with pytest.raises(S3ExportError) as failure:
        run_export(cfg, ArrowSource(pa.table({"id": [1]})), client, RunContext(model="m" * 1000))
    text = str(failure.value)
    assert (
        "the file name 'mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm...' from filename_template" in text
    )
    assert "Shorten filename_template or 'key'" in text and "partition column" not in text
    assert data_keys(s3, bucket) == []
