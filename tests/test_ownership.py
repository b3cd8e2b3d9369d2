"""One export, one destination: control files read from the bucket are checked before
anything is deleted on their word, claims see tables, and a layout keeps its types."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from dbt_s3_export import CorruptManifest, OwnershipConflict

from .engine import engine_client, export, table
from .lost_answers import snapshot
from .support import (
    DbtProject,
    S3Server,
    export_meta,
    exported_model,
    list_keys,
    only_on_first_server,
    read_object,
)

# A generation as runs make them (commit.new_generation), and a time as leases write it.
G = "0190f3a2b4c5d6e7f8a9b0c1"
NOW = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
OTHERS = {"other/keep.csv": b"a\n1\n", "exp-notes.txt": b"not an export"}


@pytest.fixture
def exported(s3: Any, bucket: str, s3_server: S3Server) -> Callable[[], None]:
    """``exp/`` exported once, a neighbouring export ``exp2/``, objects of nobody's;
    returns the run that is tried again after the control files were edited."""
    client = engine_client(s3_server.endpoint)
    export(client, bucket, "exp/", table(6, tag="a", partitions=2), partition_cols=["p"])
    export(client, bucket, "exp2/", table(3, tag="b"), export_id="neighbour")
    for key, body in OTHERS.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)

    def again() -> None:
        export(client, bucket, "exp/", table(4, tag="c", partitions=2), partition_cols=["p"])

    return again


def edit(s3: Any, bucket: str, key: str, change: Callable[[dict[str, Any]], Any]) -> None:
    record = json.loads(read_object(s3, bucket, key))
    body = change(record)
    data = body if isinstance(body, bytes) else json.dumps(record).encode()
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def neighbour_file(s3: Any, bucket: str) -> str:
    return next(k for k in list_keys(s3, bucket, "exp2/") if "part-" in k)


def garbage(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        record["garbage"] = {"generations": [], "keys": [], **fields}

    return change


LEASE_EDITS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "a key outside the folder": garbage(keys=["other/keep.csv"]),
    "a key beside the folder": garbage(keys=["exp-notes.txt"]),
    "the manifest": garbage(keys=["exp/_manifest.json"]),
    "the lease itself": garbage(keys=["exp/_lease.json"]),
    "a key of another export's": garbage(keys=["NEIGHBOUR"]),
    "a key of no generation": garbage(keys=["exp/p=0/notes.csv"]),
    "an empty generation": garbage(generations=[""]),
    "a short generation": garbage(generations=["0190f3"]),
    "a generation of another type": garbage(generations=[190]),
    "keys that are not a list": garbage(keys="exp/"),
    "swept runs that are not a list": garbage(swept={"generation": G, "at": NOW}),
    "a swept run without its time": garbage(swept=[{"generation": G}]),
    "a swept run's time without a zone": garbage(swept=[{"generation": G, "at": NOW[:-6]}]),
    "a swept run of no generation": garbage(swept=[{"generation": "0190f3", "at": NOW}]),
    "garbage that is not an object": lambda r: r.update(garbage=["exp/"]),
    "a holder without a generation": lambda r: r.update(state="held", holder={"pid": 1}),
    "an unknown state": lambda r: r.update(state="taken"),
    "no export id": lambda r: r.update(export_id=None),
    "truncated JSON": lambda r: json.dumps(r).encode()[:40],
}


@pytest.mark.parametrize("change", LEASE_EDITS.values(), ids=list(LEASE_EDITS))
def test_an_edited_lease_fails_the_run_and_nothing_is_deleted(
    change: Callable[[dict[str, Any]], Any],
    s3: Any,
    bucket: str,
    exported: Callable[[], None],
) -> None:
    neighbour = neighbour_file(s3, bucket)

    def with_neighbour(record: dict[str, Any]) -> Any:
        body = change(record)
        garbage = record.get("garbage")
        if isinstance(garbage, dict) and garbage.get("keys") == ["NEIGHBOUR"]:
            garbage["keys"] = [neighbour]
        return body

    edit(s3, bucket, "exp/_lease.json", with_neighbour)
    before = snapshot(s3, bucket)
    with pytest.raises(CorruptManifest) as failure:
        exported()
    text = str(failure.value)
    assert text.startswith(f"s3://{bucket}/exp/_lease.json is not a lease"), text
    assert "delete the lease" in text and "Nothing was changed" in text, text
    assert snapshot(s3, bucket) == before


MANIFEST_EDITS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "the manifest itself": lambda m: m["files"].append({"key": "exp/_manifest.json"}),
    "the lease": lambda m: m["files"].append({"key": "exp/_lease.json"}),
    "a key outside the folder": lambda m: m["files"].append({"key": "other/keep.csv"}),
    "a key of another export's": lambda m: m["files"].append({"key": "NEIGHBOUR"}),
    "a key of no generation": lambda m: m["files"].append({"key": "exp/p=0/notes.csv"}),
    "a nested folder's lease": lambda m: m["files"].append({"key": "exp/inner/_lease.json"}),
    "a key that is no string": lambda m: m["files"].append({"key": 7}),
    "a superseded key outside the folder": lambda m: m.update(superseded=["other/keep.csv"]),
    "a superseded key of another export's": lambda m: m.update(superseded=["NEIGHBOUR"]),
    "superseded keys that are not a list": lambda m: m.update(superseded="exp/"),
    "files that are not a list": lambda m: m.update(files={"key": "exp/"}),
    "truncated JSON": lambda m: json.dumps(m).encode()[:60],
}


# Each edit once, the modes taking turns: both read the manifest before they drop
# anything, and both must refuse it.
MANIFEST_CASES = [
    pytest.param(change, ("replace", "overwrite_partitions")[i % 2], id=name)
    for i, (name, change) in enumerate(MANIFEST_EDITS.items())
]


@pytest.mark.parametrize(("change", "mode"), MANIFEST_CASES)
def test_an_edited_manifest_fails_the_run_and_nothing_is_deleted(
    change: Callable[[dict[str, Any]], Any],
    mode: str,
    s3: Any,
    bucket: str,
    s3_server: S3Server,
    exported: Callable[[], None],
) -> None:
    neighbour = neighbour_file(s3, bucket)

    def with_neighbour(record: dict[str, Any]) -> Any:
        body = change(record)
        for entry in record.get("files") or []:
            if isinstance(entry, dict) and entry.get("key") == "NEIGHBOUR":
                entry["key"] = neighbour
        if record.get("superseded") == ["NEIGHBOUR"]:
            record["superseded"] = [neighbour]
        return body

    edit(s3, bucket, "exp/_manifest.json", with_neighbour)
    before = snapshot(s3, bucket)
    client = engine_client(s3_server.endpoint)
    with pytest.raises(CorruptManifest) as failure:
        export(
            client, bucket, "exp/", table(4, tag="c", partitions=2), partition_cols=["p"], mode=mode
        )
    text = str(failure.value)
    assert text.startswith(f"s3://{bucket}/exp/_manifest.json is not a manifest"), text
    # The run took the lease and gave it back; nothing else changed.
    after = snapshot(s3, bucket)
    assert {k: v for k, v in after.items() if k != "exp/_lease.json"} == {
        k: v for k, v in before.items() if k != "exp/_lease.json"
    }
    assert json.loads(read_object(s3, bucket, "exp/_lease.json"))["state"] == "free"


def test_lease_garbage_of_real_generations_is_still_swept(
    s3: Any, bucket: str, s3_server: S3Server, exported: Callable[[], None]
) -> None:
    # A run that died left a file; the lease names its generation, as a takeover does.
    dead = f"exp/p=1/part-{G}-00001.parquet"
    s3.put_object(Bucket=bucket, Key=dead, Body=b"half a file")
    edit(s3, bucket, "exp/_lease.json", garbage(generations=[G]))
    exported()
    assert dead not in list_keys(s3, bucket, "exp/")
    assert set(OTHERS) <= set(list_keys(s3, bucket))
    swept = json.loads(read_object(s3, bucket, "exp/_lease.json"))["garbage"]["swept"]
    assert [entry["generation"] for entry in swept] == [G]


def test_files_a_swept_run_had_in_flight_are_deleted_by_later_runs(
    s3: Any, bucket: str, s3_server: S3Server, exported: Callable[[], None]
) -> None:
    """A run taken over may still have uploads on the way; what lands after the new
    holder swept its generation is deleted by the runs after, without a listing more,
    until one a day or more after the sweep has looked. Files no record names stay,
    however they are called."""
    old = "1" * 24  # swept long ago: this run looks a last time, then forgets it
    edit(s3, bucket, "exp/_lease.json", garbage(generations=[G]))
    exported()  # sweeps G, keeps it on record

    def swept_long_ago(record: dict[str, Any]) -> None:
        record["garbage"]["swept"].append({"generation": old, "at": "2026-01-01T00:00:00+00:00"})

    edit(s3, bucket, "exp/_lease.json", swept_long_ago)
    late = [
        f"exp/p=1/part-{G}-00002.parquet",
        f"exp/p=9/part-{G}-00003.parquet",
        f"exp/p=1/part-{old}-00001.parquet",
    ]
    strangers = [f"exp/p=1/part-{'3' * 24}-00001.parquet", "exp/p=1/part-2222222222-1.parquet"]
    for key in late + strangers:
        s3.put_object(Bucket=bucket, Key=key, Body=b"landed late")
    client = engine_client(s3_server.endpoint)
    sent: list[str] = []
    client.meta.events.register("before-call.s3", lambda model, **_: sent.append(model.name))
    export(client, bucket, "plain/", table(4, tag="d", partitions=2), partition_cols=["p"])
    plain, sent[:] = list(sent), []
    export(client, bucket, "exp/", table(4, tag="d", partitions=2), partition_cols=["p"])
    keys = list_keys(s3, bucket, "exp/")
    assert not set(late) & set(keys), keys
    assert set(strangers) <= set(keys) and set(OTHERS) <= set(list_keys(s3, bucket))
    # The claim check's listing serves: a look for unfinished uploads is the one request more.
    assert sent.count("ListObjectsV2") == plain.count("ListObjectsV2"), (sent, plain)
    assert (plain.count("ListMultipartUploads"), sent.count("ListMultipartUploads")) == (0, 1)
    swept = json.loads(read_object(s3, bucket, "exp/_lease.json"))["garbage"]["swept"]
    assert [entry["generation"] for entry in swept] == [G]


# -- claims and tables ---------------------------------------------------------------------

TABLE_LOGS = {
    "Delta": "lake/events/_delta_log/00000000000000000000.json",
    "Iceberg": "lake/events/metadata/00000-6f1c.metadata.json",
}


@pytest.mark.parametrize("kind", list(TABLE_LOGS))
@pytest.mark.parametrize(
    ("key", "relation"),
    [("lake/", "inside"), ("lake/events/", "same"), ("lake/events/data/x/", "around")],
)
def test_folder_exports_keep_out_of_tables(
    kind: str, key: str, relation: str, s3: Any, bucket: str, s3_server: S3Server
) -> None:
    s3.put_object(Bucket=bucket, Key=TABLE_LOGS[kind], Body=b"{}")
    before = snapshot(s3, bucket)
    with pytest.raises(OwnershipConflict) as failure:
        export(engine_client(s3_server.endpoint), bucket, key, table(3, tag="a"))
    text = str(failure.value)
    article = "an" if kind == "Iceberg" else "a"
    assert f"s3://{bucket}/lake/events/ belongs to {article} {kind} table" in text, text
    if relation != "same":
        assert f"it is {relation} this export's folder" in text, text
    assert snapshot(s3, bucket) == before


def test_a_single_object_keeps_out_of_a_table(s3: Any, bucket: str, s3_server: S3Server) -> None:
    s3.put_object(Bucket=bucket, Key=TABLE_LOGS["Delta"], Body=b"{}")
    with pytest.raises(OwnershipConflict, match="belongs to a Delta table"):
        export(
            engine_client(s3_server.endpoint), bucket, "lake/events/one.parquet", table(2, tag="a")
        )


# -- the layout includes partition types ---------------------------------------------------


@pytest.mark.dbt
@pytest.mark.parametrize("mode", ["overwrite_partitions", "append"])
def test_a_changed_partition_type_fails_until_the_export_is_rewritten(
    mode: str,
    project: DbtProject,
    s3: Any,
    bucket: str,
    s3_server: S3Server,
    request: pytest.FixtureRequest,
) -> None:
    only_on_first_server(request, s3_server, "layout checks are the same anywhere")

    def model(p_type: str, how: str = mode) -> None:
        extra = f", 'partition_cols': ['p'], 'mode': '{how}'"
        sql = f"select 1 as id, timestamp '2024-01-01 10:00:00'::{p_type} as p"
        project.model("events", exported_model(export_meta(bucket, "events/", "csv", extra), sql))

    model("timestamp")
    project.dbt("run")
    first = json.loads(read_object(s3, bucket, "events/_manifest.json"))
    assert first["partition_types"] == ["timestamp[us]"]
    model("timestamptz")
    failed = project.dbt("run", check=False)
    assert not failed.ok
    out = re.sub(r"\s+", " ", failed.output)
    expected = "partition column p was timestamp[us] and is now timestamp[us, tz=Etc/UTC]"
    assert expected in out, out[-3000:]
    assert "mode: replace for one run" in out
    assert json.loads(read_object(s3, bucket, "events/_manifest.json")) == first
    model("timestamptz", "replace")
    project.dbt("run")
    model("timestamptz")
    project.dbt("run")
    files = json.loads(read_object(s3, bucket, "events/_manifest.json"))["files"]
    # One partition, one file: the instant is no longer in two folders.
    assert len({f["partition"] for f in files}) == 1, files


def test_an_export_without_partition_types_goes_on(
    s3: Any, bucket: str, s3_server: S3Server
) -> None:
    # Manifests written before types were recorded have none: the next run compares none.
    client = engine_client(s3_server.endpoint)
    opts = {"partition_cols": ["p"], "mode": "overwrite_partitions"}
    export(client, bucket, "old/", table(4, tag="a", partitions=2), **opts)
    edit(s3, bucket, "old/_manifest.json", lambda m: m.pop("partition_types"))
    export(client, bucket, "old/", table(4, tag="b", partitions=2), **opts)
    assert json.loads(read_object(s3, bucket, "old/_manifest.json"))["partition_types"] == ["int64"]
