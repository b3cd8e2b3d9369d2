"""DuckDB's own S3 configuration in the dbt-duckdb profile, as defaults for exports.

A dbt-duckdb user often has S3 access set up for DuckDB already: in the
profile's ``settings`` (``s3_region``, ``s3_endpoint``, ``s3_access_key_id``,
``s3_secret_access_key``, ``s3_session_token``, ``s3_url_style``, ``s3_use_ssl``)
or in a ``secrets:`` entry of type ``s3``. Exports take those as defaults beneath
the plugin's own config (and a model's meta above both), the way DuckDB would
pick them for the same ``s3://`` path: the secret whose scope is the longest
prefix of the destination, and the settings only when no secret applies.

dbt-duckdb 1.11 hands every plugin the profile's ``settings`` merged beneath its
``config`` (``initialize_plugins``), or the settings alone when the plugin has
no ``config``; the plugin reads the settings and secrets from its credentials
(``BasePlugin.creds``) to tell them apart. Other DuckDB settings (``TimeZone``,
``threads``...) are not export options and are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

SETTINGS_WHERE = "profiles.yml settings"
# DuckDB setting (after "s3_") -> export option, for the settings that map one to one.
_SETTING_OPTIONS = {
    "region": "region",
    "access_key_id": "access_key_id",
    "secret_access_key": "secret_access_key",
    "session_token": "session_token",
}
# s3 secret parameter -> export option.
_SECRET_OPTIONS = {
    "region": "region",
    "key_id": "access_key_id",
    "secret": "secret_access_key",
    "session_token": "session_token",
    "profile": "profile_name",
}
_SECRET_VALUES = ("access_key_id", "secret_access_key", "session_token")
_DEFAULT_SCOPES = ("s3://", "s3a://", "s3n://")


def _flag(value: Any, context: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(context, name, f"must be true or false, got {value!r}")


def _endpoint(host: str, use_ssl: bool) -> dict[str, Any]:
    """DuckDB's endpoint (a host, no scheme) as endpoint_url; AWS's own hosts as a region."""
    host = host.strip().rstrip("/")
    bare = host.split("://", 1)[-1]
    if bare.endswith(".amazonaws.com"):
        # s3.amazonaws.com is DuckDB's default; s3.<region>.amazonaws.com names the region.
        parts = bare.split(".")
        region = parts[1] if len(parts) == 4 and parts[0] == "s3" else None
        return {"region": region} if region else {}
    if "://" in host:
        return {"endpoint_url": host}
    return {"endpoint_url": f"{'https' if use_ssl else 'http'}://{host}"}


def _options(
    values: Mapping[str, Any], names: Mapping[str, str], prefix: str, context: str
) -> dict[str, Any]:
    """One settings block or secret as export options."""
    options: dict[str, Any] = {}
    for name, option in names.items():
        value = values.get(prefix + name)
        if value is not None and value != "":
            options[option] = str(value)
    endpoint = values.get(prefix + "endpoint")
    use_ssl = values.get(prefix + "use_ssl")
    ssl = True if use_ssl is None else _flag(use_ssl, context, prefix + "use_ssl")
    if endpoint:
        for option, value in _endpoint(str(endpoint), ssl).items():
            options.setdefault(option, value)
    style = values.get(prefix + "url_style")
    if style:
        if str(style).lower() not in ("path", "vhost"):
            problem = f"must be path or vhost, got {style!r}"
            raise ConfigError(context, prefix + "url_style", problem)
        options["path_style"] = str(style).lower() == "path"
    has_id = "access_key_id" in options
    if has_id != ("secret_access_key" in options):
        duckdb_name = {option: prefix + name for name, option in names.items()}
        given, missing = ("access_key_id", "secret_access_key")[:: 1 if has_id else -1]
        raise ConfigError(
            context,
            duckdb_name[missing],
            f"is missing while {duckdb_name[given]} is set",
            "Give both, or neither to use the AWS credential chain",
        )
    return options


@dataclass(frozen=True)
class _Secret:
    scopes: tuple[str, ...]
    options: dict[str, Any]


@dataclass(frozen=True)
class DuckDBS3Config:
    """The S3 parts of a dbt-duckdb profile, ready to lay beneath the plugin config."""

    settings: dict[str, Any] = field(default_factory=dict)
    secrets: tuple[_Secret, ...] = ()

    @classmethod
    def from_profile(
        cls, settings: Mapping[str, Any] | None, secrets: Sequence[Mapping[str, Any]] = ()
    ) -> DuckDBS3Config:
        lowered = {str(k).lower(): v for k, v in (settings or {}).items()}
        parsed = []
        for i, secret in enumerate(secrets):
            entry = {str(k).lower(): v for k, v in secret.items()}
            if str(entry.get("type", "")).lower() != "s3":
                continue  # gcs, r2, azure, huggingface... are not for s3:// paths
            name = entry.get("name") or f"#{i + 1}"
            context = f"profiles.yml secrets entry {name}"
            scope = entry.get("scope")
            scopes = (scope,) if isinstance(scope, str) else tuple(scope or _DEFAULT_SCOPES)
            parsed.append(_Secret(scopes, _options(entry, _SECRET_OPTIONS, "", context)))
        return cls(_options(lowered, _SETTING_OPTIONS, "s3_", SETTINGS_WHERE), tuple(parsed))

    def defaults_for(self, destination: str | None) -> dict[str, Any]:
        """The options DuckDB would use for ``destination`` (``s3://bucket/key``)."""
        best: _Secret | None = None
        best_length = -1
        for secret in self.secrets:
            for scope in secret.scopes:
                fits = (
                    scope in _DEFAULT_SCOPES
                    if destination is None
                    else (destination.startswith(scope))
                )
                if fits and len(scope) > best_length:
                    best, best_length = secret, len(scope)
        return dict(best.options if best is not None else self.settings)

    def secret_values(self) -> list[str]:
        """Every credential value in here, for scrubbing messages."""
        found = []
        for options in [self.settings, *(s.options for s in self.secrets)]:
            found += [str(options[name]) for name in _SECRET_VALUES if name in options]
        return found


def destination_of(options: Mapping[str, Any]) -> str | None:
    """``s3://bucket/key`` of an export's raw options, if they say (``to`` or bucket + key)."""
    to = options.get("to")
    if isinstance(to, str) and to.startswith("s3://"):
        return to
    bucket, key = options.get("bucket"), options.get("key")
    if isinstance(bucket, str) and bucket:
        return f"s3://{bucket}/{key if isinstance(key, str) else ''}"
    return None


def profile_secrets(creds: Any) -> list[dict[str, Any]]:
    """The profile's ``secrets:`` entries, type included, from dbt-duckdb's credentials.

    dbt-duckdb 1.11 pops ``type`` and ``name`` out of each ``secrets`` dict while
    building its ``Secret`` objects (kept in ``_secrets``), so those are read first.
    """
    entries: list[dict[str, Any]] = []
    for secret in getattr(creds, "_secrets", None) or []:
        entry = dict(getattr(secret, "secret_kwargs", None) or {})
        for name in ("type", "name", "provider", "scope"):
            value = getattr(secret, name, None)
            if value is not None:
                entry[name] = value
        entries.append(entry)
    if entries:
        return entries
    return [dict(s) for s in getattr(creds, "secrets", None) or [] if isinstance(s, Mapping)]
