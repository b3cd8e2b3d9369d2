"""DuckDB's own S3 configuration in the profile (``settings:``, ``secrets:``) serves exports.

Real ``dbt run``s through tests/dbt_without_httpfs.py (dbt-duckdb would hand the
S3 settings and secrets to DuckDB's httpfs too, which cannot be installed here).
The AWS environment is emptied, so the run can only reach the server with the
endpoint and keys the profile gives DuckDB. moto accepts any keys, so the keys
are distinctive and every file dbt and the package wrote is searched for them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .support import REPO, DbtProject, S3Server, export_meta, exported_model, list_keys, s3_client

KEY_ID = "AKIADUCKDBPROFILE7731"
SECRET = "duckdb-profile-secret-93hf0Qx"
SECRET_KEY_ID = "AKIADUCKDBSECRET5512"
SECRET_SECRET = "duckdb-secret-entry-zz81Kp"
NO_AWS = {
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "AWS_SESSION_TOKEN": "",
    "AWS_PROFILE": "",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _dbt(project: DbtProject, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **NO_AWS,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        env.pop(name, None)
    return subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "dbt_without_httpfs.py"),
            *args,
            "--project-dir",
            str(project.root),
            "--profiles-dir",
            str(project.root),
        ],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _profile(project: DbtProject, endpoint: str) -> None:
    host = endpoint.removeprefix("http://")
    base = {"type": "duckdb", "path": str(project.database), "threads": 1}
    outputs = {
        # The plugin listed without config: dbt-duckdb hands it the settings.
        "settings": {
            **base,
            "settings": {
                "TimeZone": "Europe/Paris",
                "threads": 2,
                "s3_region": "eu-west-1",
                "s3_endpoint": host,
                "s3_use_ssl": False,
                "s3_url_style": "path",
                "s3_access_key_id": KEY_ID,
                "s3_secret_access_key": SECRET,
            },
            "plugins": [{"module": "dbt_s3_export"}],
        },
        # A secret of type s3, with settings that are not about S3 and a plugin config.
        "secrets": {
            **base,
            "settings": {"TimeZone": "Europe/Paris"},
            "secrets": [
                {"type": "gcs", "key_id": "not-for-s3", "secret": "not-for-s3"},
                {
                    "type": "s3",
                    "key_id": SECRET_KEY_ID,
                    "secret": SECRET_SECRET,
                    "region": "us-east-1",
                    "endpoint": host,
                    "use_ssl": False,
                    "url_style": "path",
                },
            ],
            "plugins": [{"module": "dbt_s3_export", "config": {"batch_size": 50_000}}],
        },
    }
    profile = {"export_test": {"target": "settings", "outputs": outputs}}
    (project.root / "profiles.yml").write_text(yaml.safe_dump(profile))


def test_profile_settings_and_secrets_reach_s3(
    s3_server: S3Server, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if s3_server.name != "moto":
        pytest.skip("needs a server that takes any keys (moto): the keys must be distinctive")
    s3 = s3_client(s3_server.endpoint)
    s3.create_bucket(Bucket="duckdb-profile")
    project = DbtProject(tmp_path / "p", s3_server.endpoint)
    _profile(project, s3_server.endpoint)
    project.model(
        "orders",
        exported_model(
            export_meta("duckdb-profile", "orders/", "csv"),
            "select range as id, timestamp '2024-01-01 12:00:00' as at from range(3)",
        ),
    )
    project.model(
        "broken", exported_model(export_meta("no-such-bucket-here", "b/", "csv"), "select 1 as id")
    )
    outputs: dict[str, Any] = {}
    for target in ("settings", "secrets"):
        result = _dbt(project, "run", "--target", target)
        outputs[target] = result.stdout + result.stderr
        assert result.returncode == 1, outputs[target]  # the broken model only
        assert "1 of 2 OK" in outputs[target] or "OK created" in outputs[target], outputs[target]
        assert "no-such-bucket-here" in outputs[target]
        keys = [k for k in list_keys(s3, "duckdb-profile", "orders/") if k.endswith(".csv")]
        assert len(keys) == 1
    written = "\n".join(outputs.values())
    for path in [
        *project.root.joinpath("logs").rglob("*"),
        *project.root.joinpath("target").rglob("*"),
    ]:
        if path.is_file():
            written += path.read_text(errors="replace")
    for secret in (KEY_ID, SECRET, SECRET_KEY_ID, SECRET_SECRET):
        assert secret not in written


def test_plugin_takes_profile_settings_apart() -> None:
    """What dbt-duckdb 1.11 hands initialize(): the settings merged beneath the config."""
    from types import SimpleNamespace

    from dbt_common.exceptions import DbtRuntimeError

    from dbt_s3_export.plugin import Plugin

    settings = {"TimeZone": "UTC", "memory_limit": "1GB", "s3_region": "eu-west-1"}
    creds = SimpleNamespace(settings=settings, secrets=[], _secrets=[])
    plugin = Plugin("dbt_s3_export", {**settings, "batch_size": 50_000}, credentials=creds)
    defaults = plugin._defaults_for({"bucket": "abc", "key": "k/", "file_format": "csv"})
    assert defaults == {"region": "eu-west-1", "batch_size": 50_000}
    with pytest.raises(DbtRuntimeError, match=r"option 'bukcet': unknown option\. Did you mean"):
        Plugin("dbt_s3_export", {**settings, "bukcet": "x"}, credentials=creds)
    # A fault in DuckDB's own S3 configuration fails the exports, not every dbt command.
    broken = SimpleNamespace(settings={"s3_access_key_id": "AKIAONLYHALF"}, secrets=[])
    plugin = Plugin("dbt_s3_export", dict(broken.settings), credentials=broken)
    with pytest.raises(Exception, match="s3_secret_access_key': is missing while s3_access_key_id"):
        plugin._defaults_for({"bucket": "abc", "key": "k/"})
