"""Credentials: every source boto3 users expect, and clear failures, against IAM-enforcing moto.

Each user and role may write to its own bucket only, so an export that lands
proves which credentials it used.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from botocore.exceptions import ClientError

from dbt_s3_export import ArrowSource, ExportConfig, RunContext, run_export
from dbt_s3_export.errors import AccessDenied, InvalidCredentials
from dbt_s3_export.options.config import ConfigError
from dbt_s3_export.s3.credentials import ClientCache, ConnectionSettings, redact
from dbt_s3_export.s3.objects import describe_error

from .iam_support import (
    IamWorld,
    Keys,
    assumed_sessions,
    bucket_policy,
    iam_world,
    may_assume,
    role_arn,
    user_arn,
    with_statements,
    write_credentials_file,
)
from .support import DbtProject, S3Server, list_keys

__all__ = ["iam_world"]  # the fixture, imported so pytest finds it here

SECRET_LOOKING = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@dataclass
class Cast:
    """Who may do what on the IAM-enforcing server."""

    world: IamWorld
    writer: Keys  # may write to b-env and assume the exporter role (and, by policy, the locked one)
    profile_user: Keys  # may write to b-profile
    meta_user: Keys  # may write to b-meta
    exporter_role: str  # trusts writer; may write to b-role
    locked_role: str  # trusts nobody we have; may write to b-role


@pytest.fixture(scope="module")
def cast(iam_world: IamWorld) -> Cast:
    for name in ("b-env", "b-profile", "b-role", "b-meta", "b-locked"):
        iam_world.bucket(name)
    exporter = role_arn("exporter")
    locked = role_arn("locked")
    writer = iam_world.user(
        "writer", with_statements(bucket_policy(["b-env"]), may_assume([exporter, locked]))
    )
    iam_world.role("exporter", [user_arn("writer")], bucket_policy(["b-role"]))
    iam_world.role("locked", [user_arn("somebody-else")], bucket_policy(["b-role"]))
    return Cast(
        iam_world,
        writer,
        iam_world.user("profile-user", bucket_policy(["b-profile"])),
        iam_world.user("meta-user", bucket_policy(["b-meta"])),
        exporter,
        locked,
    )


TABLE = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"]})


@dataclass
class Exported:
    config: ExportConfig
    rows: int


def export(cache: ClientCache, cast: Cast, bucket: str, key: str, **options: Any) -> Exported:
    cfg = ExportConfig.parse(
        {"bucket": bucket, "key": key, "file_format": "csv", **options},
        {"endpoint_url": cast.world.endpoint, "region": "us-east-1"},
    )
    client = cache.get(ConnectionSettings.of(cfg))
    return Exported(cfg, run_export(cfg, ArrowSource(TABLE), client, RunContext(model="m")).rows)


# -- settings and parsing, no I/O ---------------------------------------------------------


def test_settings_repr_and_config_repr_hide_credentials() -> None:
    cfg = ExportConfig.parse(
        {
            "bucket": "b-env",
            "key": "x.csv",
            "file_format": "csv",
            "access_key_id": "AKIAEXAMPLEKEYID0000",
            "secret_access_key": SECRET_LOOKING,
            "session_token": "token-value-1234",
            "role_arn": role_arn("r"),
            "external_id": "ext-id-5678",
        }
    )
    for text in (repr(cfg), repr(ConnectionSettings.of(cfg)), str(cfg.redacted())):
        for secret in ("AKIAEXAMPLEKEYID0000", SECRET_LOOKING, "token-value-1234", "ext-id-5678"):
            assert secret not in text
    assert role_arn("r") in repr(ConnectionSettings.of(cfg))


@pytest.mark.parametrize(
    ("endpoint", "path_style", "expected"),
    [
        (None, None, "auto"),
        ("http://minio:9000", None, "path"),
        ("http://minio:9000", False, "virtual"),
        (None, True, "path"),
    ],
)
def test_path_style_is_on_for_custom_endpoints_unless_overridden(
    endpoint: str | None, path_style: bool | None, expected: str
) -> None:
    settings = ConnectionSettings(endpoint_url=endpoint, path_style=path_style)
    assert settings.addressing_style == expected
    assert settings.botocore_config().s3 == {"addressing_style": expected}


@pytest.mark.parametrize(
    ("endpoint_set", "checksums", "sends_crc32"),
    [(True, None, False), (True, "when_supported", True), (False, "when_required", False)],
)
def test_upload_checksums_are_botocores_default_on_aws_and_off_for_custom_endpoints(
    s3_server: S3Server,
    bucket: str,
    endpoint_set: bool,
    checksums: str | None,
    sends_crc32: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    meta: dict[str, Any] = {"bucket": bucket, "key": "c.csv", "file_format": "csv"}
    if checksums:
        meta["checksums"] = checksums
    cfg = ExportConfig.parse({**meta, "endpoint_url": s3_server.endpoint, "region": "us-east-1"})
    settings = ConnectionSettings.of(cfg)
    if not endpoint_set:  # as on AWS: the same settings without an endpoint
        assert ConnectionSettings(checksums=cfg.checksums).checksum_calculation == (
            checksums or "when_supported"
        )
        assert ConnectionSettings().checksum_calculation == "when_supported"
        return
    client = ClientCache().get(settings)
    sent: list[dict[str, str]] = []
    client.meta.events.register(
        "before-send.s3.PutObject", lambda request, **_: sent.append(dict(request.headers))
    )
    run_export(cfg, ArrowSource(pa.table({"a": [1, 2]})), client, RunContext(model="m"))
    headers = {k.lower() for k in sent[0]}
    assert ("x-amz-checksum-crc32" in headers) == sends_crc32


def test_checksums_option_takes_botocores_two_values() -> None:
    meta = {"bucket": "b-env", "key": "x.csv", "file_format": "csv", "checksums": "always"}
    with pytest.raises(ConfigError, match="option 'checksums'"):
        ExportConfig.parse(meta)


def test_meta_credentials_replace_the_profile_credential_source_as_a_whole() -> None:
    profile = {"profile_name": "team", "role_arn": role_arn("a"), "external_id": "e-1"}
    meta = {"bucket": "b-env", "key": "x.csv", "file_format": "csv"}
    cfg = ExportConfig.parse({**meta, "access_key_id": "AK", "secret_access_key": "SK"}, profile)
    assert (cfg.profile_name, cfg.access_key_id, cfg.role_arn) == (None, "AK", role_arn("a"))
    cfg = ExportConfig.parse({**meta, "role_arn": role_arn("b")}, profile)
    assert (cfg.profile_name, cfg.role_arn, cfg.external_id) == ("team", role_arn("b"), None)
    cfg = ExportConfig.parse(meta, profile)
    assert (cfg.profile_name, cfg.role_arn, cfg.external_id) == ("team", role_arn("a"), "e-1")


@pytest.mark.parametrize("option", ["access_key_id", "secret_access_key", "external_id"])
def test_a_secret_of_the_wrong_type_is_shown_as_stars(option: str) -> None:
    options: dict[str, Any] = {
        "bucket": "b-env",
        "key": "x.csv",
        "file_format": "csv",
        "access_key_id": "AKIAEXAMPLE",
        "secret_access_key": "secret-value",
        "role_arn": role_arn("r"),
        option: 987654321,
    }
    with pytest.raises(ConfigError) as info:
        ExportConfig.parse(options)
    assert "987654321" not in str(info.value)
    assert f"'{option}': must be a string, got int ***" in str(info.value)
    assert "Quote it in YAML" in str(info.value)


def test_half_a_key_pair_is_refused_without_echoing_the_half() -> None:
    with pytest.raises(ConfigError) as info:
        ExportConfig.parse(
            {
                "bucket": "b-env",
                "key": "x.csv",
                "file_format": "csv",
                "secret_access_key": SECRET_LOOKING,
            }
        )
    assert "'access_key_id': is missing while secret_access_key is set" in str(info.value)
    assert SECRET_LOOKING not in str(info.value)


def test_expired_token_is_explained() -> None:
    err = ClientError(
        {"Error": {"Code": "ExpiredToken", "Message": "The provided token has expired."}},
        "PutObject",
    )
    mapped = describe_error(err, "b-env", "write x.csv")
    assert isinstance(mapped, InvalidCredentials)
    assert "s3://b-env" in str(mapped)
    assert "the session token has expired; get fresh temporary credentials" in str(mapped)


def test_redact_scrubs_every_secret_value() -> None:
    text = f"key {SECRET_LOOKING} and {SECRET_LOOKING[:10]} and id"
    assert redact(text, [SECRET_LOOKING, SECRET_LOOKING[:10], "id"]) == "key *** and *** and id"


def test_one_credential_session_per_settings_serves_s3_glue_and_table_keys() -> None:
    settings = ConnectionSettings(
        region="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        access_key_id="AKIASESSIONSHARED000",
        secret_access_key=SECRET_LOOKING,
    )
    cache = ClientCache()
    session = cache.credentials(settings)
    assert cache.credentials(settings) is session
    client = cache.get(settings)
    # The S3 client signs with the session's credentials; Glue clients are made once.
    assert client._request_signer._credentials is session.session.get_credentials()
    config = settings.retry_config()
    glue = session.client("glue", config, region="eu-west-1")
    assert session.client("glue", config, region="eu-west-1") is glue
    assert session.client("glue", config, region="eu-west-1", tag="123") is not glue
    frozen = session.frozen()
    assert (frozen.access_key, frozen.secret_key) == ("AKIASESSIONSHARED000", SECRET_LOOKING)
    assert {"AKIASESSIONSHARED000", SECRET_LOOKING} <= set(cache.secrets())
    assert SECRET_LOOKING not in repr(session)


def test_keys_a_refreshable_source_of_the_chain_fetches_later_are_remembered() -> None:
    from botocore.credentials import RefreshableCredentials

    from dbt_s3_export.s3.credentials import _remember_refreshes

    issued = iter(range(1, 10))

    def fetch() -> dict[str, str]:
        n = next(issued)
        expiry = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
        return {
            "access_key": f"ASIAREFRESHED{n:07d}",
            "secret_key": f"refreshed-secret-{n}",
            "token": f"refreshed-token-{n}",
            "expiry_time": expiry.isoformat(),
        }

    credentials = RefreshableCredentials.create_from_metadata(fetch(), fetch, "container-role")
    remembered: list[str] = []
    _remember_refreshes(credentials, remembered.extend)
    # A minute left is inside botocore's mandatory refresh window: each read refreshes.
    frozen = credentials.get_frozen_credentials()
    assert frozen.access_key == "ASIAREFRESHED0000002"
    assert remembered == ["ASIAREFRESHED0000002", "refreshed-secret-2", "refreshed-token-2"]


# -- the engine against IAM-enforcing moto --------------------------------------------------


def test_one_client_per_credential_set_shared_by_eight_threads(cast: Cast) -> None:
    cache = ClientCache()
    start = threading.Barrier(8)
    clients: list[Any] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        start.wait()
        try:
            result = export(cache, cast, "b-env", f"threads/{i}.csv", **cast.writer.options())
            clients.append(cache.get(ConnectionSettings.of(result.config)))
            assert result.rows == 3
        except BaseException as e:  # collected and re-raised in the test thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(cache) == 1 and len({id(c) for c in clients}) == 1
    assert list_keys(cast.world.s3(), "b-env", "threads/") == [f"threads/{i}.csv" for i in range(8)]
    export(cache, cast, "b-meta", "other.csv", **cast.meta_user.options())
    assert len(cache) == 2


def test_assumed_role_credentials_refresh_before_they_expire(cast: Cast) -> None:
    cache = ClientCache()
    options = {
        **cast.writer.options(),
        "role_arn": cast.exporter_role,
        "role_session_name": "refresh-test",
    }
    export(cache, cast, "b-role", "refresh/1.csv", **options)
    assert assumed_sessions(cast.world, "refresh-test") == 1
    client = next(iter(cache._clients.values()))
    credentials = client._request_signer._credentials
    first = credentials.get_frozen_credentials().access_key
    export(cache, cast, "b-role", "refresh/2.csv", **options)
    assert assumed_sessions(cast.world, "refresh-test") == 1  # still valid: reused

    # Five minutes left is inside botocore's mandatory refresh window (ten minutes).
    credentials._expiry_time = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    export(cache, cast, "b-role", "refresh/3.csv", **options)
    assert assumed_sessions(cast.world, "refresh-test") == 2
    assert credentials.get_frozen_credentials().access_key != first
    assert list_keys(cast.world.s3(), "b-role", "refresh/") == [
        "refresh/1.csv",
        "refresh/2.csv",
        "refresh/3.csv",
    ]


def test_a_role_that_cannot_be_assumed_names_the_role_not_the_keys(cast: Cast) -> None:
    with pytest.raises(AccessDenied) as info:
        export(
            ClientCache(),
            cast,
            "b-role",
            "x.csv",
            **cast.writer.options(),
            role_arn=cast.locked_role,
        )
    message = str(info.value)
    assert f"cannot assume role {cast.locked_role}" in message
    assert "user/writer is not authorized to perform: sts:AssumeRole" in message
    assert cast.writer.secret_access_key not in message
    assert cast.writer.access_key_id not in message


def test_an_unknown_profile_is_a_clear_error(
    cast: Cast, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(InvalidCredentials, match="AWS profile 'nope' is not defined"):
        export(ClientCache(), cast, "b-profile", "x.csv", profile_name="nope")


# -- through dbt ---------------------------------------------------------------------------


def _model(project: DbtProject, name: str, options: dict[str, Any]) -> None:
    config = {"file_format": "csv", "key": f"{name}.csv", **options}
    project.model(
        name,
        f"""
        {{{{ config(post_hook="{{{{ dbt_s3_export.export_to_s3() }}}}",
                    meta={{"s3_export": {config!r}}}) }}}}
        select 1 as id, 'x' as name
        """,
    )


def _isolated_aws_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No AWS files from the machine running the tests; nothing in the environment."""
    config = tmp_path / "aws_config"
    config.write_text("")
    return {
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no_credentials"),
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        **extra,
    }


@pytest.mark.slow
def test_every_credential_source_through_dbt(cast: Cast, tmp_path: Path) -> None:
    """Environment, a named profile, an assumed role and meta keys, in one dbt run."""
    files = write_credentials_file(tmp_path / "credentials", {"exporting": cast.profile_user})
    project = DbtProject(tmp_path / "p", cast.world.endpoint, threads=4)
    project.env = _isolated_aws_env(
        tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(files), **cast.writer.env()
    )
    _model(project, "from_env", {"bucket": "b-env"})
    _model(project, "from_profile", {"bucket": "b-profile", "profile_name": "exporting"})
    _model(project, "from_role", {"bucket": "b-role", "role_arn": cast.exporter_role})
    _model(project, "from_meta", {"bucket": "b-meta", **cast.meta_user.options()})
    result = project.dbt("run")

    admin = cast.world.s3()
    for model, bucket in [
        ("from_env", "b-env"),
        ("from_profile", "b-profile"),
        ("from_role", "b-role"),
        ("from_meta", "b-meta"),
    ]:
        assert list_keys(admin, bucket, model) == [f"{model}.csv"]
    warnings = [line for line in result.output.splitlines() if "plain text" in line]
    assert len(warnings) == 1
    assert "model 'from_meta' has credentials (access_key_id, secret_access_key)" in warnings[0]


@pytest.mark.slow
def test_aws_profile_selects_the_shared_credentials_profile(cast: Cast, tmp_path: Path) -> None:
    files = write_credentials_file(
        tmp_path / "credentials", {"default": cast.meta_user, "exporting": cast.profile_user}
    )
    project = DbtProject(tmp_path / "p", cast.world.endpoint)
    project.env = _isolated_aws_env(
        tmp_path, AWS_SHARED_CREDENTIALS_FILE=str(files), AWS_PROFILE="exporting"
    )
    _model(project, "via_aws_profile", {"bucket": "b-profile"})
    project.dbt("run")
    assert list_keys(cast.world.s3(), "b-profile", "via_aws_profile") == ["via_aws_profile.csv"]


@pytest.mark.slow
def test_each_credential_failure_names_model_bucket_and_cause(cast: Cast, tmp_path: Path) -> None:
    temporary = cast.world.assume(cast.writer, cast.exporter_role)
    project = DbtProject(tmp_path / "p", cast.world.endpoint, threads=4)
    project.env = _isolated_aws_env(tmp_path, **cast.writer.env())
    wrong_secret = Keys(cast.meta_user.access_key_id, SECRET_LOOKING)
    unknown_key = Keys("AKIAUNKNOWNKEY000000", SECRET_LOOKING)
    bad_token = Keys(temporary.access_key_id, temporary.secret_access_key, "not-the-session-token")
    _model(project, "wrong_secret", {"bucket": "b-meta", **wrong_secret.options()})
    _model(project, "unknown_key", {"bucket": "b-meta", **unknown_key.options()})
    _model(project, "bad_token", {"bucket": "b-role", **bad_token.options()})
    _model(project, "denied", {"bucket": "b-locked"})
    _model(project, "locked_role", {"bucket": "b-role", "role_arn": cast.locked_role})
    _model(project, "no_profile", {"bucket": "b-profile", "profile_name": "missing"})
    result = project.dbt("run", check=False)
    assert not result.ok

    expected = {
        "wrong_secret": (
            "s3://b-meta",
            "the secret access key does not belong to the access key id",
        ),
        "unknown_key": ("s3://b-meta", "the access key id is unknown"),
        "bad_token": ("s3://b-role", "the session token is malformed or does not belong"),
        "denied": ("s3://b-locked", "access denied while trying to"),
        "locked_role": (
            "s3://b-role",
            f"cannot assume role {cast.locked_role}: User: {user_arn('writer')} is not "
            "authorized to perform: sts:AssumeRole",
        ),
        "no_profile": ("s3://b-profile", "AWS profile 'missing' is not defined"),
    }
    lines = result.output.splitlines()
    for model, (bucket, cause) in expected.items():
        failure = [line for line in lines if f"s3_export failed for model '{model}'" in line]
        assert failure, f"no failure line for {model}:\n{result.output}"
        assert f"exporting to {bucket}/{model}.csv" in failure[0]
        assert cause in failure[0], failure[0]
    for secret in (SECRET_LOOKING, temporary.secret_access_key, cast.writer.secret_access_key):
        assert secret not in result.output
