"""Read a DuckDB relation as a stream of Arrow record batches.

Text from the config reaches SQL in two ways only: names, always quoted
(``quote_identifier``, ``relation_sql``), and the ``where`` filter, which
DuckDB's own parser must find to be one expression over the relation's rows
(``filter_sql``) before it is placed, in parentheses, after WHERE.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import duckdb
import pyarrow as pa

from ..encoding.partitioning import too_many_partitions
from ..encoding.typemap import (
    Column,
    column_error_from,
    huge_int_error,
    plan_columns,
    quote_identifier,
    select_list,
    sql_string,
    tag_schema,
)
from ..errors import ColumnError, LocalSpaceError, SourceError
from ..options.where import FilterError, filter_sql, first_line
from .base import BATCH_BYTES, SAMPLE_ROWS, batch_rows, fixed_width, widest
from .grouping import MEMORY_BUDGET, GroupedBatches

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


def relation_sql(*parts: str | None) -> str:
    """``"db"."schema"."name"`` from a relation's parts, each quoted (None parts left out)."""
    return ".".join(quote_identifier(p) for p in parts if p)


def _space_error(e: duckdb.Error, con: duckdb.DuckDBPyConnection) -> LocalSpaceError | None:
    """DuckDB's own temporary files ran out of room (a sort bigger than memory)."""
    text = str(e)
    if "No space left on device" not in text and "max_temp_directory_size" not in text:
        return None
    try:
        row = con.execute("SELECT current_setting('temp_directory')").fetchone()
        folder = str(row[0]) if row else "?"
    except duckdb.Error:
        folder = "?"
    return LocalSpaceError(
        f"DuckDB ran out of space for temporary files in {folder!r} while sorting the model "
        f"by its partition columns ({first_line(e)}). Free space there, or point DuckDB's "
        "temp_directory setting at a disk with room for about the model's size"
    )


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
    total = sum(fixed_width(f.type) or 24 for f in schema)
    return max(total, 8)


class DuckDBSource:
    """A relation (table or view) read through a DuckDB connection or cursor.

    The connection must be the one that created the relation when the export
    runs inside the model's transaction: other connections do not see the new
    table until the transaction commits.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        relation: str,
        where: str | None = None,
        *,
        file_format: str = "parquet",
        max_partitions: int | None = None,
        scope: str | None = None,
    ) -> None:
        self._con = con
        # A condition of our own making (never the config's text) that narrows the rows
        # further: the partitions an incremental batch touched (source/rows.py).
        self._scope = scope
        self.relation = relation
        self.where = where
        # What the choice of rows means for this run, to be logged (source/rows.py).
        self.note = ""
        self.max_partitions = max_partitions
        try:
            self._filter = filter_sql(where) if where else None
        except FilterError as e:
            raise SourceError(
                f"option 'where' ({where!r}) {e}. Give one condition over the model's columns"
            ) from None
        # Which form each DuckDB type takes depends on the format (encoding/typemap.py).
        self.file_format = file_format
        self._plan: list[Column] | None = None
        # What DuckDB said once and cannot change during the export.
        self._schemas: dict[str, pa.Schema] = {}
        self._rows: tuple[int | None] | None = None
        # At most this many bytes per row, when the batch sizing found out (no query of its own).
        self._row_bound: int | None = None
        # Every row of the selection (and its select list) when the sample held them all.
        self._whole: tuple[str, pa.Table] | None = None

    def _select(self, order_by: Sequence[str] = (), columns: str = "*") -> str:
        sql = f"SELECT {columns} FROM {self.relation}{self._where_clause()}"
        if order_by:
            sql += " ORDER BY " + ", ".join(quote_identifier(c) for c in order_by)
        return sql

    def _columns_sql(self, order_by: Sequence[str]) -> str:
        """The select list: each column in the form the export's format writes it."""
        if self._plan is None:
            try:
                rel = self._con.sql(self._select() + " LIMIT 0")
                names, types = list(rel.columns), list(rel.types)
            except duckdb.Error as e:
                raise self._relation_error(e) from e
            self._plan = plan_columns(names, types, self.file_format, order_by)
        return select_list(self._plan)

    def schema(self, order_by: Sequence[str] = ()) -> pa.Schema:
        """The columns and types the export writes, without reading any rows."""
        columns = self._columns_sql(order_by)
        try:
            schema = self._selected_schema(columns)
        except duckdb.Error as e:
            raise self._relation_error(e) from e
        assert self._plan is not None
        return tag_schema(schema, self._plan)

    def _selected_schema(self, columns: str) -> pa.Schema:
        """The Arrow schema of the select list (asked of DuckDB once per source)."""
        known = self._schemas.get(columns)
        if known is None:
            sql = self._select(columns=columns) + " LIMIT 0"
            known = self._schemas[columns] = self._con.sql(sql).to_arrow_table().schema
        return known

    def _relation_error(self, e: duckdb.Error) -> SourceError:
        """The relation (as filtered) could not even be described."""
        if self.where:
            return SourceError(
                f"cannot read relation {self.relation} filtered by option 'where' "
                f"({self.where!r}): {first_line(e)}. Fix the filter: it is a DuckDB SQL "
                "condition over the model's columns"
            )
        return SourceError(f"cannot read relation {self.relation}: {e}")

    def _check_filter(self) -> None:
        """The filter must be true or false for each row, not a value DuckDB would cast."""
        if not self._filter:
            return
        try:
            query = f"SELECT {self._filter} FROM {self.relation} LIMIT 0"
            kind = str(self._con.sql(query).types[0])
        except duckdb.Error as e:
            raise SourceError(f"option 'where' ({self.where!r}): {first_line(e)}") from e
        if kind != "BOOLEAN":
            raise SourceError(
                f"option 'where' ({self.where!r}) is a {kind} value, not a condition. Compare "
                'it with something, e.g. "amount > 0"'
            )

    def check_values(self) -> None:
        """Range checks that need the values, before anything is uploaded (one aggregate)."""
        checked = [c for c in self._plan or [] if c.range_check is not None]
        if not checked:
            return
        aggregates = ", ".join(
            f"min({quote_identifier(c.name)}), max({quote_identifier(c.name)})" for c in checked
        )
        try:
            row = self._con.execute(self._select(columns=aggregates)).fetchall()[0]
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e
        for i, column in enumerate(checked):
            assert column.range_check is not None
            for value in (row[2 * i], row[2 * i + 1]):
                if value is not None and not (
                    column.range_check.low <= value <= column.range_check.high
                ):
                    raise huge_int_error(column.name, column.type_name, str(value))

    def _batch_rows(self, columns: str, batch_size: int) -> int:
        """Rows per batch for about BATCH_BYTES each, from the widths DuckDB gives cheaply."""
        try:
            schema = self._selected_schema(columns)
        except duckdb.Error as e:
            raise self._error(e) from e
        widths = [fixed_width(f.type) for f in schema]
        if all(w is not None for w in widths):
            self._row_bound = sum(w or 0 for w in widths)
            return batch_rows(batch_size, self._row_bound)
        widest = self._row_bound = self._widest_row(schema)
        rows = self._table_rows()
        if widest is not None and rows is not None and rows * widest <= BATCH_BYTES:
            # Even at its widest the table is one batch of about BATCH_BYTES or less:
            # a sample of its rows could not make the batches any better.
            return batch_rows(batch_size, widest, widest)
        sample_rows = batch_rows(SAMPLE_ROWS, None, widest and widest * 8)
        try:
            sample = self._con.sql(
                self._select(columns=columns) + f" LIMIT {sample_rows}"
            ).to_arrow_table()
        except duckdb.Error as e:
            raise self._error(e) from e
        if sample.num_rows < sample_rows:  # the whole selection: read once, not again
            self._whole = (columns, sample)
        average = sample.nbytes / sample.num_rows if sample.num_rows else None
        return batch_rows(batch_size, average, widest)

    def _widest_row(self, schema: pa.Schema) -> int | None:
        """An upper bound of a row's bytes from a base table's statistics, else None.

        A filter on rowid that no row passes keeps DuckDB from reading any value, and
        the outer join gives the one row that carries the statistics. A table DuckDB
        counts no rows in has none yet: in the transaction that created it (where dbt
        runs post-hooks) its size and statistics are unknown until the commit.
        """
        if not self._table_rows():
            return None
        names = [f.name for f in schema]
        stats = ", ".join(f"stats(x.{quote_identifier(n)})" for n in names)
        try:
            row = self._con.execute(
                f"SELECT {stats} FROM (SELECT 1) d LEFT JOIN "
                f"(SELECT * FROM {self.relation} WHERE rowid < 0) x ON true"
            ).fetchall()[0]
        except duckdb.Error:
            return None
        changed = {c.name for c in self._plan or [] if c.changed}
        total = 0
        for f, value in zip(schema, row, strict=True):
            width = widest(value, f.type)
            if width is None:
                return None
            # A column the projection renders (base64, text) may outgrow the stored value.
            total += 2 * width if f.name in changed else width
        return total

    def batch_relation(self, identifier: str) -> str | None:
        """The temporary table dbt-duckdb staged this run's incremental rows in, if any.

        dbt-duckdb names it ``<model>__dbt_tmp<timestamp>``; it lives on the model's own
        connection only, and only on incremental (not first or full-refresh) runs.
        """
        pattern = identifier.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # The pattern as an SQL string literal, not a parameter: binding one made
        # DuckDB's Python client (1.x) import pandas, a second or more per process.
        like = sql_string(pattern + "\\_\\_dbt\\_tmp%")
        rows = self._con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary "
            f"AND table_name LIKE {like} ESCAPE '\\' ORDER BY table_name DESC LIMIT 1"
        ).fetchall()
        return f"temp.main.{quote_identifier(rows[0][0])}" if rows else None

    def _table_rows(self) -> int | None:
        """The row count DuckDB keeps for a base table; None for views and the unknown.

        Asked once per source: the source lives for one export, inside the model's run.
        """
        if self._rows is None:
            self._rows = (self._ask_table_rows(),)
        return self._rows[0]

    def _ask_table_rows(self) -> int | None:
        parts = _name_parts(self.relation)
        if not parts:
            return None
        columns = ["database_name", "schema_name", "table_name"][-len(parts) :]
        # The names as SQL string literals, not as parameters: DuckDB's Python client
        # imports pandas (a second or more, once per process) to bind parameters.
        where = " AND ".join(
            f"lower({c}) = lower({sql_string(p)})" for c, p in zip(columns, parts, strict=True)
        )
        try:
            rows = self._con.execute(
                f"SELECT estimated_size FROM duckdb_tables() WHERE {where}"
            ).fetchall()
        except duckdb.Error:
            return None
        return int(rows[0][0]) if len(rows) == 1 and rows[0][0] is not None else None

    def read_plan(self, order_by: Sequence[str]) -> ReadPlan:
        """How a read ordered by ``order_by`` goes: one query, one regrouped scan, or groups.

        For a base table the partitions are counted first (one aggregate over the
        partition columns), which also enforces ``max_partitions`` before any row is
        read; not for one whose rows all fit the grouping's memory and are no more
        than ``max_partitions`` (after ``open`` has bounded its rows' width). A view
        is not counted, as that would run its query twice: its partitions are
        counted as they stream (``partitioning.cap_partitions``).
        """
        if not order_by:
            return ReadPlan("query")
        rows = self._table_rows()
        if rows is None:
            return ReadPlan("query")  # a view: every scan would run its query again
        if self._whole is not None:
            rows = self._whole[1].num_rows
        elif rows == 0:  # created in this transaction: DuckDB counts it on commit
            rows = self._count_rows()
        fits = self._row_bound is not None and rows * self._row_bound <= MEMORY_BUDGET
        fits = fits or (self._whole is not None and self._whole[1].nbytes <= MEMORY_BUDGET)
        if fits and (self.max_partitions is None or rows <= self.max_partitions):
            # All of it fits in the grouping's memory, so no partition goes to a file
            # however many there are, and there cannot be more partitions than rows:
            # nothing to count. (Were DuckDB's row count short, the stream still holds
            # max_partitions, as for a view.)
            return ReadPlan("grouped", rows=rows)
        partitions = self._partition_count(order_by)
        if self.max_partitions is not None and partitions > self.max_partitions:
            raise too_many_partitions(partitions, self.max_partitions, order_by)
        if partitions <= MAX_GROUPED_PARTITIONS:
            return ReadPlan("grouped", rows=rows)
        try:
            schema = self._con.sql(self._select() + " LIMIT 0").to_arrow_table().schema
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e
        groups = math.ceil(rows * _row_bytes(schema) / SORT_GROUP_BYTES)
        return ReadPlan("sorted", groups=max(1, min(groups, MAX_SORT_GROUPS)), rows=rows)

    def _count_rows(self) -> int:
        try:
            return int(self._con.execute(f"SELECT count(*) FROM {self.relation}").fetchall()[0][0])
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e

    def _partition_count(self, order_by: Sequence[str]) -> int:
        """How many partitions the relation has (one aggregate over the partition columns)."""
        cols = ", ".join(quote_identifier(c) for c in order_by)
        sql = (
            f"SELECT count(*) FROM (SELECT 1 FROM {self.relation}{self._where_clause()} "
            f"GROUP BY {cols})"
        )
        try:
            rows = self._con.execute(sql).fetchall()
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e
        return int(rows[0][0])

    def _where_clause(self, extra: Sequence[str] = ()) -> str:
        filters = [self._filter] if self._filter else []
        filters += [self._scope] if self._scope else []
        filters += extra
        return " WHERE " + " AND ".join(filters) if filters else ""

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        """Start streaming rows; rows of equal ``order_by`` values arrive together."""
        self._check_filter()
        columns = self._columns_sql(order_by)
        self.check_values()
        batch_size = self._batch_rows(columns, batch_size)
        reader = self._open(order_by, batch_size, columns)
        assert self._plan is not None
        schema = tag_schema(reader.schema, self._plan)
        return pa.RecordBatchReader.from_batches(schema, self._tagged(reader, schema))

    def distinct(self, columns: Sequence[str]) -> pa.Table:
        """The distinct values of ``columns`` in the form ``open`` yields them.

        One aggregate that reads only those columns (DuckDB prunes the other columns'
        expressions), where a pass over the rows would read every column.
        """
        self._check_filter()
        select = self._columns_sql(())
        names = ", ".join(quote_identifier(c) for c in columns)
        sql = f"SELECT DISTINCT {names} FROM ({self._select(columns=select)}) AS model"
        try:
            return self._con.sql(sql).to_arrow_table()
        except duckdb.Error as e:
            raise self._error(e) from e

    @staticmethod
    def _tagged(reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        try:
            for batch in reader:
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
        finally:
            reader.close()

    def _open(self, order_by: Sequence[str], batch_size: int, columns: str) -> pa.RecordBatchReader:
        plan = self.read_plan(order_by)
        if plan.kind == "query":
            return self._reader(self._select(order_by, columns), batch_size)
        if plan.kind == "grouped":
            reader = self._reader(self._select(columns=columns), batch_size)
            grouped = GroupedBatches(reader, order_by, batch_size, expected_rows=plan.rows)
            return pa.RecordBatchReader.from_batches(reader.schema, self._guard(grouped))
        queries = self._sorted_queries(order_by, plan.groups, columns)
        first = self._reader(queries[0], batch_size)
        return pa.RecordBatchReader.from_batches(
            first.schema, self._chain(first, queries[1:], batch_size)
        )

    def _sorted_queries(self, order_by: Sequence[str], groups: int, columns: str) -> list[str]:
        # rowid keeps a partition's rows in table order: DuckDB's sort is not stable,
        # and shuffled ids or timestamps compress worse and differ from run to run.
        order = ", ".join([*(quote_identifier(c) for c in order_by), "rowid"])
        if groups == 1:
            return [f"SELECT {columns} FROM {self.relation}{self._where_clause()} ORDER BY {order}"]
        key = "hash(" + ", ".join(quote_identifier(c) for c in order_by) + f") % {groups}"
        return [
            f"SELECT {columns} FROM {self.relation}"
            f"{self._where_clause([f'{key} = {g}'])} ORDER BY {order}"
            for g in range(groups)
        ]

    def _error(self, e: duckdb.Error) -> Exception:
        """A DuckDB error as ours: a column check that stopped the query, or a read failure."""
        message = column_error_from(str(e))
        if message is not None:
            return ColumnError(message)
        return _space_error(e, self._con) or SourceError(
            f"cannot read relation {self.relation}: {e}"
        )

    def _reader(self, sql: str, batch_size: int) -> pa.RecordBatchReader:
        if self._whole is not None and sql == self._select(columns=self._whole[0]):
            rows = self._whole[1]  # read whole as the sample: not asked of DuckDB again
            return pa.RecordBatchReader.from_batches(rows.schema, rows.to_batches(batch_size))
        try:
            return self._con.sql(sql).to_arrow_reader(batch_size)
        except duckdb.Error as e:
            raise self._error(e) from e

    def _guard(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        try:
            yield from batches
        except duckdb.Error as e:
            raise self._error(e) from e

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
            raise self._error(e) from e
        finally:
            reader.close()


@dataclass(frozen=True)
class ReadPlan:
    kind: Literal["query", "grouped", "sorted"]
    groups: int = 1
    rows: int | None = None  # the table's row count, when known
