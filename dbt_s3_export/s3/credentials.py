"""boto3 clients, one per distinct set of connection settings, shared across exports.

With no keys configured boto3's own chain decides (environment, shared files
and ``AWS_PROFILE``, SSO, web identity, container and instance roles). A
``role_arn`` is assumed on top of whatever the base credentials are, with
credentials that botocore refreshes before they expire, so a run that outlasts
the role session keeps working.

Nothing here ever puts a credential into a message: failures name the profile
or the role, and ``redact`` (s3/redaction.py) scrubs known secret values out of any
text as a last line of defence.

Every request has the deadlines of ``s3/deadlines.py``, STS calls for a role included.

One ``CredentialSession`` per set of settings serves everything an export talks to
S3 and Glue with: the export's S3 client, Glue clients, and the keys handed to
pyarrow, delta-rs and pyiceberg (``CredentialSession.frozen``). A role is therefore
assumed once, and every key, secret and token the session yields, after a refresh
too, is remembered for ``redact``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials, RefreshableCredentials
from botocore.exceptions import ProfileNotFound

from ..errors import InvalidCredentials, S3ExportError
from ..options.config import SECRET_OPTIONS, Checksums, ExportConfig
from .deadlines import CONNECT_TIMEOUT, READ_TIMEOUT, TOTAL_TIMEOUT, Deadlines, Timeouts
from .error_table import AssumeRole
from .expect import send_small_bodies_at_once
from .redaction import redact, secret_forms, url_secrets
from .timestamps import read_timestamps_quickly
from .translate import translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

__all__ = [
    "ClientCache",
    "ConnectionSettings",
    "CredentialSession",
    "S3Client",
    "redact",
    "secret_forms",
    "url_secrets",
]

DEFAULT_SESSION_NAME = "dbt-s3-export"
# One client serves every dbt thread that exports with the same credentials, so
# its connection pool is sized for several exports uploading at once.
MAX_POOL_CONNECTIONS = 64


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
    connect_timeout: float = CONNECT_TIMEOUT
    read_timeout: float = READ_TIMEOUT
    total_timeout: float = TOTAL_TIMEOUT
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
    def timeouts(self) -> Timeouts:
        return Timeouts(self.connect_timeout, self.read_timeout, self.total_timeout)

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

    def retry_config(self) -> Config:
        """Retries and timeouts, the same for S3 and STS.

        Transient faults (503 SlowDown, 500, resets, timeouts) are retried with
        jittered backoff; a persistent one fails the request after at most
        ``Timeouts.attempts`` tries, each bounded by the timeouts, and all of them
        within total_timeout (see s3/deadlines.py).
        """
        timeouts = self.timeouts
        return Config(
            region_name=self.region,
            retries={"mode": "standard", "total_max_attempts": timeouts.attempts},
            connect_timeout=timeouts.connect,
            read_timeout=timeouts.read,
        )

    def botocore_config(self) -> Config:
        return self.retry_config().merge(
            Config(
                max_pool_connections=self.max_pool_connections,
                s3=cast(Any, {"addressing_style": self.addressing_style}),
                request_checksum_calculation=self.checksum_calculation,
                user_agent_extra="dbt-s3-export",
            )
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

    def session(
        self,
        deadlines: Deadlines | None = None,
        remember: Callable[[Iterable[str]], None] | None = None,
    ) -> boto3.Session:
        """The boto3 session; a role's STS calls get ``deadlines``, its keys go to ``remember``."""
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
        return self._assumed(base, deadlines or Deadlines(self.timeouts), remember or _ignore)

    def _assumed(
        self,
        base: boto3.Session,
        deadlines: Deadlines,
        remember: Callable[[Iterable[str]], None],
    ) -> boto3.Session:
        """A session whose credentials come from AssumeRole, fetched on first use and refreshed."""
        role_arn = str(self.role_arn)
        request = AssumeRole(role_arn, self.describe_base())
        try:
            sts = base.client("sts", endpoint_url=self.endpoint_url, config=self.retry_config())
        except Exception as e:
            raise translate(e, request) from None
        deadlines.install(sts)
        params: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": self.role_session_name or DEFAULT_SESSION_NAME,
        }
        if self.external_id:
            params["ExternalId"] = self.external_id

        def refresh() -> dict[str, str]:
            try:
                creds = sts.assume_role(**params)["Credentials"]
            except Exception as e:
                # Raised from inside an S3 request's signing; ours passes through untouched.
                raise translate(e, request) from None
            remember([creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]])
            # The base keys too, as boto3's chain found them for this call (configured
            # ones are remembered already).
            remember(_resolved_keys(base))
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


def _ignore(values: Iterable[str]) -> None:
    """Where a session built outside ``ClientCache`` sends the keys it fetches."""


def _resolved_keys(session: boto3.Session) -> list[str]:
    """The keys boto3's chain found for ``session`` (not a role's: those are fetched later)."""
    with contextlib.suppress(Exception):
        credentials = session.get_credentials()
        if credentials is None or isinstance(credentials, DeferredRefreshableCredentials):
            return []
        frozen = credentials.get_frozen_credentials()
        return [v for v in (frozen.access_key, frozen.secret_key, frozen.token) if v]
    return []


def _remember_refreshes(credentials: Any, remember: Callable[[Iterable[str]], None]) -> None:
    """Send the keys every later refresh of ``credentials`` fetches to ``remember`` too.

    For refreshable credentials of boto3's chain (a profile's role, SSO, a container
    role): a role of our own remembers its keys in its refresh already. botocore keeps
    the refresh function in a private attribute; without it nothing is wrapped, and
    ``CredentialSession.frozen`` still remembers every key it hands out.
    """
    fetch = getattr(credentials, "_refresh_using", None)
    if not isinstance(credentials, RefreshableCredentials) or not callable(fetch):
        return

    def refresh() -> Any:
        metadata = fetch()
        if isinstance(metadata, dict):
            remember(
                str(metadata[k]) for k in ("access_key", "secret_key", "token") if metadata.get(k)
            )
        return metadata

    credentials._refresh_using = refresh  # type: ignore[attr-defined]


class CredentialSession:
    """One boto3 session for a set of settings, shared by every client and library using it.

    boto3 sessions are not thread-safe, so clients are made under a lock; the clients
    and the refreshable credentials are. Everything the session yields goes to
    ``remember``.
    """

    def __init__(
        self,
        settings: ConnectionSettings,
        remember: Callable[[Iterable[str]], None] | None = None,
        deadlines: Deadlines | None = None,
    ) -> None:
        self.settings = settings
        # One endpoint's silence is known to the S3 client and the role's STS calls alike.
        self.deadlines = deadlines or Deadlines(settings.timeouts)
        self._remember = remember or _ignore
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str | None, str | None, str | None], Any] = {}
        try:
            self.session = settings.session(self.deadlines, self._remember)
            read_timestamps_quickly(self.session)
            # boto3's chain resolves here; a role's keys are fetched on first use.
            self.session.get_credentials()
        except S3ExportError:
            raise
        except Exception as e:
            raise _setup_failed(settings, e) from None
        found = _resolved_keys(self.session)
        self._remember(settings.secrets() + url_secrets(settings.endpoint_url) + found)
        if any(value != value.strip() for value in found):
            raise InvalidCredentials(
                f"the credentials from {settings.describe_source()} begin or end with "
                "whitespace, such as the newline of a file they were read from (values not "
                "shown). Remove it where they are set",
                code="InvalidCredentials",
            )
        if not settings.role_arn:
            _remember_refreshes(self.session.get_credentials(), self._remember)

    def __repr__(self) -> str:
        return f"CredentialSession({self.settings!r})"

    def client(
        self,
        service: str,
        config: Config,
        region: str | None = None,
        endpoint_url: str | None = None,
        tag: str | None = None,
        prepare: Callable[[Any], None] | None = None,
    ) -> Any:
        """The session's client for ``service`` (made once per region, endpoint and ``tag``)."""
        key = (service, region, endpoint_url, tag)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                try:
                    client = self.session.client(
                        cast(Any, service),
                        region_name=region,
                        endpoint_url=endpoint_url,
                        config=config,
                    )
                except S3ExportError:
                    raise
                except Exception as e:
                    raise _setup_failed(self.settings, e) from None
                if prepare is not None:
                    prepare(client)
                self._clients[key] = client
            return client

    def frozen(self) -> Any:
        """The keys in use now (a role's assumed first if it was not yet), remembered.

        For libraries that take static keys (pyarrow, delta-rs): botocore refreshes a
        role's keys when less than 15 minutes are left, so these hold at least that long.
        """
        settings = self.settings
        try:
            credentials = self.session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials else None
        except S3ExportError:
            raise
        except Exception as e:  # botocore's credential providers raise many kinds
            raise InvalidCredentials(
                f"cannot get S3 credentials from {settings.describe_source()}: {type(e).__name__}",
                code=type(e).__name__,
            ) from None
        if frozen is None or not frozen.access_key or not frozen.secret_key:
            raise InvalidCredentials(
                f"no S3 credentials found ({settings.describe_source()}). Configure "
                "access_key_id and secret_access_key, a profile_name, or the standard AWS "
                "environment variables",
                code="NoCredentials",
            )
        self._remember(v for v in (frozen.access_key, frozen.secret_key, frozen.token) if v)
        return frozen


def _setup_failed(settings: ConnectionSettings, e: Exception) -> InvalidCredentials:
    """e.g. a profile that names an SSO session or a process that fails to load."""
    message = redact(" ".join(str(e).split()), settings.secrets())
    return InvalidCredentials(
        f"cannot set up S3 credentials from {settings.describe_source()}: {message}",
        code=type(e).__name__,
    )


class ClientCache:
    """Thread-safe cache of credential sessions and their S3 clients, one per settings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[ConnectionSettings, CredentialSession] = {}
        self._clients: dict[ConnectionSettings, S3Client] = {}
        self._secrets_lock = threading.Lock()
        self._secrets: set[str] = set()

    def credentials(self, settings: ConnectionSettings) -> CredentialSession:
        """The one session of ``settings``: S3, Glue and the table writers all use it."""
        with self._lock:
            return self._credentials(settings)

    def _credentials(self, settings: ConnectionSettings) -> CredentialSession:
        session = self._sessions.get(settings)
        if session is None:
            session = CredentialSession(settings, self._remember)
            self._sessions[settings] = session
        return session

    def get(self, settings: ConnectionSettings) -> S3Client:
        with self._lock:
            client = self._clients.get(settings)
            if client is None:
                session = self._credentials(settings)
                client = session.client(
                    "s3", settings.botocore_config(), endpoint_url=settings.endpoint_url
                )
                session.deadlines.install(client)
                send_small_bodies_at_once(client)
                self._clients[settings] = client
            return cast(S3Client, client)

    def _remember(self, values: Iterable[str]) -> None:
        with self._secrets_lock:
            self._secrets.update(v for v in values if v)

    def secrets(self) -> list[str]:
        """Every credential the sessions were given, found or fetched, for ``redact``."""
        with self._secrets_lock:
            return sorted(self._secrets)

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()
            self._sessions.clear()
