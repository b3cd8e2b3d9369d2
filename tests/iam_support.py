"""A moto server that enforces IAM: signatures, user policies and role trust.

moto checks every request once ``INITIAL_NO_AUTH_ACTION_COUNT`` unauthenticated
requests have been served. ``IamWorld`` spends exactly those on creating an
admin user, then builds users, roles and buckets with the admin's keys, so the
tests see the same refusals real AWS would give.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from .support import MotoServer

ACCOUNT = "123456789012"
# create_user, put_user_policy, create_access_key: the admin's own setup.
SETUP_ACTIONS = 3
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


@dataclass(frozen=True)
class Keys:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def env(self) -> dict[str, str]:
        """As the standard AWS environment variables."""
        env = {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }
        env["AWS_SESSION_TOKEN"] = self.session_token or ""
        return env

    def options(self) -> dict[str, str]:
        """As s3_export options."""
        out = {"access_key_id": self.access_key_id, "secret_access_key": self.secret_access_key}
        if self.session_token:
            out["session_token"] = self.session_token
        return out

    def credentials_file_section(self, profile: str) -> str:
        return (
            f"[{profile}]\naws_access_key_id = {self.access_key_id}\n"
            f"aws_secret_access_key = {self.secret_access_key}\n"
        )


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def bucket_policy(buckets: Sequence[str], actions: Sequence[str] = ("s3:*",)) -> dict[str, Any]:
    resources = [f"arn:aws:s3:::{b}" for b in buckets] + [f"arn:aws:s3:::{b}/*" for b in buckets]
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resources}],
    }


class IamWorld:
    """Users, roles and buckets on an IAM-enforcing moto server."""

    def __init__(self) -> None:
        self.server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS)})
        self.admin: Keys | None = None

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def start(self) -> IamWorld:
        self.server.start()
        iam = self._client("iam", Keys("setup", "setup"))
        iam.create_user(UserName="admin")
        iam.put_user_policy(
            UserName="admin", PolicyName="all", PolicyDocument=json.dumps(ALLOW_ALL)
        )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        self.admin = Keys(key["AccessKeyId"], key["SecretAccessKey"])
        return self

    def stop(self) -> None:
        self.server.stop()

    def _client(self, service: str, keys: Keys | None = None) -> Any:
        keys = keys or self.admin
        assert keys is not None
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            aws_session_token=keys.session_token,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def s3(self, keys: Keys | None = None) -> Any:
        """An S3 client with ``keys`` (the admin's by default)."""
        return self._client("s3", keys)

    def bucket(self, name: str) -> str:
        self.s3().create_bucket(Bucket=name)
        return name

    def user(self, name: str, policy: dict[str, Any] | None = None) -> Keys:
        """A user with ``policy`` inline (none: the user may do nothing) and one access key."""
        iam = self._client("iam")
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Keys(key["AccessKeyId"], key["SecretAccessKey"])

    def role(
        self,
        name: str,
        trusted: Sequence[str],
        policy: dict[str, Any],
        external_id: str | None = None,
    ) -> str:
        """A role the principals ``trusted`` may assume, allowed what ``policy`` says."""
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"AWS": list(trusted)},
            "Action": "sts:AssumeRole",
        }
        if external_id is not None:
            statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
        iam = self._client("iam")
        iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [statement]}
            ),
        )
        iam.put_role_policy(RoleName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        return role_arn(name)

    def assume(self, keys: Keys, arn: str) -> Keys:
        creds = self._client("sts", keys).assume_role(RoleArn=arn, RoleSessionName="tests")
        c = creds["Credentials"]
        return Keys(c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"])


def may_assume(role_arns: Sequence[str]) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": list(role_arns),
    }


def with_statements(policy: dict[str, Any], *statements: dict[str, Any]) -> dict[str, Any]:
    return {**policy, "Statement": [*policy["Statement"], *statements]}


def write_credentials_file(path: Path, sections: dict[str, Keys]) -> Path:
    path.write_text("\n".join(k.credentials_file_section(p) for p, k in sections.items()))
    return path


@pytest.fixture(scope="module")
def iam_world() -> Iterator[IamWorld]:
    world = IamWorld().start()
    yield world
    world.stop()


def assumed_sessions(world: IamWorld, session_name: str) -> int:
    """How many times STS handed out credentials for ``session_name``."""
    import urllib.request

    with urllib.request.urlopen(world.endpoint + "/moto-api/data.json", timeout=10) as r:
        data = json.loads(r.read())
    roles = data.get("sts", {}).get("AssumedRole", [])
    return sum(1 for r in roles if r.get("session_name") == session_name)
