"""boto3 clients, one per distinct set of connection settings, shared across exports.

With no keys configured boto3's own chain decides (environment, shared files
and ``AWS_PROFILE``, SSO, web identity, container and instance roles). A
``role_arn`` is assumed on top of whatever the base credentials are, with
credentials that botocore refreshes before they expire.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import RefreshableCredentials

from .config import ExportConfig

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

DEFAULT_SESSION_NAME = "dbt-s3-export"
# Retry and timeout bounds of every S3 request (seconds).
MAX_ATTEMPTS = 5
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 60


@dataclass(frozen=True)
class ConnectionSettings:
    """What identifies a client: two exports with equal settings share one."""

    region: str | None = None
    endpoint_url: str | None = None
    path_style: bool | None = None
    profile_name: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    role_session_name: str | None = None
    max_pool_connections: int = 10

    def __repr__(self) -> str:  # never show credentials
        return (
            f"ConnectionSettings(region={self.region!r}, endpoint_url={self.endpoint_url!r}, "
            f"profile_name={self.profile_name!r}, role_arn={self.role_arn!r})"
        )

    @classmethod
    def of(cls, cfg: ExportConfig) -> ConnectionSettings:
        return cls(
            region=cfg.region,
            endpoint_url=cfg.endpoint_url,
            path_style=cfg.path_style,
            profile_name=cfg.profile_name,
            access_key_id=cfg.access_key_id,
            secret_access_key=cfg.secret_access_key,
            session_token=cfg.session_token,
            role_arn=cfg.role_arn,
            external_id=cfg.external_id,
            role_session_name=cfg.role_session_name,
            max_pool_connections=max(10, cfg.max_concurrency * 2 + 2),
        )

    @property
    def addressing_style(self) -> str:
        path_style = self.path_style if self.path_style is not None else bool(self.endpoint_url)
        return "path" if path_style else "auto"

    def botocore_config(self) -> Config:
        # Transient faults (503 SlowDown, 500, resets, timeouts) are retried with
        # jittered backoff; a persistent one fails the export after at most
        # MAX_ATTEMPTS tries of one request, each bounded by the timeouts.
        return Config(
            region_name=self.region,
            retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            max_pool_connections=self.max_pool_connections,
            s3=cast(Any, {"addressing_style": self.addressing_style}),
            user_agent_extra="dbt-s3-export",
        )

    def session(self) -> boto3.Session:
        base = boto3.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=self.region,
            profile_name=self.profile_name,
        )
        if not self.role_arn:
            return base
        return self._assumed(base)

    def _assumed(self, base: boto3.Session) -> boto3.Session:
        sts = base.client(
            "sts",
            endpoint_url=self.endpoint_url,
            config=Config(region_name=self.region, retries={"mode": "standard"}),
        )
        params: dict[str, Any] = {
            "RoleArn": self.role_arn,
            "RoleSessionName": self.role_session_name or DEFAULT_SESSION_NAME,
        }
        if self.external_id:
            params["ExternalId"] = self.external_id

        def refresh() -> dict[str, str]:
            creds = sts.assume_role(**params)["Credentials"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        refreshable = RefreshableCredentials.create_from_metadata(
            metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
        )
        core = botocore.session.get_session()
        core._credentials = refreshable  # type: ignore[attr-defined]
        return boto3.Session(botocore_session=core, region_name=self.region)


class ClientCache:
    """Thread-safe cache of S3 clients (boto3 clients are thread-safe; sessions are not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[ConnectionSettings, S3Client] = {}

    def get(self, settings: ConnectionSettings) -> S3Client:
        with self._lock:
            client = self._clients.get(settings)
            if client is None:
                client = settings.session().client(
                    "s3", endpoint_url=settings.endpoint_url, config=settings.botocore_config()
                )
                self._clients[settings] = client
            return client

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()
