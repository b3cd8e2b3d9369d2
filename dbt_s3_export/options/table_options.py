"""The configuration of tables: an Iceberg table's catalog, a Glue registration, partition fields.

``catalog`` and ``glue`` are options whose values are small option tables of
their own (``CATALOG_FIELDS``, ``GLUE_FIELDS``), read by the same ``Reader`` as
the export's options. No I/O happens here.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from . import table as spec
from .table import Option
from .values import Reader, is_folder

CatalogType = Literal["glue", "rest", "sql"]
CATALOG_TYPES: tuple[CatalogType, ...] = ("glue", "rest", "sql")
# Which keys each catalog type takes besides ``type``, ``name`` and ``properties``.
CATALOG_KEYS: dict[str, tuple[str, ...]] = {
    "glue": ("region", "endpoint_url", "catalog_id"),
    "rest": ("uri", "warehouse", "token", "credential"),
    "sql": ("uri",),
}
# Catalog keys whose values are credentials (a SQL ``uri`` may hold a password too).
CATALOG_SECRETS = frozenset({"token", "credential"})
CATALOG_FIELDS: dict[str, Option] = {
    "type": Option("type", "string", "Catalog type.", choices=CATALOG_TYPES),
    "name": Option("name", "string", "Catalog name."),
    "uri": Option("uri", "string", "REST URL or SQLAlchemy URL."),
    "warehouse": Option("warehouse", "string", "REST warehouse."),
    "token": Option("token", "string", "REST token."),
    "credential": Option("credential", "string", "REST credential."),
    "region": Option("region", "string", "Glue region."),
    "catalog_id": Option("catalog_id", "string", "Glue catalog id."),
    "endpoint_url": spec.BY_NAME["endpoint_url"],
    "properties": Option("properties", "mapping", "pyiceberg catalog properties."),
}
GLUE_FIELDS: dict[str, Option] = {
    "database": Option("database", "string", "Glue database.", required=True),
    "table": Option("table", "string", "Glue table.", required=True),
    "region": CATALOG_FIELDS["region"],
    "endpoint_url": spec.BY_NAME["endpoint_url"],
    "catalog_id": CATALOG_FIELDS["catalog_id"],
}
GLUE_KEYS = tuple(GLUE_FIELDS)
# Glue database and table names: what Athena accepts without quoting.
_GLUE_NAME_RE = re.compile(r"^[a-z0-9_]{1,255}$")
# An Iceberg partition field: a column, or a transform of one (``day(ts)``, ``bucket(16, id)``).
_TRANSFORM_RE = re.compile(r"^\s*([a-z]+)\s*\(\s*(?:(\d+)\s*,\s*)?([^()]+?)\s*\)\s*$")
# Iceberg's transforms, and whether each takes a width.
ICEBERG_TRANSFORMS = {
    "identity": False,
    "year": False,
    "month": False,
    "day": False,
    "hour": False,
    "bucket": True,
    "truncate": True,
}


@dataclass(frozen=True)
class PartitionField:
    """One Iceberg partition field: ``transform`` of ``column`` (``identity`` for plain names)."""

    column: str
    transform: str = "identity"
    width: int | None = None

    @property
    def name(self) -> str:
        """The partition field's name, as Spark and pyiceberg name them."""
        if self.transform == "identity":
            return self.column
        if self.width is not None:
            short = "trunc" if self.transform == "truncate" else self.transform
            return f"{self.column}_{short}_{self.width}"
        return f"{self.column}_{self.transform}"


def parse_partition_field(text: str) -> PartitionField | None:
    """``day(ts)`` as a field; None when ``text`` is not a transform (a plain column name)."""
    match = _TRANSFORM_RE.match(text)
    if match is None:
        return None
    transform, width, column = match.groups()
    return PartitionField(column, transform, int(width) if width is not None else None)


def partition_fields(partition_cols: Sequence[str]) -> list[PartitionField]:
    """Each of ``partition_cols`` as a field: a transform, or the column as it is."""
    return [parse_partition_field(c) or PartitionField(c) for c in partition_cols]


@dataclass(frozen=True)
class CatalogConfig:
    """Where an Iceberg table is registered: a Glue, REST or SQL catalog."""

    type: CatalogType
    name: str = "default"
    uri: str | None = field(default=None, repr=False)
    warehouse: str | None = None
    token: str | None = field(default=None, repr=False)
    credential: str | None = field(default=None, repr=False)
    region: str | None = None
    endpoint_url: str | None = None
    catalog_id: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    def secrets(self) -> list[str]:
        """Credential values this catalog carries, for ``redact``."""
        return catalog_secret_values(
            {"uri": self.uri, "token": self.token, "credential": self.credential}
        )


@dataclass(frozen=True)
class GlueTarget:
    """The Glue table a file export is registered as."""

    database: str
    table: str
    region: str | None = None
    endpoint_url: str | None = None
    catalog_id: str | None = None


def catalog_secret_values(catalog: Any) -> list[str]:
    """The secret values in a ``catalog`` mapping: tokens, credentials, a URI's password."""
    if not isinstance(catalog, Mapping):
        return []
    found = [str(catalog[k]) for k in CATALOG_SECRETS if catalog.get(k) is not None]
    uri = catalog.get("uri")
    if isinstance(uri, str):
        try:
            password = urlsplit(uri).password
        except ValueError:
            password = None
        if password:
            found.append(password)
    return found


def layered_mappings(defaults: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``catalog`` and ``glue`` of the meta laid key by key over the profile's.

    So a profile can hold a catalog's connection and a model name only its table. A
    meta ``catalog`` of another ``type`` replaces the profile's whole.
    """
    out: dict[str, Any] = {}
    for name in ("catalog", "glue"):
        base, over = defaults.get(name), options.get(name)
        if not isinstance(base, Mapping) or not isinstance(over, Mapping):
            continue
        if name == "catalog" and over.get("type", base.get("type")) != base.get("type"):
            continue
        out[name] = {**base, **over}
    return out


def iceberg_rules(reader: Reader, kw: dict[str, Any]) -> None:
    """An Iceberg table's name, catalog and partition transforms; sets ``kw['catalog']``."""
    for name in ("namespace", "table"):
        if kw.get(name) is None:
            raise reader.fail(
                name,
                "is required for an iceberg table",
                "Name the table with namespace (a database) and table",
            )
    kw["catalog"] = read_catalog(reader)
    if kw["catalog"].type == "glue":
        for name in ("namespace", "table"):
            glue_name(reader, name, kw[name])
    fields_ = partition_fields(kw.get("partition_cols", ()))
    for f in fields_:
        if f.transform not in ICEBERG_TRANSFORMS:
            raise reader.fail(
                "partition_cols",
                f"{f.transform}({f.column}) is not an Iceberg partition transform",
                "Use a column name, or identity, year, month, day, hour, bucket(N, col) "
                "or truncate(N, col) of one",
            )
        if ICEBERG_TRANSFORMS[f.transform] != (f.width is not None):
            shape = f"{f.transform}(N, {f.column})" if f.width is None else f"{f.transform}"
            raise reader.fail(
                "partition_cols",
                f"{f.transform} takes {'a width' if f.width is None else 'no width'}",
                f"Write it as {shape}({f.column})" if f.width is not None else f"Write {shape}",
            )
    if kw.get("mode") == "overwrite_partitions" and any(f.transform != "identity" for f in fields_):
        raise reader.fail(
            "mode",
            "overwrite_partitions replaces partitions by their values, which needs "
            "partition_cols of plain columns, not transforms",
            "Partition by columns (e.g. a date column made in the model), or use replace",
        )


def glue_name(reader: Reader, option: str, value: str) -> None:
    if not _GLUE_NAME_RE.match(value):
        raise reader.fail(
            option, f"{value!r} is not a Glue name", "Use lowercase letters, digits and underscores"
        )


def _sub_reader(reader: Reader, name: str, value: Mapping[str, Any]) -> Reader:
    return Reader(dict(value), f"{reader.context + ': ' if reader.context else ''}{name}")


def read_catalog(reader: Reader) -> CatalogConfig:
    value = reader.raw.get("catalog")
    if not isinstance(value, Mapping):
        raise reader.fail(
            "catalog",
            "is required for an iceberg table"
            if value is None
            else f"must be a mapping, got {type(value).__name__}",
            "For example catalog: {type: glue, region: eu-west-1}, {type: rest, uri: ...} or "
            "{type: sql, uri: 'sqlite:////path/catalog.db'}",
        )
    sub = _sub_reader(reader, "catalog", value)
    kind = sub.read("type", CATALOG_FIELDS["type"])
    if kind is None:
        raise reader.fail("catalog", "needs a type", f"Set type to {', '.join(CATALOG_TYPES)}")
    allowed = {"type", "name", "properties", *CATALOG_KEYS[kind]}
    for key in value:
        if key not in allowed:
            others = [t for t, keys in CATALOG_KEYS.items() if key in keys]
            raise sub.fail(
                str(key),
                f"does not apply to a {kind} catalog"
                + (f" (it is an option of {' and '.join(others)} catalogs)" if others else ""),
                f"A {kind} catalog takes {', '.join(sorted(allowed))}",
            )
    kw: dict[str, Any] = {"type": kind, "properties": ()}
    for name in allowed - {"type"}:
        got = sub.read(name, CATALOG_FIELDS[name])
        if got is not None:
            kw[name] = got
    uri: str = kw.get("uri") or ""
    if kind in ("rest", "sql") and not uri:
        example = "http://127.0.0.1:8181" if kind == "rest" else "sqlite:////path/catalog.db"
        raise sub.fail("uri", f"is required for a {kind} catalog", f"For example {example!r}")
    if kind == "rest" and not re.match(r"^https?://", uri):
        raise sub.fail("uri", f"must be an http:// or https:// URL, got {uri!r}")
    if kind == "sql" and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", uri):
        raise sub.fail(
            "uri",
            "must be a SQLAlchemy URL of sqlite or postgresql",
            "For example 'sqlite:////path/catalog.db' or "
            "'postgresql+psycopg2://user@host/db' (the password from env_var)",
        )
    return CatalogConfig(**kw)


def read_glue(reader: Reader, kw: dict[str, Any]) -> GlueTarget | None:
    """The Glue table a folder export of csv, parquet or jsonl files is registered as."""
    value = reader.raw.get("glue")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise reader.fail(
            "glue",
            f"must be a mapping, got {type(value).__name__} {value!r}",
            "For example glue: {database: lake, table: orders}",
        )
    if not is_folder(kw):
        raise reader.fail(
            "glue",
            f"a Glue table's location is a folder, but key {kw['key']!r} names one object",
            "End the key with '/' to export into a folder",
        )
    if kw.get("include_partition_cols"):
        raise reader.fail(
            "glue",
            "a Glue table takes partition values from the folder names, and columns that "
            "are also in the files would be defined twice",
            "Drop include_partition_cols",
        )
    sub = _sub_reader(reader, "glue", value)
    for key in value:
        if key not in GLUE_KEYS:
            close = difflib.get_close_matches(str(key), GLUE_KEYS, n=1, cutoff=0.6)
            raise sub.fail(
                str(key),
                "unknown option",
                (f"Did you mean '{close[0]}'? " if close else "")
                + "glue takes "
                + ", ".join(GLUE_KEYS),
            )
    out = {name: sub.read(name, entry) for name, entry in GLUE_FIELDS.items()}
    for name in ("database", "table"):
        glue_name(sub, name, out[name])
    return GlueTarget(**out)
