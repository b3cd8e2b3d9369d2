"""Which rows of the model an export reads: all of them, this run's batch, or whole partitions.

dbt-duckdb stages an incremental run's rows in a temporary table
(``<model>__dbt_tmp...``) before it appends or merges them into the model, whatever
the strategy (``append``, ``delete+insert``, ``merge``); that table is the run's
batch. On a model's first run and on ``--full-refresh`` there is none, and every
choice reads the whole model.

``rows`` chooses:

* ``all``: the whole model, every run;
* ``batch``: the batch; with ``overwrite_partitions``, the partitions the batch
  touches, each read whole from the model (its rows from earlier runs too), so a
  rewritten partition loses none of them;
* ``auto`` (the default) follows the model: an incremental model's ``append`` and
  ``overwrite_partitions`` exports read as ``batch`` does, everything else reads
  ``all``. When that chose the batch, ``Rows.note`` says so once, for the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import duckdb

from ..encoding.typemap import quote_identifier
from ..errors import SourceError
from ..options.where import first_line
from .batches import DuckDBSource

RowsOption = Literal["auto", "all", "batch"]
Reads = Literal["all", "batch", "partitions"]


@dataclass(frozen=True)
class Rows:
    """What an export reads, and whether the default chose it."""

    reads: Reads
    defaulted: bool = False


def choose_rows(rows: RowsOption, mode: str, incremental: bool, partitioned: bool) -> Rows:
    """The rows an export reads from its ``rows`` option, its mode and the model's kind."""
    follows_batch = mode in ("append", "overwrite_partitions")
    if rows == "all" or (rows == "auto" and not (incremental and follows_batch)):
        return Rows("all")
    reads: Reads = "partitions" if mode == "overwrite_partitions" and partitioned else "batch"
    return Rows(reads, defaulted=rows == "auto")


def export_source(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    identifier: str,
    where: str | None,
    rows: RowsOption,
    *,
    mode: str = "replace",
    partition_cols: tuple[str, ...] | list[str] = (),
    incremental: bool = False,
    max_partitions: int | None = None,
    file_format: str = "parquet",
) -> DuckDBSource:
    """The source an export reads (see the module's docstring); its ``note`` is for the log."""
    choice = choose_rows(rows, mode, incremental, bool(partition_cols))

    def source(name: str, scope: str | None = None) -> DuckDBSource:
        return DuckDBSource(
            con,
            name,
            where,
            file_format=file_format,
            max_partitions=max_partitions,
            scope=scope,
        )

    whole = source(relation)
    batch = whole.batch_relation(identifier) if choice.reads != "all" else None
    if batch is None:
        return whole
    if choice.reads == "batch":
        chosen = source(batch)
        what = "exports this run's incremental batch only"
    else:
        chosen = source(relation, _touched_partitions(con, relation, batch, partition_cols))
        what = (
            "rewrites only the partitions this run's incremental batch touched, each with all "
            "its rows from the model"
        )
    if choice.defaulted:
        chosen.note = (
            f"the model is incremental, so its {mode} export {what} (rows: auto, the "
            "default). Set rows: all to export the whole model every run"
        )
    else:
        chosen.note = f"{mode} with rows: batch {what}"
    return chosen


def _touched_partitions(
    con: duckdb.DuckDBPyConnection, relation: str, batch: str, columns: tuple[str, ...] | list[str]
) -> str:
    """A condition true for the model's rows in a partition the batch has rows in.

    The partition values are compared as structs, in which NULL equals NULL and NaN
    equals NaN, so the NULL partition and the NaN partition are found too; a batch
    value is cast to the model's column type first, as the insert into the model did.
    """
    quoted = [quote_identifier(c) for c in columns]
    try:
        model_types = _types(con, relation, quoted)
        batch_types = _types(con, batch, quoted)
    except duckdb.Error as e:
        raise SourceError(
            f"cannot read the partition columns of {relation} and of this run's incremental "
            f"batch: {first_line(e)}. Set rows: all to rewrite every partition instead"
        ) from e
    fields = [f"k{i}" for i in range(len(columns))]
    ours = ", ".join(f"{f} := {q}" for f, q in zip(fields, quoted, strict=True))
    theirs = ", ".join(
        f"{f} := {q if bt == mt else f'CAST({q} AS {mt})'}"
        for f, q, mt, bt in zip(fields, quoted, model_types, batch_types, strict=True)
    )
    return f"struct_pack({ours}) IN (SELECT DISTINCT struct_pack({theirs}) FROM {batch})"


def _types(con: duckdb.DuckDBPyConnection, relation: str, quoted: list[str]) -> list[str]:
    rel = con.sql(f"SELECT {', '.join(quoted)} FROM {relation} LIMIT 0")
    return [str(t) for t in rel.types]
