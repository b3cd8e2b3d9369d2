"""A folder export's manifest: read and checked, and what each mode keeps of it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import ExportFailed
from ..options.config import ExportConfig
from ..s3.objects import StoredObject
from .ownership import LEASE_NAME, is_data_key, shown

MANIFEST_VERSION = 2


class CorruptManifest(ExportFailed):
    """The manifest (or lease) is not one this version can read."""


@dataclass
class Manifest:
    """A folder export's manifest, parsed and checked."""

    body: dict[str, Any]
    etag: str

    @property
    def files(self) -> list[dict[str, Any]]:
        return list(self.body["files"])

    @property
    def superseded(self) -> list[str]:
        """The keys this manifest's commit took out of the export (its clean-up's)."""
        return list(self.body.get("superseded") or [])

    @property
    def export_id(self) -> str | None:
        value = self.body.get("export_id")
        return str(value) if value else None

    @classmethod
    def parse(cls, stored: StoredObject, cfg: ExportConfig) -> Manifest:
        """Check the manifest's shape; a foreign or damaged one raises ``CorruptManifest``."""
        location = f"s3://{cfg.bucket}/{stored.key}"

        def bad(problem: str) -> CorruptManifest:
            return CorruptManifest(
                f"{location} is not a manifest this version of dbt-s3-export can read: {problem}. "
                "Nothing was changed. If it was edited by hand, restore it (from the bucket's "
                "versions or a backup). To start the folder afresh instead, delete it and "
                f"{cfg.prefix}{LEASE_NAME}: the next run then writes a new export and leaves "
                "every file that is there now in place"
            )

        try:
            body = json.loads(stored.body)
        except ValueError as e:
            raise bad(f"it is not JSON ({e})") from None
        if not isinstance(body, dict):
            raise bad(f"it holds a JSON {type(body).__name__}, not an object")
        version = body.get("format_version")
        if version not in (1, MANIFEST_VERSION):
            raise bad(f"format_version is {version!r}, expected 1 or {MANIFEST_VERSION}")
        files = body.get("files")
        if not isinstance(files, list):
            raise bad(f"'files' is a {type(files).__name__}, not a list")
        for i, entry in enumerate(files):
            key = entry.get("key") if isinstance(entry, dict) else None
            if not isinstance(key, str) or not is_data_key(cfg.prefix, key):
                raise bad(
                    f"files[{i}] is {shown(entry)}, not a data file of this export (a key under "
                    f"{cfg.prefix} named by filename_template, no control file)"
                )
        superseded = body.get("superseded", [])
        if not isinstance(superseded, list) or not all(
            isinstance(k, str) and is_data_key(cfg.prefix, k) for k in superseded
        ):
            raise bad(
                f"'superseded' is {shown(superseded)}, not a list of this export's data files"
            )
        for name in ("generation", "file_format"):
            if not isinstance(body.get(name), str):
                raise bad(f"'{name}' is {body.get(name)!r}, not a string")
        cols = body.get("partition_cols", [])
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise bad(f"'partition_cols' is {cols!r}, not a list of column names")
        types = body.get("partition_types")
        if types is not None and (
            not isinstance(types, list) or not all(isinstance(t, str) for t in types)
        ):
            raise bad(f"'partition_types' is {types!r}, not a list of type names")
        return cls(body, stored.etag)


def _partition_of(prefix: str, entry: dict[str, Any]) -> str:
    partition = entry.get("partition")
    if isinstance(partition, str):
        return partition
    rel = str(entry["key"])[len(prefix) :]
    return rel.rsplit("/", 1)[0] + "/" if "/" in rel else ""


@dataclass(frozen=True)
class Plan:
    """What a commit does to the earlier files: which it keeps listing, which it drops."""

    kept: list[dict[str, Any]]
    dropped: list[str]


def plan_commit(mode: str, prefix: str, previous: Manifest | None, touched: Iterable[str]) -> Plan:
    """Each mode's effect on the earlier export, in one place.

    ``append`` keeps every file the previous manifest lists; ``overwrite_partitions``
    keeps those outside the partitions this run wrote; every other mode (``replace``,
    and ``error_if_exists``/``skip_if_exists`` once they go ahead) keeps none.
    """
    earlier = previous.files if previous is not None else []
    if mode == "append":
        return Plan(kept=earlier, dropped=[])
    if mode == "overwrite_partitions":
        written = set(touched)
        kept = [f for f in earlier if _partition_of(prefix, f) not in written]
        kept_keys = {f["key"] for f in kept}
        return Plan(kept=kept, dropped=[f["key"] for f in earlier if f["key"] not in kept_keys])
    return Plan(kept=[], dropped=[f["key"] for f in earlier])
