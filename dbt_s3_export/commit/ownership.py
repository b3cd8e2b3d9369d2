"""Who owns a destination: export ids, the claims of folders and tables, conflicts.

An export's id is ``export_id`` if set, else the model's unique id and the entry.
A folder export claims its folder with its lease (and manifest); a Delta or Iceberg
table claims its location with its log or metadata; a single object names its
export in its metadata. No two claims may be the same folder or nested.
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..errors import ExportFailed
from ..options.config import ExportConfig
from ..s3.objects import list_folder, list_keys, together
from .store import Store, decode

MANIFEST_NAME = "_manifest.json"
LEASE_NAME = "_lease.json"
CONTROL_NAMES = (MANIFEST_NAME, LEASE_NAME)
# Metadata keys naming the export that wrote a single object, and the run that wrote it.
OWNER_METADATA = "dbt-s3-export-id"
RUN_METADATA = "dbt-s3-export-run"
# A run's generation, exactly as new_generation makes it: the one form a lease's
# garbage may name, and part of the name of every data file a folder export writes.
GENERATION = re.compile(r"[0-9a-f]{24}")
# The folders a table format keeps in a table's location (Delta's log, Iceberg's metadata).
DELTA_LOG = "_delta_log/"
ICEBERG_METADATA = "metadata/"


class OwnershipConflict(ExportFailed):
    """Another export owns the prefix, or one around or inside it."""


@dataclass(frozen=True)
class RunContext:
    """Who is exporting: what the plugin (or any other caller) knows of the run."""

    model: str = "export"
    unique_id: str | None = None
    invocation_id: str | None = None
    # The position of this export in the model's list of s3_export entries.
    entry: int = 0
    # The model was rebuilt from scratch (dbt's --full-refresh of an incremental model).
    full_refresh: bool = False
    # Where the run's progress and notices go (dbt's log, from the plugin); by default
    # the ``dbt_s3_export`` logger.
    log: Callable[[str], None] | None = field(default=None, repr=False, compare=False)

    def info(self, message: str) -> None:
        (self.log or logging.getLogger("dbt_s3_export").info)(message)

    def export_id(self, cfg: ExportConfig) -> str:
        """The export's identity: ``export_id`` if set, else the model's id and the entry."""
        if cfg.export_id:
            return cfg.export_id
        return f"{self.unique_id or 'adhoc.' + self.model}#{self.entry}"


# Metadata values travel as HTTP headers: ASCII only, and runs of spaces are folded when
# requests are signed. Printable ASCII other than space and '%' is stored as it is
# (``model.shop.orders#0``); the rest, '%' included, percent-encoded, so the value reads
# back exactly (objects written before kept '#' as '%23', which reads back the same).
_METADATA_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def owner_metadata(export_id: str, generation: str) -> dict[str, str]:
    """The object metadata that names the export and the run that wrote an object."""
    return {OWNER_METADATA: quote(export_id, safe=_METADATA_SAFE), RUN_METADATA: generation}


def new_generation() -> str:
    """A run-unique id that sorts by time: 12 hex digits of milliseconds, 12 random."""
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(6)}"


def is_generation(value: Any) -> bool:
    return isinstance(value, str) and GENERATION.fullmatch(value) is not None


def is_data_key(prefix: str, key: str) -> bool:
    """Whether ``key`` has the shape of a data file a folder export at ``prefix`` writes.

    ``<prefix>[<col>=<value>/...]<name>``, where the name is no control file, does not
    start with ``.`` or ``_`` (filename_template refuses those) and carries a
    generation. Nothing else is ever deleted on the word of a lease or a manifest.
    """
    if not key.startswith(prefix):
        return False
    *folders, name = key[len(prefix) :].split("/")
    return (
        bool(name)
        and not name.startswith((".", "_"))
        and GENERATION.search(name) is not None
        and all("=" in folder for folder in folders)
    )


def ancestors(prefix: str) -> list[str]:
    """The folders around ``prefix`` (``a/b/`` -> ``a/``, then the bucket root ``''``)."""
    parts = prefix.rstrip("/").split("/") if prefix else []
    return ["/".join(parts[:i]) + "/" if i else "" for i in range(len(parts) - 1, -1, -1)]


def describe_owner(record: dict[str, Any]) -> str:
    """``export '<export_id>' (model <name>)`` for a lease or manifest, in words safe to show."""
    owner = record.get("export_id") or record.get("unique_id")
    model = record.get("model")
    named = f"export '{owner}'" if owner else "an earlier export"
    return named + (f" (model {model})" if model else "")


def claim_around(store: Store, key: str) -> tuple[str, str] | None:
    """(folder, owner) of the nearest export or table that claims a folder around ``key``."""
    folders = ancestors(key)
    return nearest_claim(folders, together(*claims_at(store, folders)))


def claims_at(store: Store, folders: list[str]) -> list[Callable[[], str | None]]:
    """The checks of ``folders`` (each ``claim_at``), to be run together."""
    return [functools.partial(claim_at, store, folder) for folder in folders]


def nearest_claim(folders: list[str], outcomes: list[Any]) -> tuple[str, str] | None:
    """The first of ``folders`` (nearest first) that has an owner, with its owner.

    ``outcomes`` are ``together``'s: an error met before any owner is raised, as the
    checks made one after the other would have raised it.
    """
    for folder, outcome in zip(folders, outcomes, strict=True):
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is not None:
            return folder, outcome
    return None


def settled(outcome: Any) -> Any:
    """One of ``together``'s outcomes: its result, or its error raised."""
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def claim_at(store: Store, folder: str, *, tables: bool = True) -> str | None:
    """Who claims ``folder`` itself: a folder export (its lease or manifest) or a table."""
    keys, subfolders = list_folder(store.client, store.bucket, folder + "_")
    for name in (LEASE_NAME, MANIFEST_NAME):
        if folder + name in keys:
            record = store.read(folder + name)
            if record is not None:
                return describe_owner(decode(record.body))
    if not tables:
        return None
    if folder + DELTA_LOG in subfolders:
        return "a Delta table"
    keys, _ = list_folder(store.client, store.bucket, folder + ICEBERG_METADATA, max_keys=100)
    if any(_table_at(key) == (folder, "an Iceberg table") for key in keys):
        return "an Iceberg table"
    return None


def _table_at(key: str) -> tuple[str, str] | None:
    """(location, kind) of the Iceberg or Delta table whose log or metadata ``key`` is in."""
    parts = key.split("/")
    if DELTA_LOG.rstrip("/") in parts[:-1]:
        at = parts.index(DELTA_LOG.rstrip("/"))
        return "".join(p + "/" for p in parts[:at]), "a Delta table"
    if parts[-1].endswith(".metadata.json") and parts[-2:-1] == [ICEBERG_METADATA.rstrip("/")]:
        return "".join(p + "/" for p in parts[:-2]), "an Iceberg table"
    return None


def claim_inside(
    store: Store, prefix: str, each_key: Callable[[str], None] | None = None
) -> tuple[str, str] | None:
    """(folder, owner) of an export or table that claims a folder inside ``prefix``, if any.

    The folder is ``prefix`` itself for a table there (a folder export's own lease and
    manifest are not claims against it). Each key listed is shown to ``each_key``.
    """
    for key in list_keys(store.client, store.bucket, prefix):
        if each_key is not None:
            each_key(key)
        table = _table_at(key)
        if table is not None and table[0].startswith(prefix):
            return table
        folder, _, name = key.rpartition("/")
        folder = folder + "/" if folder else ""
        if name in CONTROL_NAMES and folder != prefix:
            record = store.read(key)
            return folder, describe_owner(decode(record.body) if record else {})
    return None


def conflict(cfg: ExportConfig, me: str, folder: str, owner: str, relation: str) -> Exception:
    here = f"s3://{cfg.bucket}/{folder}"
    if relation == "same":
        return OwnershipConflict(
            f"{here} belongs to {owner}, and this export is '{me}'. Two exports "
            "cannot share a destination: give this one another key, or, to hand it over "
            f"to this export, set take_over_from to the id of the export that owns it"
        )
    return OwnershipConflict(
        f"{here} belongs to {owner}, and it is {relation} this export's folder "
        f"{cfg.destination} (export '{me}'). An export owns everything under its folder, "
        "so the folders of two exports (or of an export and a table) may not be nested: "
        "give one of them a key outside the other's folder"
    )


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
