"""boto3 clients, one per distinct set of connection settings, shared across exports.

With no keys configured boto3's own chain decides (environment, shared files
and ``AWS_PROFILE``, SSO, web identity, container and instance roles). A
``role_arn`` is assumed on top of whatever the base credentials are, with
credentials that botocore refreshes before they expire, so a run that outlasts
the role session keeps working.

Nothing here ever puts a credential into a message: failures name the profile
or the role, and ``redact`` scrubs known secret values out of any text as a
last line of defence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ProfileNotFound,
)

from .config import SECRET_OPTIONS, Checksums, ExportConfig
from .errors import (
    AccessDenied,
    EndpointUnreachable,
    InvalidCredentials,
    S3ExportError,
    TransferError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

__all__ = ["ClientCache", "ConnectionSettings", "S3Client", "describe_sts_error", "redact"]

DEFAULT_SESSION_NAME = "dbt-s3-export"
# Retry and timeout bounds of every S3 request (seconds).
MAX_ATTEMPTS = 5
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 60
# One client serves every dbt thread that exports with the same credentials, so
# its connection pool is sized for several exports uploading at once.
MAX_POOL_CONNECTIONS = 64
REDACTED = "***"
# Shorter values are not scrubbed from text: they would mangle ordinary words.
_MIN_REDACT_LENGTH = 4

_REJECTED_CODES = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidToken",
    "TokenRefreshRequired",
}


@dataclass(frozen=True)
class ConnectionSettings:
    """What identifies a client: two exports with equal settings share one."""

    region: str | None = None
    endpoint_url: str | None = None
    path_style: bool | None = None
    checksums: Checksums | None = None
    profile_name: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    role_session_name: str | None = None
    max_pool_connections: int = MAX_POOL_CONNECTIONS

    def __repr__(self) -> str:  # never show credentials
        keys = "explicit keys" if self.access_key_id else "default chain"
        return (
            f"ConnectionSettings(region={self.region!r}, endpoint_url={self.endpoint_url!r}, "
            f"profile_name={self.profile_name!r}, role_arn={self.role_arn!r}, {keys})"
        )

    @classmethod
    def of(cls, cfg: ExportConfig) -> ConnectionSettings:
        """The export's connection options; every field but the pool size is named alike."""
        names = [f.name for f in fields(cls) if f.name != "max_pool_connections"]
        return cls(**{name: getattr(cfg, name) for name in names})

    def secrets(self) -> list[str]:
        """The secret values these settings carry, for ``redact``."""
        return [v for name in SECRET_OPTIONS if isinstance(v := getattr(self, name), str)]

    @property
    def addressing_style(self) -> str:
        """Path style by default for custom endpoints (MinIO and friends), else boto3's choice."""
        if self.path_style is None:
            return "path" if self.endpoint_url else "auto"
        return "path" if self.path_style else "virtual"

    @property
    def checksum_calculation(self) -> Checksums:
        """CRC32 checksums on uploads: botocore's default on AWS, only where required elsewhere.

        Many S3-compatible stores reject the checksums botocore sends by default, and
        the bytes are covered anyway: by TLS over https, by the SHA-256 payload
        signature over plain http.
        """
        if self.checksums is None:
            return "when_required" if self.endpoint_url else "when_supported"
        return self.checksums

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
            request_checksum_calculation=self.checksum_calculation,
            user_agent_extra="dbt-s3-export",
        )

    def describe_base(self) -> str:
        """Where the base (pre-AssumeRole) credentials come from, in words safe to show."""
        if self.access_key_id:
            return "the configured access_key_id/secret_access_key"
        if self.profile_name:
            return f"AWS profile '{self.profile_name}'"
        return "boto3's default credential chain (environment, AWS_PROFILE, instance role...)"

    def describe_source(self) -> str:
        """Where the credentials in use come from, in words safe to show."""
        base = self.describe_base()
        return f"role {self.role_arn} assumed with {base}" if self.role_arn else base

    def session(self) -> boto3.Session:
        try:
            base = boto3.Session(
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                aws_session_token=self.session_token,
                region_name=self.region,
                profile_name=self.profile_name,
            )
        except ProfileNotFound as e:
            named = (
                f"'{self.profile_name}'"
                if self.profile_name
                else f"'{e.kwargs.get('profile')}' (from AWS_PROFILE)"
            )
            raise InvalidCredentials(
                f"AWS profile {named} is not defined in the shared config or "
                "credentials files (~/.aws/config, ~/.aws/credentials, or the files "
                "AWS_CONFIG_FILE/AWS_SHARED_CREDENTIALS_FILE point to). Add it or fix "
                "'profile_name'",
                code="ProfileNotFound",
            ) from None
        if not self.role_arn:
            return base
        return self._assumed(base)

    def _assumed(self, base: boto3.Session) -> boto3.Session:
        """A session whose credentials come from AssumeRole, fetched on first use and refreshed."""
        role_arn = str(self.role_arn)
        try:
            sts = base.client(
                "sts",
                endpoint_url=self.endpoint_url,
                config=Config(region_name=self.region, retries={"mode": "standard"}),
            )
        except BotoCoreError as e:
            raise describe_sts_error(e, role_arn, self) from None
        params: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": self.role_session_name or DEFAULT_SESSION_NAME,
        }
        if self.external_id:
            params["ExternalId"] = self.external_id

        def refresh() -> dict[str, str]:
            try:
                creds = sts.assume_role(**params)["Credentials"]
            except (ClientError, BotoCoreError) as e:
                # Raised from inside an S3 request's signing; ours passes through untouched.
                raise describe_sts_error(e, role_arn, self) from None
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        # Deferred: nothing is fetched until the first request, so building the
        # client under the cache lock never waits on STS.
        credentials = DeferredRefreshableCredentials(refresh, method="assume-role")
        core = botocore.session.get_session()
        # botocore has no public setter for refreshable credentials.
        core._credentials = credentials  # type: ignore[attr-defined]
        return boto3.Session(botocore_session=core, region_name=self.region)


class _QuietOwnRefreshFailures(logging.Filter):
    """Drop botocore's traceback for an AssumeRole refresh we already turned into our error.

    The error itself still propagates and is reported once, with the model and bucket.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, S3ExportError)


logging.getLogger("botocore.credentials").addFilter(_QuietOwnRefreshFailures())


def describe_sts_error(
    err: Exception, role_arn: str, settings: ConnectionSettings
) -> TransferError:
    """Map a failed AssumeRole to our error: names the role and the cause, never a key."""
    base = settings.describe_base()
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", "Unknown"))
        message = str(err.response.get("Error", {}).get("Message", "")) or code
        if code in ("AccessDenied", "AccessDeniedException"):
            return AccessDenied(
                f"cannot assume role {role_arn}: {message}. The role's trust policy must "
                f"let the base credentials ({base}) call sts:AssumeRole, their policy must "
                "allow it, and external_id must match what the role requires",
                code=code,
            )
        if code in _REJECTED_CODES:
            return InvalidCredentials(
                f"cannot assume role {role_arn}: STS rejected the base credentials "
                f"({code}: {message}). Check {base}",
                code=code,
            )
        return TransferError(f"cannot assume role {role_arn}: {code}: {message}", code=code)
    if isinstance(err, NoCredentialsError):
        return InvalidCredentials(
            f"cannot assume role {role_arn}: no base credentials found to call STS with. "
            "Configure access_key_id and secret_access_key, a profile_name, or the standard "
            "AWS environment variables",
            code="NoCredentials",
        )
    if isinstance(err, (EndpointConnectionError, ConnectTimeoutError)):
        return EndpointUnreachable(
            f"cannot assume role {role_arn}: the STS endpoint is unreachable ({err}). "
            "Check endpoint_url/region and the network",
            retryable=True,
        )
    return TransferError(f"cannot assume role {role_arn}: {type(err).__name__}: {err}")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of a secret value replaced by ``***``."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= _MIN_REDACT_LENGTH:
            text = text.replace(secret, REDACTED)
    return text


class ClientCache:
    """Thread-safe cache of S3 clients (boto3 clients are thread-safe; sessions are not)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[ConnectionSettings, S3Client] = {}

    def get(self, settings: ConnectionSettings) -> S3Client:
        with self._lock:
            client = self._clients.get(settings)
            if client is None:
                client = self._create(settings)
                self._clients[settings] = client
            return client

    @staticmethod
    def _create(settings: ConnectionSettings) -> S3Client:
        try:
            return settings.session().client(
                "s3", endpoint_url=settings.endpoint_url, config=settings.botocore_config()
            )
        except S3ExportError:
            raise
        except BotoCoreError as e:
            # e.g. a profile that names an SSO session or a process that fails to load.
            message = redact(str(e), settings.secrets())
            raise InvalidCredentials(
                f"cannot set up S3 credentials from {settings.describe_source()}: {message}",
                code=type(e).__name__,
            ) from None

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()
