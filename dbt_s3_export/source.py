"""Read a DuckDB relation as a stream of Arrow record batches."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import duckdb
import pyarrow as pa

from .errors import SourceError

# A partitioned export reads rows grouped by the partition columns, one partition
# after the other, so that only one output file is open at a time. When the model
# has few partitions, each is read by its own filtered scan: rows stream straight
# from the table in table order, with no sort, in memory that does not grow with
# the table. Every such scan reads the partition columns of the whole table once
# more, so beyond a few dozen partitions sorting is cheaper: base tables are then
# read in groups of partitions (by a hash of the partition columns), each group
# sorted on its own and small enough to sort in about SORT_GROUP_BYTES of memory.
# Every group is one more scan of the table, hence the cap.
SORT_GROUP_BYTES = 64 * 1024 * 1024
MAX_SORT_GROUPS = 64
# Partitions are scanned one by one when there are at most this many more of them
# than the sorted read would use groups.
STREAMED_EXTRA_SCANS = 24
_IDENTIFIER = re.compile(r'"((?:[^"]|"")*)"|([^."]+)')


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    """A SQL string literal holding ``text``."""
    return "'" + text.replace("'", "''") + "'"


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

    def _select(self, order_by: Sequence[str] = ()) -> str:
        sql = f"SELECT * FROM {self.relation}{self._where_clause()}"
        if order_by:
            sql += " ORDER BY " + ", ".join(quote_identifier(c) for c in order_by)
        return sql

    def columns(self) -> list[str]:
        """The relation's column names, without reading any rows."""
        try:
            return list(self._con.sql(self._select() + " LIMIT 0").columns)
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
        """How a read ordered by ``order_by`` goes: one query, a scan per partition, or groups."""
        if not order_by:
            return ReadPlan("query")
        rows = self._table_rows()
        if rows is None:
            return ReadPlan("query")  # a view: every scan would run its query again
        try:
            schema = self._con.sql(self._select() + " LIMIT 0").to_arrow_table().schema
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e
        groups = max(
            1, min(math.ceil(rows * _row_bytes(schema) / SORT_GROUP_BYTES), MAX_SORT_GROUPS)
        )
        partitions = self._partitions(order_by, groups + STREAMED_EXTRA_SCANS)
        if partitions is not None:
            return ReadPlan("partitions", partitions=partitions)
        return ReadPlan("groups", groups=groups)

    def _partitions(self, order_by: Sequence[str], limit: int) -> list[Partition] | None:
        """Each partition's key (as DuckDB text, None for NULL) and row count; None if too many."""
        cols = ", ".join(quote_identifier(c) for c in order_by)
        texts = ", ".join(f"CAST({quote_identifier(c)} AS VARCHAR)" for c in order_by)
        sql = (
            f"SELECT {texts}, count(*) FROM {self.relation}{self._where_clause()} "
            f"GROUP BY {cols} ORDER BY {cols} LIMIT {limit + 1}"
        )
        try:
            rows = self._con.execute(sql).fetchall()
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e
        if len(rows) > limit:
            return None
        return [Partition(tuple(row[:-1]), int(row[-1])) for row in rows]

    def _where_clause(self, extra: Sequence[str] = ()) -> str:
        filters = [f"({self.where})"] if self.where else []
        filters += extra
        return " WHERE " + " AND ".join(filters) if filters else ""

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        """Start streaming rows; rows of equal ``order_by`` values arrive together."""
        plan = self.read_plan(order_by)
        if plan.kind == "query":
            return self._reader(_Query(self._select(order_by)), batch_size)
        if plan.kind == "partitions":
            queries = [self._partition_query(order_by, part) for part in plan.partitions]
        else:
            queries = self._group_queries(order_by, plan.groups)
        # The schema comes from the first query (or from none at all: nothing to read).
        first = self._reader(
            queries[0] if queries else _Query(self._select() + " LIMIT 0"), batch_size
        )
        return pa.RecordBatchReader.from_batches(
            first.schema, self._chain(first, queries, batch_size)
        )

    def _partition_query(self, order_by: Sequence[str], part: Partition) -> _Query:
        # The key comes back as DuckDB's own text of each value, which DuckDB casts back
        # to the column's type exactly (decimals, NaN, time zones, enums); the filter on
        # a plain column is pushed into the scan. Rows keep table order, as nothing sorts.
        # (A literal, not a bound parameter: DuckDB 1.x streams parameterised queries
        # to Arrow many times slower.)
        filters = []
        for col, text in zip(order_by, part.key, strict=True):
            if text is None:
                filters.append(f"{quote_identifier(col)} IS NULL")
            else:
                filters.append(f"{quote_identifier(col)} = {sql_string(text)}")
        return _Query(f"SELECT * FROM {self.relation}{self._where_clause(filters)}", part)

    def _group_queries(self, order_by: Sequence[str], groups: int) -> list[_Query]:
        # rowid keeps a partition's rows in table order: DuckDB's sort is not stable,
        # and shuffled ids or timestamps compress worse and differ from run to run.
        order = ", ".join([*(quote_identifier(c) for c in order_by), "rowid"])
        if groups == 1:
            return [_Query(f"SELECT * FROM {self.relation}{self._where_clause()} ORDER BY {order}")]
        key = "hash(" + ", ".join(quote_identifier(c) for c in order_by) + f") % {groups}"
        return [
            _Query(
                f"SELECT * FROM {self.relation}{self._where_clause([f'{key} = {g}'])} "
                f"ORDER BY {order}"
            )
            for g in range(groups)
        ]

    def _reader(self, query: _Query, batch_size: int) -> pa.RecordBatchReader:
        try:
            return self._con.sql(query.sql).to_arrow_reader(batch_size)
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e

    def _chain(
        self, first: pa.RecordBatchReader, queries: Sequence[_Query], batch_size: int
    ) -> Iterator[pa.RecordBatch]:
        """The queries one after the other; each starts when the one before ends."""
        reader = first
        try:
            for i, query in enumerate(queries):
                if i:
                    reader.close()
                    reader = self._reader(query, batch_size)
                rows = 0
                for batch in reader:
                    rows += batch.num_rows
                    yield batch
                if query.partition is not None and rows != query.partition.rows:
                    raise SourceError(self._changed(query.partition, rows))
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e
        finally:
            reader.close()

    def _changed(self, part: Partition, rows: int) -> str:
        key = ", ".join("NULL" if t is None else repr(t) for t in part.key)
        return (
            f"cannot read relation {self.relation}: the partition ({key}) had {part.rows} rows "
            f"when counted and {rows} when read, so the relation changed during the export"
            + (
                ", or option 'where' is not deterministic. Use a filter that gives the same "
                "rows every time it runs (no random(), no clock outside the model's transaction)"
                if self.where
                else ". Run the export again when nothing else writes to it"
            )
        )


@dataclass(frozen=True)
class Partition:
    key: tuple[str | None, ...]
    rows: int


@dataclass(frozen=True)
class ReadPlan:
    kind: Literal["query", "partitions", "groups"]
    groups: int = 1
    partitions: Sequence[Partition] = ()


@dataclass(frozen=True)
class _Query:
    sql: str
    partition: Partition | None = None


class ArrowSource:
    """An in-memory Arrow table as a source (tests and ad-hoc use)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def columns(self) -> list[str]:
        return list(self._table.column_names)

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        table = self._table
        if order_by:
            table = table.sort_by([(c, "ascending") for c in order_by])
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_size))
