"""Read a DuckDB relation as a stream of Arrow record batches."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import duckdb
import pyarrow as pa

from .errors import SourceError
from .grouping import GroupedBatches

# A partitioned export reads rows grouped by the partition columns, one partition
# after the other, so that only one output file is open at a time. A base table
# with up to MAX_GROUPED_PARTITIONS partitions is read once, in table order, and
# regrouped on the fly (grouping.GroupedBatches: bounded memory, spilling to local
# temporary files past its budget). Sorting would cost several times the read,
# and a filtered scan per partition a full read per partition.
MAX_GROUPED_PARTITIONS = 256
# With more partitions than that (one temporary file each, at most), base tables
# are read in groups of partitions (by a hash of the partition columns), each
# group sorted on its own and small enough to sort in about SORT_GROUP_BYTES of
# memory. Every group is one more scan of the table, hence the cap.
SORT_GROUP_BYTES = 64 * 1024 * 1024
MAX_SORT_GROUPS = 64
_IDENTIFIER = re.compile(r'"((?:[^"]|"")*)"|([^."]+)')


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _name_parts(relation: str) -> list[str] | None:
    """``"db"."schema"."name"`` (quoted or not) as its parts, or None if it is not a name."""
    parts: list[str] = []
    pos = 0
    while True:
        match = _IDENTIFIER.match(relation, pos)
        if match is None:
            return None
        quoted, bare = match.groups()
        parts.append(quoted.replace('""', '"') if quoted is not None else bare.strip())
        pos = match.end()
        if pos == len(relation):
            return parts if len(parts) <= 3 else None
        if relation[pos] != ".":
            return None
        pos += 1


def _row_bytes(schema: pa.Schema) -> int:
    """A rough width of one row in DuckDB's sort: fixed widths, 24 bytes per string."""
    total = 0
    for f in schema:
        try:
            total += max(f.type.bit_width // 8, 1)
        except ValueError:  # variable width: strings, binaries, nested values
            total += 24
    return max(total, 8)


class DuckDBSource:
    """A relation (table or view) read through a DuckDB connection or cursor.

    The connection must be the one that created the relation when the export
    runs inside the model's transaction: other connections do not see the new
    table until the transaction commits.
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, relation: str, where: str | None = None
    ) -> None:
        self._con = con
        self.relation = relation
        self.where = where
        # What the choice of rows means for this run, to be logged (``rows: batch``).
        self.note = ""

    def _select(self, order_by: Sequence[str] = ()) -> str:
        sql = f"SELECT * FROM {self.relation}{self._where_clause()}"
        if order_by:
            sql += " ORDER BY " + ", ".join(quote_identifier(c) for c in order_by)
        return sql

    def schema(self) -> pa.Schema:
        """The relation's columns and types, without reading any rows."""
        try:
            return self._con.sql(self._select() + " LIMIT 0").to_arrow_table().schema
        except duckdb.Error as e:
            if self.where:
                raise SourceError(
                    f"cannot read relation {self.relation} filtered by option 'where' "
                    f"({self.where!r}): {e}. Fix the filter: it is a DuckDB SQL predicate "
                    "over the model's columns"
                ) from e
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e

    def batch_relation(self, identifier: str) -> str | None:
        """The temporary table dbt-duckdb staged this run's incremental rows in, if any.

        dbt-duckdb names it ``<model>__dbt_tmp<timestamp>``; it lives on the model's own
        connection only, and only on incremental (not first or full-refresh) runs.
        """
        pattern = identifier.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary "
            "AND table_name LIKE ? ESCAPE '\\' ORDER BY table_name DESC LIMIT 1",
            [pattern + "\\_\\_dbt\\_tmp%"],
        ).fetchall()
        return f"temp.main.{quote_identifier(rows[0][0])}" if rows else None

    def _table_rows(self) -> int | None:
        """The row count DuckDB keeps for a base table; None for views and the unknown."""
        parts = _name_parts(self.relation)
        if not parts:
            return None
        columns = ["database_name", "schema_name", "table_name"][-len(parts) :]
        where = " AND ".join(f"lower({c}) = lower(?)" for c in columns)
        try:
            rows = self._con.execute(
                f"SELECT estimated_size FROM duckdb_tables() WHERE {where}", parts
            ).fetchall()
        except duckdb.Error:
            return None
        return int(rows[0][0]) if len(rows) == 1 and rows[0][0] is not None else None

    def read_plan(self, order_by: Sequence[str]) -> ReadPlan:
        """How a read ordered by ``order_by`` goes: one query, one regrouped scan, or groups."""
        if not order_by:
            return ReadPlan("query")
        rows = self._table_rows()
        if rows is None:
            return ReadPlan("query")  # a view: every scan would run its query again
        if self._has_at_most(order_by, MAX_GROUPED_PARTITIONS):
            return ReadPlan("grouped")
        try:
            schema = self._con.sql(self._select() + " LIMIT 0").to_arrow_table().schema
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e
        groups = math.ceil(rows * _row_bytes(schema) / SORT_GROUP_BYTES)
        return ReadPlan("sorted", groups=max(1, min(groups, MAX_SORT_GROUPS)))

    def _has_at_most(self, order_by: Sequence[str], limit: int) -> bool:
        """Whether the relation has at most ``limit`` partitions (one cheap aggregate)."""
        cols = ", ".join(quote_identifier(c) for c in order_by)
        sql = (
            f"SELECT count(*) FROM (SELECT 1 FROM {self.relation}{self._where_clause()} "
            f"GROUP BY {cols} LIMIT {limit + 1})"
        )
        try:
            rows = self._con.execute(sql).fetchall()
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e
        return int(rows[0][0]) <= limit

    def _where_clause(self, extra: Sequence[str] = ()) -> str:
        filters = [f"({self.where})"] if self.where else []
        filters += extra
        return " WHERE " + " AND ".join(filters) if filters else ""

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        """Start streaming rows; rows of equal ``order_by`` values arrive together."""
        plan = self.read_plan(order_by)
        if plan.kind == "query":
            return self._reader(self._select(order_by), batch_size)
        if plan.kind == "grouped":
            reader = self._reader(self._select(), batch_size)
            grouped = GroupedBatches(reader, order_by, batch_size)
            return pa.RecordBatchReader.from_batches(reader.schema, self._guard(grouped))
        queries = self._sorted_queries(order_by, plan.groups)
        first = self._reader(queries[0], batch_size)
        return pa.RecordBatchReader.from_batches(
            first.schema, self._chain(first, queries[1:], batch_size)
        )

    def _sorted_queries(self, order_by: Sequence[str], groups: int) -> list[str]:
        # rowid keeps a partition's rows in table order: DuckDB's sort is not stable,
        # and shuffled ids or timestamps compress worse and differ from run to run.
        order = ", ".join([*(quote_identifier(c) for c in order_by), "rowid"])
        if groups == 1:
            return [f"SELECT * FROM {self.relation}{self._where_clause()} ORDER BY {order}"]
        key = "hash(" + ", ".join(quote_identifier(c) for c in order_by) + f") % {groups}"
        return [
            f"SELECT * FROM {self.relation}{self._where_clause([f'{key} = {g}'])} ORDER BY {order}"
            for g in range(groups)
        ]

    def _reader(self, sql: str, batch_size: int) -> pa.RecordBatchReader:
        try:
            return self._con.sql(sql).to_arrow_reader(batch_size)
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e

    def _guard(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e

    def _chain(
        self, first: pa.RecordBatchReader, rest: Sequence[str], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """The groups one after the other; a group's query starts when the last one ends."""
        reader = first
        try:
            yield from reader
            for sql in rest:
                reader.close()
                reader = self._reader(sql, batch_size)
                yield from reader
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e
        finally:
            reader.close()


def export_source(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    identifier: str,
    where: str | None,
    rows: Literal["all", "batch"],
) -> DuckDBSource:
    """The rows an export reads: the relation, or this run's incremental batch of it.

    ``rows: batch`` reads the temporary table dbt-duckdb staged this run's rows in;
    on a first or full-refresh run there is none and the whole relation is read.
    """
    source = DuckDBSource(con, relation, where)
    if rows == "batch":
        batch = source.batch_relation(identifier)
        if batch is not None:
            source = DuckDBSource(con, batch, where)
            source.note = "exporting this run's incremental batch only"
    return source


@dataclass(frozen=True)
class ReadPlan:
    kind: Literal["query", "grouped", "sorted"]
    groups: int = 1


class ArrowSource:
    """An in-memory Arrow table as a source (tests and ad-hoc use)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def schema(self) -> pa.Schema:
        return self._table.schema

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        table = self._table
        if order_by:
            table = table.sort_by([(c, "ascending") for c in order_by])
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_size))
