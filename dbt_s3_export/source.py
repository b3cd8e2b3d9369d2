"""Read a DuckDB relation as a stream of Arrow record batches."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from .errors import SourceError


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
        sql = f"SELECT * FROM {self.relation}"
        if self.where:
            sql += f" WHERE ({self.where})"
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

    def open(self, order_by: Sequence[str], batch_size: int) -> pa.RecordBatchReader:
        """Start streaming rows; rows of equal ``order_by`` values arrive together."""
        try:
            return self._con.sql(self._select(order_by)).to_arrow_reader(batch_size)
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e


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
