"""No secret ever leaks: grep everything dbt and the package wrote, after good and bad runs.

Credentials come from the profile's plugin config through
``env_var('DBT_ENV_SECRET_...')``, each ending in a newline as when a Kubernetes
secret is mounted from a file, and a role is assumed with them, so the run's own
temporary credentials are secrets too. Every spelling of every secret (escaped,
URL-encoded, trimmed, padded) is looked for in target/, logs/, the run's output
and every object written, manifests included. Keys in model meta are the
documented exception: dbt itself writes meta to target/manifest.json, so those
runs print a warning, and nothing but dbt's own copies of meta may hold them.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from .iam_support import (
    IamWorld,
    Keys,
    assumed_sessions,
    bucket_policy,
    iam_world,
    may_assume,
    role_arn,
    user_arn,
)
from .leaks import files_holding, objects_holding, text_holds
from .support import DbtProject, DbtResult, list_keys

__all__ = ["iam_world"]  # the fixture, imported so pytest finds it here

EXTERNAL_ID = "ext-7c1f9a2be4d04d8b"
WRONG_SECRET = "wrongSecretValue/0123456789abcdefABCDEF0\n"
URL_PASSWORD = "urlPassw0rd/in+endpoint"
BUCKETS = ("exports", "meta-exports")
SESSION_NAME = "secrets-run"
MODELS = [f"orders_{i}" for i in range(8)]
# dbt's own copies of the project's meta: the one place meta credentials may appear.
DBT_META_COPIES = {"manifest.json", "partial_parse.msgpack", "graph.gpickle"}


@dataclass
class Setup:
    world: IamWorld
    writer: Keys
    meta_user: Keys
    env_user: Keys
    role: str


@pytest.fixture(scope="module")
def setup(iam_world: IamWorld) -> Setup:
    iam_world.bucket("exports")
    iam_world.bucket("meta-exports")
    role = role_arn("exporter")
    may_only_assume = {"Version": "2012-10-17", "Statement": [may_assume([role])]}
    writer = iam_world.user("writer", may_only_assume)
    iam_world.role("exporter", [user_arn("writer")], bucket_policy(["exports"]), EXTERNAL_ID)
    meta_user = iam_world.user("meta-user", bucket_policy(["meta-exports"]))
    env_user = iam_world.user("env-user", bucket_policy(["exports"]))
    return Setup(iam_world, writer, meta_user, env_user, role)


def temporary_credentials(world: IamWorld) -> list[str]:
    """The keys STS handed out to the run's role sessions (moto keeps them)."""
    with urllib.request.urlopen(world.endpoint + "/moto-api/data.json", timeout=10) as r:
        roles = json.loads(r.read()).get("sts", {}).get("AssumedRole", [])
    values = []
    for role in roles:
        if role.get("session_name") == SESSION_NAME:
            values += [role["access_key_id"], role["secret_access_key"], role["session_token"]]
    return values


def assert_nowhere(
    project: DbtProject, result: DbtResult, world: IamWorld, secrets: list[str]
) -> None:
    assert (project.root / "logs" / "dbt.log").is_file()
    assert (project.root / "target" / "run_results.json").is_file()
    for secret in secrets:
        assert files_holding(project.root, secret) == set(), secret[:4]
        assert not text_holds(result.output, secret), secret[:4]
        assert objects_holding(world.s3(), BUCKETS, secret) == [], secret[:4]


def meta_model(project: DbtProject, name: str, meta: dict[str, object]) -> None:
    project.model(
        name,
        f"""
        {{{{ config(post_hook="{{{{ dbt_s3_export.export_to_s3() }}}}",
                    meta={{"s3_export": {meta!r}}}) }}}}
        select 1 as id
        """,
    )


@pytest.mark.slow
def test_profile_secrets_never_appear_in_artifacts_logs_or_messages(
    setup: Setup, tmp_path: Path
) -> None:
    project = DbtProject(
        tmp_path / "p",
        setup.world.endpoint,
        threads=8,
        plugin_config={
            "access_key_id": "{{ env_var('DBT_ENV_SECRET_AWS_ACCESS_KEY_ID') }}",
            "secret_access_key": "{{ env_var('DBT_ENV_SECRET_AWS_SECRET_ACCESS_KEY') }}",
            "role_arn": setup.role,
            "external_id": "{{ env_var('DBT_ENV_SECRET_EXTERNAL_ID') }}",
            "role_session_name": SESSION_NAME,
        },
    )
    # Read from mounted files: each value ends in a newline.
    secret_env = {
        "DBT_ENV_SECRET_AWS_ACCESS_KEY_ID": setup.writer.access_key_id + "\n",
        "DBT_ENV_SECRET_AWS_SECRET_ACCESS_KEY": setup.writer.secret_access_key + "\n",
        "DBT_ENV_SECRET_EXTERNAL_ID": EXTERNAL_ID + "\n",
    }
    # Nothing in the environment would work: only the profile's keys can succeed.
    project.env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", **secret_env}
    for name in MODELS:
        meta_model(project, name, {"bucket": "exports", "key": f"{name}/", "file_format": "csv"})

    # 1. A good run, eight threads: every export lands, all through one client
    #    whose role was assumed once.
    good = project.dbt("run")
    admin = setup.world.s3()
    for name in MODELS:
        assert any(k.endswith(".csv") for k in list_keys(admin, "exports", f"{name}/"))
    assert assumed_sessions(setup.world, SESSION_NAME) == 1
    secrets = [*secret_env.values(), *temporary_credentials(setup.world)]
    assert len(secrets) == 6
    assert any(k.endswith("_manifest.json") for k in list_keys(admin, "exports"))
    assert_nowhere(project, good, setup.world, secrets)

    # 2. A bad run: a wrong secret in the profile, plus meta credentials (one set
    #    that works, one of the wrong type).
    project.env["DBT_ENV_SECRET_AWS_SECRET_ACCESS_KEY"] = WRONG_SECRET
    meta_model(
        project,
        "meta_keys",
        {
            "bucket": "meta-exports",
            "key": "meta.csv",
            "file_format": "csv",
            **setup.meta_user.options(),
            "role_arn": None,  # not the profile's role: these keys write on their own
        },
    )
    meta_model(
        project,
        "wrong_type",
        {
            "bucket": "meta-exports",
            "key": "wrong.csv",
            "file_format": "csv",
            "access_key_id": "AKIAWRONGTYPE0000000",
            "secret_access_key": 918273645546372819,
        },
    )
    # Keys from the environment with a file's newline, for a model on boto3's chain.
    project.env["AWS_ACCESS_KEY_ID"] = setup.env_user.access_key_id + "\n"
    project.env["AWS_SECRET_ACCESS_KEY"] = setup.env_user.secret_access_key + "\n"
    meta_model(
        project,
        "env_keys",
        {
            "bucket": "exports",
            "key": "env/",
            "file_format": "csv",
            "profile_name": None,
            "role_arn": None,
        },
    )
    meta_model(
        project,
        "url_keys",
        {
            "bucket": "exports",
            "key": "url/",
            "file_format": "csv",
            "endpoint_url": f"http://leaky:{URL_PASSWORD}@127.0.0.1:9",
        },
    )
    bad = project.dbt("run", check=False)
    assert not bad.ok
    lines = bad.output.splitlines()
    for name in MODELS:
        failure = [line for line in lines if f"s3_export failed for model '{name}'" in line]
        assert failure, bad.output
        assert f"exporting to s3://exports/{name}/" in failure[0]
        assert f"cannot assume role {setup.role}: STS rejected the base credentials" in failure[0]
        assert "SignatureDoesNotMatch" in failure[0]
    wrong_type = [line for line in lines if "model 'wrong_type' exporting to" in line]
    assert wrong_type and "'secret_access_key': must be a string, got int ***" in wrong_type[0]
    assert list_keys(admin, "meta-exports") == ["meta.csv"]
    assert "model 'meta_keys' has credentials (access_key_id, secret_access_key)" in bad.output
    assert "model 'wrong_type' has credentials (access_key_id, secret_access_key)" in bad.output

    env_keys = [line for line in lines if "s3_export failed for model 'env_keys'" in line]
    assert env_keys and "begin or end with whitespace" in env_keys[0], bad.output
    url_keys = [line for line in lines if "s3_export failed for model 'url_keys'" in line]
    assert url_keys and "'http://***@127.0.0.1:9' (credentials hidden)" in url_keys[0]

    env_secrets = [setup.env_user.access_key_id + "\n", setup.env_user.secret_access_key + "\n"]
    assert_nowhere(project, bad, setup.world, [*secrets, WRONG_SECRET, *env_secrets])
    meta_secrets = (setup.meta_user.secret_access_key, "918273645546372819", URL_PASSWORD)
    for secret in meta_secrets:
        holding = files_holding(project.root, secret)
        # The grep does find dbt's copy of meta (so it would find any other), and that is all.
        assert any(path.endswith("manifest.json") for path in holding)
        assert {Path(path).name for path in holding} <= DBT_META_COPIES, holding
        assert not text_holds(bad.output, secret)
        assert objects_holding(setup.world.s3(), BUCKETS, secret) == []
    # The EXPORT statement dbt logs shows the meta credentials as ***.
    log = (project.root / "logs" / "dbt.log").read_text()
    assert 'TO "s3://meta-exports/meta.csv"' in log
    assert '"secret_access_key": "***"' in log and '"access_key_id": "***"' in log
    assert '"endpoint_url": "http://***@127.0.0.1:9"' in log
