"""Opening an Iceberg catalog (SQL on SQLite or PostgreSQL, Glue, REST), safe on first
use by several models at once, and its errors as ours."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, S3ExportError, TransferError, brief
from ..options.config import ExportConfig
from .common import (
    Storage,
    TableConflict,
    missing_extra,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

else:
    S3Client = Any

# Arrow bytes of batches gathered before an Iceberg chunk is written as data files.


def load_catalog(cfg: ExportConfig, storage: Storage) -> Any:
    """The pyiceberg catalog the export's ``catalog`` options describe."""
    try:
        from pyiceberg.catalog import load_catalog as pyiceberg_catalog
    except ModuleNotFoundError:
        raise missing_extra("pyiceberg") from None
    catalog = cfg.catalog
    assert catalog is not None
    props: dict[str, str] = {**storage.iceberg(), **dict(catalog.properties)}
    if catalog.type == "glue":
        from pyiceberg.catalog.glue import GlueCatalog

        from .glue import glue_client

        client = glue_client(
            cfg, catalog.region, catalog.endpoint_url, catalog.catalog_id, storage.credentials
        )
        return GlueCatalog(catalog.name, client=client, **props)
    props["type"] = catalog.type
    for name in ("uri", "warehouse", "token", "credential"):
        value = getattr(catalog, name)
        if value is not None:
            props[name] = value
    try:
        if catalog.type != "sql":
            return pyiceberg_catalog(catalog.name, **props)
        return sql_catalog(catalog.name, props)
    except ModuleNotFoundError as e:
        driver = "psycopg2-binary" if "psycopg" in str(e) else str(e.name)
        raise ConfigError(
            "",
            "catalog",
            f"the {catalog.type} catalog needs the Python package '{driver}', which is not "
            "installed",
            f"pip install {driver}",
        ) from None


# A SQL catalog creates its tables on first use, after looking for them: two runs that
# open a new catalog at once both find none, and the second create fails ("table
# iceberg_tables already exists"). Runs of one process (dbt's threads) open SQL
# catalogs one at a time; a run of another process that loses that race opens the
# catalog again, and then finds the tables.
SQL_CATALOG_LOCK = threading.Lock()


SQL_CATALOG_ATTEMPTS = 3


def sql_catalog(name: str, props: dict[str, str]) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    with SQL_CATALOG_LOCK:
        for attempt in range(1, SQL_CATALOG_ATTEMPTS):
            try:
                return SqlCatalog(name, **props)
            except Exception as e:
                text = str(e).lower()
                if "already exists" not in text and "duplicate key" not in text:
                    raise
                time.sleep(0.1 * attempt)
        return SqlCatalog(name, **props)


def create_namespace(catalog: Any, namespace: str) -> None:
    """Create the namespace unless it exists; a run creating it at the same moment is fine."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except Exception:
        if (namespace,) not in {tuple(n) for n in catalog.list_namespaces()}:
            raise


@contextlib.contextmanager
def catalog_errors(cfg: ExportConfig, name: str) -> Iterator[None]:
    """pyiceberg's catalog errors as ours, saying what to do."""
    from pyiceberg.exceptions import (
        CommitFailedException,
        TableAlreadyExistsError,
        ValidationException,
    )

    catalog = cfg.catalog
    kind = catalog.type if catalog else "?"
    try:
        yield
    except S3ExportError:
        raise
    except TableAlreadyExistsError as e:
        raise TableConflict(
            f"another writer created Iceberg table {name} while this run was writing, so this "
            "run did not commit. Run again: the run then writes into that table if it is this "
            "export's, and is refused if it is another's"
        ) from e
    except (CommitFailedException, ValidationException) as e:
        raise TableConflict(
            f"another writer committed to Iceberg table {name} while this run was writing, "
            f"and this run's commit cannot be applied on top of it ({brief(e)}). The table is "
            "at the other writer's snapshot; run again"
        ) from e
    except Exception as e:
        # botocore's errors (Glue), SQLAlchemy's (SQL), requests' (REST) have no common base.
        raise TransferError(f"the {kind} catalog failed on Iceberg table {name}: {brief(e)}") from e
