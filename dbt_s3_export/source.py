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

    def __init__(self, con: duckdb.DuckDBPyConnection, relation: str) -> None:
        self._con = con
        self.relation = relation

    def _select(self, order_by: Sequence[str] = ()) -> str:
        sql = f"SELECT * FROM {self.relation}"
        if order_by:
            sql += " ORDER BY " + ", ".join(quote_identifier(c) for c in order_by)
        return sql

    def columns(self) -> list[str]:
        """The relation's column names, without reading any rows."""
        try:
            return list(self._con.sql(self._select() + " LIMIT 0").columns)
        except duckdb.Error as e:
            raise SourceError(f"cannot read relation {self.relation}: {e}") from e

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
