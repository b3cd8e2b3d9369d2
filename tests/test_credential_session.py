"""One credential session per export: S3, the table writers and Glue share it.

Against IAM-enforcing moto, with a role: the role is assumed once for a whole ``dbt
run`` that writes a Delta table, an Iceberg table and a Parquet folder registered in
Glue (moto counts the sessions STS handed out), and the temporary keys STS gave
appear in no output, log, artifact or error message, even when a table writer fails
with them in its message.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import pytest

from .iam_support import (
    ALLOW_ALL,
    IamWorld,
    assumed_sessions,
    iam_world,
    may_assume,
    role_arn,
    user_arn,
)
from .leaks import files_holding, objects_holding, text_holds
from .support import HOOK, DbtProject, list_keys

__all__ = ["iam_world"]  # the fixture, imported so pytest finds it here

pytestmark = pytest.mark.slow

BUCKET = "lake"


def temporary_keys(world: IamWorld, session_name: str) -> list[str]:
    """The keys STS handed out for ``session_name`` (moto keeps them)."""
    with urllib.request.urlopen(world.endpoint + "/moto-api/data.json", timeout=10) as r:
        roles = json.loads(r.read()).get("sts", {}).get("AssumedRole", [])
    values = []
    for role in roles:
        if role.get("session_name") == session_name:
            values += [role["access_key_id"], role["secret_access_key"], role["session_token"]]
    return values


@pytest.fixture(scope="module")
def role_options(iam_world: IamWorld) -> dict[str, str]:
    """Keys that may do nothing but assume a role that may do everything."""
    # moto's listing of its state (temporary_keys) fails on an object written through a
    # role whose restore state it advances: let restores never progress.
    transition = {"progression": "manual", "times": 1_000_000}
    request = urllib.request.Request(
        iam_world.endpoint + "/moto-api/state-manager/set-transition",
        data=json.dumps({"model_name": "s3::keyrestore", "transition": transition}).encode(),
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).read()
    iam_world.bucket(BUCKET)
    arn = role_arn("lake-writer")
    user = iam_world.user("lake-user", {"Version": "2012-10-17", "Statement": [may_assume([arn])]})
    iam_world.role("lake-writer", [user_arn("lake-user")], ALLOW_ALL)
    return {**user.options(), "role_arn": arn, "region": "us-east-1"}


def _model(project: DbtProject, name: str, entry: dict[str, Any]) -> None:
    config = f"materialized='table', meta={{'s3_export': {json.dumps(entry)}}}, {HOOK}"
    sql = "select range::integer as id, 'p' || (range % 3) as p from range(30)"
    project.model(name, "{{ config(" + config + ") }}\n" + sql)


@pytest.mark.dbt
def test_one_assume_role_serves_delta_iceberg_and_glue_and_its_keys_stay_hidden(
    iam_world: IamWorld, role_options: dict[str, str], tmp_path: Path
) -> None:
    session_name = "tables-run"
    catalog = {"type": "sql", "uri": f"sqlite:///{tmp_path / 'catalog.db'}"}
    project = DbtProject(
        tmp_path / "project",
        iam_world.endpoint,
        threads=3,
        plugin_config={**role_options, "role_session_name": session_name, "catalog": catalog},
    )
    # The environment's keys could not write anything: only the role can.
    project.env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    glue = {"database": "lake", "table": "orders", "endpoint_url": iam_world.endpoint}
    base = {"bucket": BUCKET, "partition_cols": ["p"]}
    _model(project, "delta_orders", {**base, "key": "delta/orders", "file_format": "delta"})
    iceberg = {"file_format": "iceberg", "namespace": "lake", "table": "orders"}
    _model(project, "iceberg_orders", {**base, "key": "iceberg/orders", **iceberg})
    parquet = {"file_format": "parquet", "glue": glue}
    _model(project, "glue_orders", {**base, "key": "files/", **parquet})
    result = project.dbt("run")
    admin = iam_world.s3()
    assert any(k.startswith("delta/orders/_delta_log/") for k in list_keys(admin, BUCKET))
    assert any(k.startswith("iceberg/orders/metadata/") for k in list_keys(admin, BUCKET))
    glue = iam_world._client("glue")
    assert glue.get_partitions(DatabaseName="lake", TableName="orders")["Partitions"]
    # One session for the S3 client, both table writers and Glue (before: one each).
    assert assumed_sessions(iam_world, session_name) == 1
    secrets = temporary_keys(iam_world, session_name)
    assert len(secrets) == 3
    for secret in secrets:
        assert files_holding(project.root, secret) == set(), secret[:4]
        assert not text_holds(result.output, secret), secret[:4]
        assert objects_holding(admin, [BUCKET], secret) == [], secret[:4]


@pytest.mark.parametrize("file_format", ["delta", "iceberg"])
def test_a_table_writer_failing_with_the_role_keys_in_its_message_is_scrubbed(
    iam_world: IamWorld,
    role_options: dict[str, str],
    file_format: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The keys the writer was handed came from the export's session, so the plugin's
    redaction knows them (a library that echoes its options in an error cannot leak them)."""
    from dbt_common.exceptions import DbtRuntimeError

    from dbt_s3_export.plugin import Plugin
    from dbt_s3_export.tables import delta, iceberg

    def leaky(self: Any, *_: Any) -> None:
        options = self.storage.delta() if file_format == "delta" else self.storage.iceberg()
        raise RuntimeError(f"the library refused its configuration {options!r}")

    writer = delta.DeltaWriter if file_format == "delta" else iceberg.IcebergWriter
    monkeypatch.setattr(writer, "run", leaky)
    session_name = f"scrub-{file_format}"
    config = {
        **role_options,
        "role_session_name": session_name,
        "endpoint_url": iam_world.endpoint,
        "catalog": {"type": "sql", "uri": f"sqlite:///{tmp_path / 'catalog.db'}"},
    }
    plugin = Plugin("dbt_s3_export", config, credentials=SimpleNamespace(settings={}, secrets=[]))
    con = duckdb.connect()
    con.execute("create table orders as select 1 as id")
    plugin.configure_connection(con)
    policy = SimpleNamespace(database=False, schema=False, identifier=True)
    relation = SimpleNamespace(identifier="orders", include_policy=policy, external=None)
    entry = {"bucket": BUCKET, "key": f"scrub/{file_format}", "file_format": file_format}
    if file_format == "iceberg":
        entry.update(namespace="scrub", table="orders")
    payload = {"model": "orders", "exports": [entry], "unique_id": "model.p.orders"}
    with pytest.raises(DbtRuntimeError) as info:
        plugin.store(SimpleNamespace(relation=relation, config=payload))  # type: ignore[arg-type]
    message = str(info.value)
    assert "the library refused its configuration" in message and "***" in message
    assert assumed_sessions(iam_world, session_name) == 1
    secrets = temporary_keys(iam_world, session_name)
    assert len(secrets) == 3
    for secret in secrets:
        assert not text_holds(message, secret), secret[:4]
