"""Runs that overlap, exports that collide: real dbt runs over HTTP, the invariant watched.

Each case is one a user met: a CI retry next to a scheduled job, two models pointed
at one folder, an export at the bucket root, a run killed halfway, a changed
layout, a meta value that broke the hook's SQL, a full refresh, a damaged manifest.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from .concurrency import InvariantWatcher, check_settled, wait_for_lease_holder
from .faultproxy import GATE, HOLD, PASS, FaultProxy, Rule
from .support import DbtProject, S3Server, list_keys, read_object

pytestmark = pytest.mark.dbt

HOOK = 'post_hook="{{ dbt_s3_export.export_to_s3() }}"'


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_server.endpoint).start()
    yield p
    p.stop()


def events_model(meta: str, *, materialized: str = "table", extra_sql: str = "") -> str:
    """Rows of four partitions ``p``; ``tag`` (a var) tells the runs apart."""
    return f"""
        {{{{ config(materialized='{materialized}', {HOOK},
                  meta={{'s3_export': {meta}}}) }}}}
        select i as id, i % 4 as p, '{{{{ var("tag", "one") }}}}' as tag
        from range({{{{ var('rows', 40) }}}}) t(i)
        where i % 4 in ({{{{ var('parts', '0, 1, 2, 3') }}}}) {extra_sql}
        """


def tags_by_partition(s3: Any, bucket: str, manifest: dict[str, Any]) -> dict[str, set[str]]:
    """The ``tag`` values each partition's listed files hold."""
    out: dict[str, set[str]] = {}
    for f in manifest["files"]:
        table = pq.read_table(io.BytesIO(read_object(s3, bucket, f["key"])))
        out.setdefault(f["partition"], set()).update(table.column("tag").to_pylist())
    return out


def own_database(tmp_path: Path, name: str, **env: str) -> dict[str, str]:
    """Env for a run with a DuckDB file of its own, as two machines would have."""
    return {"TEST_DUCKDB_PATH": str(tmp_path / f"{name}.duckdb"), **env}


PARTITIONED = "{'key': 'events/', 'file_format': 'parquet', 'partition_cols': ['p']"


def overlap(
    project: DbtProject, proxy: FaultProxy, s3: Any, bucket: str, first: str, second: str
) -> str:
    """Run A (``first`` vars) and B (``second``) of one model, overlapping for sure.

    A goes through the proxy and is held at its first data file, holding the lease,
    until B reports that it waits for it. Returns the generation A ran as.
    """
    proxy.add(Rule(GATE, method="PUT", path=r"/part-", query=r"^$", times=1))
    with InvariantWatcher(s3, bucket, "events/"):
        a = project.start(
            "run",
            "--vars",
            first,
            env=own_database(project.root, "a", TEST_S3_ENDPOINT=proxy.endpoint),
        )
        holder = wait_for_lease_holder(s3, bucket, "events/")
        b = project.start("run", "--vars", second, env=own_database(project.root, "b"))
        b.wait_for_output("waiting for another run of this export to finish writing")
        proxy.gate.set()
        a.wait()
        b.wait()
    return holder


def test_overlapping_runs_of_one_model_take_turns(
    tmp_path: Path, s3: Any, bucket: str, proxy: FaultProxy, s3_server: S3Server
) -> None:
    project = DbtProject(tmp_path / "project", s3_server.endpoint, plugin_config={"bucket": bucket})
    project.model("events", events_model(PARTITIONED + "}"))
    project.dbt("run", "--vars", "{tag: one}")

    first = overlap(project, proxy, s3, bucket, "{tag: two}", "{tag: three}")
    final = check_settled(s3, bucket, "events/")
    assert final["generation"] != first  # B committed after A, replacing A's export
    assert tags_by_partition(s3, bucket, final) == {f"p={i}/": {"three"} for i in range(4)}


def test_overlapping_overwrite_partitions_runs_keep_each_others_partitions(
    tmp_path: Path, s3: Any, bucket: str, proxy: FaultProxy, s3_server: S3Server
) -> None:
    project = DbtProject(tmp_path / "project", s3_server.endpoint, plugin_config={"bucket": bucket})
    project.model("events", events_model(PARTITIONED + ", 'mode': 'overwrite_partitions'}"))
    project.dbt("run", "--vars", "{tag: one}")

    overlap(project, proxy, s3, bucket, "{tag: two, parts: '1'}", "{tag: three, parts: '2'}")
    final = check_settled(s3, bucket, "events/")
    assert tags_by_partition(s3, bucket, final) == {
        "p=0/": {"one"},
        "p=1/": {"two"},
        "p=2/": {"three"},
        "p=3/": {"one"},
    }


def test_exports_cannot_share_or_nest_folders(
    tmp_path: Path, s3: Any, bucket: str, s3_server: S3Server
) -> None:
    project = DbtProject(
        tmp_path / "project",
        s3_server.endpoint,
        plugin_config={"bucket": bucket, "file_format": "parquet"},
        threads=4,
    )
    for name, key in [("first", "shared/"), ("second", "shared/"), ("inner", "shared/inner/")]:
        project.model(name, events_model(f"{{'key': '{key}'}}"))
    project.model("apart", events_model("{'key': 'apart/'}"))
    project.dbt("run", "-s", "first")
    before = {k: read_object(s3, bucket, k) for k in list_keys(s3, bucket, "shared/")}

    result = project.dbt("run", "--exclude", "first", check=False)
    assert "Completed with 2 errors" in result.output
    assert (
        f"s3://{bucket}/shared/ belongs to export 'model.export_test.first#0' (model first), "
        "and this export is 'model.export_test.second#0'"
    ) in result.output
    assert (
        f"s3://{bucket}/shared/ belongs to export 'model.export_test.first#0' (model first), "
        f"and it is around this export's folder s3://{bucket}/shared/inner/"
    ) in result.output
    # The losers wrote and deleted nothing there.
    check_settled(s3, bucket, "shared/")
    assert {k: read_object(s3, bucket, k) for k in list_keys(s3, bucket, "shared/")} == before
    assert not list_keys(s3, bucket, "shared/inner/")
    check_settled(s3, bucket, "apart/")


def test_an_export_at_the_bucket_root_owns_the_bucket(
    tmp_path: Path, s3: Any, bucket: str, s3_server: S3Server
) -> None:
    project = DbtProject(tmp_path / "project", s3_server.endpoint, plugin_config={"bucket": bucket})
    project.model(
        "daily",
        events_model("{'key': 'daily/', 'file_format': 'parquet', 'partition_cols': ['p']}"),
    )
    project.model(
        "everything",
        events_model("{'key': '', 'file_format': 'parquet', 'partition_cols': ['p']}"),
    )
    project.dbt("run", "-s", "daily")
    daily = {k: read_object(s3, bucket, k) for k in list_keys(s3, bucket, "daily/")}

    result = project.dbt("run", "-s", "everything", check=False)
    assert not result.ok
    assert (
        f"s3://{bucket}/daily/ belongs to export 'model.export_test.daily#0' (model daily), "
        f"and it is inside this export's folder s3://{bucket}/"
    ) in result.output
    for key, body in daily.items():
        if not key.endswith("_lease.json"):
            assert read_object(s3, bucket, key) == body
    assert [k for k in list_keys(s3, bucket) if not k.startswith("daily/")] == []


def test_a_killed_first_run_leaves_nothing_the_next_run_publishes(
    tmp_path: Path, s3: Any, bucket: str, proxy: FaultProxy, s3_server: S3Server
) -> None:
    project = DbtProject(
        tmp_path / "project",
        s3_server.endpoint,
        plugin_config={"bucket": bucket, "lease_ttl_seconds": 3},
    )
    project.model("events", events_model(PARTITIONED + ", 'mode': 'overwrite_partitions'}"))
    # The first run ever writes two partitions' files, then stalls on the third: kill it.
    proxy.add(Rule(PASS, method="PUT", path=r"/part-", query=r"^$", times=2))
    proxy.add(Rule(HOLD, method="PUT", path=r"/part-", query=r"^$", times=1))
    run = project.start("run", env={"TEST_S3_ENDPOINT": proxy.endpoint})
    try:
        assert proxy.held.wait(120), "the first run never reached its third file"
    finally:
        run.kill()
    dead = [k for k in list_keys(s3, bucket, "events/") if "/part-" in k]
    assert len(dead) >= 2  # files go up in parallel: the ones around the held one land

    proxy.clear()
    project.dbt("run", "--vars", "{tag: two, parts: '3'}")
    final = check_settled(s3, bucket, "events/")
    assert tags_by_partition(s3, bucket, final) == {"p=3/": {"two"}}
    assert not set(dead) & set(list_keys(s3, bucket, "events/"))


def test_a_changed_layout_fails_until_the_export_is_rewritten(
    tmp_path: Path, s3: Any, bucket: str, s3_server: S3Server
) -> None:
    project = DbtProject(tmp_path / "project", s3_server.endpoint, plugin_config={"bucket": bucket})
    meta = (
        "{'key': 'events/', 'file_format': 'parquet', "
        "'mode': var('mode', 'overwrite_partitions'), 'partition_cols': var('cols', ['p'])}"
    )
    project.model("events", events_model(meta))
    project.dbt("run")
    before = check_settled(s3, bucket, "events/")

    result = project.dbt("run", "--vars", "{cols: [p, tag]}", check=False)
    assert not result.ok
    assert (
        "mode overwrite_partitions would add files partitioned by ['p', 'tag'] as parquet to "
        "an export partitioned by ['p'] as parquet, and readers would see rows twice or fail. "
        "Rewrite the whole export once: run the model with --full-refresh, or with mode: "
        "replace for one run"
    ) in result.output
    assert check_settled(s3, bucket, "events/") == before

    project.dbt("run", "--vars", "{cols: [p, tag], mode: replace}")
    project.dbt("run", "--vars", "{cols: [p, tag], tag: two}")
    final = check_settled(s3, bucket, "events/")
    assert final["partition_cols"] == ["p", "tag"] and final["rows"] == 80
    partitions = {f["partition"] for f in final["files"]}
    assert partitions == {f"p={i}/tag={t}/" for i in range(4) for t in ("one", "two")}


INCREMENTAL = """
{{{{ config(materialized='incremental', {hook},
          meta={{'s3_export': {meta}}}) }}}}
select i as id, i % 4 as p, 'run' as tag from range({{{{ var('upto', 10) }}}}) t(i)
{{% if is_incremental() %}} where i > (select max(id) from {{{{ this }}}}) {{% endif %}}
"""


def test_append_batches_land_once_whatever_the_meta_holds_and_full_refresh_starts_over(
    tmp_path: Path, s3: Any, bucket: str, s3_server: S3Server
) -> None:
    project = DbtProject(tmp_path / "project", s3_server.endpoint, plugin_config={"bucket": bucket})
    # Comment markers in a meta value once made the hook's SQL an unterminated comment,
    # failing the model after its export had landed: every retry appended again.
    meta = (
        "{'key': 'log/', 'file_format': 'parquet', 'mode': 'append', 'rows': 'batch', "
        "'metadata': {'pattern': 'logs/*.parquet', 'note': 'ends with */ or /*'}}"
    )
    project.model("log", INCREMENTAL.format(hook=HOOK, meta=meta))
    # The hook set twice (folder and model) must still export once per build.
    folder_hook = "{{ dbt_s3_export.export_to_s3() }}"
    project.project_config = {"models": {"export_test": {"+post-hook": [folder_hook]}}}
    project.write_project()
    project.dbt("run")
    project.dbt("run", "--vars", "{upto: 15}")
    manifest = check_settled(s3, bucket, "log/")
    assert manifest["rows"] == 15 and len(manifest["files"]) == 2
    assert project.query("select count(*) from log") == [(15,)]

    # A full refresh rebuilds the model: its append export starts over too.
    result = project.dbt("run", "--full-refresh", "--vars", "{upto: 12}")
    assert "replaces everything at" in result.output
    manifest = check_settled(s3, bucket, "log/")
    assert manifest["rows"] == 12 and len(manifest["files"]) == 1


def test_a_damaged_manifest_fails_clearly_and_changes_nothing(
    tmp_path: Path, s3: Any, bucket: str, s3_server: S3Server
) -> None:
    project = DbtProject(tmp_path / "project", s3_server.endpoint, plugin_config={"bucket": bucket})
    project.model("events", events_model(PARTITIONED + "}"))
    project.dbt("run")
    manifest = json.loads(read_object(s3, bucket, "events/_manifest.json"))
    manifest["files"] = "see the other bucket"
    s3.put_object(Bucket=bucket, Key="events/_manifest.json", Body=json.dumps(manifest).encode())
    before = {k: read_object(s3, bucket, k) for k in list_keys(s3, bucket, "events/")}

    result = project.dbt("run", "--vars", "{tag: two}", check=False)
    assert not result.ok
    assert (
        f"s3://{bucket}/events/_manifest.json is not a manifest this version of dbt-s3-export "
        "can read: 'files' is a str, not a list. Nothing was changed."
    ) in result.output
    after = {k: read_object(s3, bucket, k) for k in list_keys(s3, bucket, "events/")}
    assert {k: v for k, v in after.items() if "_lease" not in k} == {
        k: v for k, v in before.items() if "_lease" not in k
    }
