"""The ``where`` option: one boolean expression, checked by DuckDB's own parser.

Checked when the configuration is read, before anything runs, and placed by the
source (source/batches.py), in parentheses, after WHERE.
"""

from __future__ import annotations

import json
import threading

import duckdb

# The relation a filter is parsed against; only the shape of the query matters.
_FILTERED = "dbt_s3_export_filtered_relation"


class FilterError(ValueError):
    """The ``where`` text is not one boolean expression over the relation's rows."""


def filter_sql(where: str) -> str:
    """``where`` as SQL to put after WHERE, once DuckDB's parser has found it one expression.

    Two parses: the Python API's ``SQLExpression`` takes exactly one expression
    (no second statement, no set operation, nothing after it), and
    ``json_serialize_sql`` of the query it goes into shows that query's whole tree:
    one plain SELECT from the relation, with the filter as its WHERE and nothing
    else, and no subquery inside the filter (which could read other tables or files).
    The text goes on lines of its own, so a trailing ``--`` comment ends there.
    """
    if "\x00" in where:
        raise FilterError("holds a NUL character")
    try:
        duckdb.SQLExpression(where)
    except (duckdb.Error, RuntimeError) as e:
        raise FilterError(f"is not one SQL expression ({first_line(e)})") from None
    clause = f"(\n{where}\n)"
    query = f"SELECT * FROM {_FILTERED} WHERE {clause}"
    tree = json.loads(_serialized(query))
    if tree.get("error"):
        raise FilterError(f"is not one SQL expression ({tree.get('error_message', 'unparsable')})")
    statements = tree.get("statements", [])
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    plain = (
        node.get("type") == "SELECT_NODE"
        and node.get("from_table", {}).get("table_name") == _FILTERED
        and len(node.get("select_list", [])) == 1
        and node.get("where_clause") is not None
        and not node.get("modifiers")
        and not node.get("cte_map", {}).get("map")
        and not node.get("group_expressions")
        and node.get("having") is None
        and node.get("qualify") is None
    )
    if not plain:
        raise FilterError("does not stay inside the WHERE clause of the export's query")
    if _holds(node["where_clause"], "SUBQUERY"):
        raise FilterError("holds a subquery (SELECT ...), which would read other data")
    if _holds(node["where_clause"], "PARAMETER"):
        raise FilterError("holds a parameter ($1 or ?), which nothing would fill")
    return clause


# One connection of the process parses every filter: json_serialize_sql reads no
# data and changes nothing, and opening a connection per check cost milliseconds.
# A DuckDB connection is not for two threads at once, hence the lock.
_parser: duckdb.DuckDBPyConnection | None = None
_parser_lock = threading.Lock()


def _serialized(query: str) -> str:
    """DuckDB's parse tree of ``query``, as JSON (with ``"error": true`` if it does not parse).

    The query goes in as an SQL string literal, not a bound parameter: binding one
    made DuckDB's Python client (1.x) import pandas, a second or more once per
    process. Doubling its quotes is all a string literal needs (no backslash
    escapes in DuckDB's standard strings; NUL was refused before).
    """
    global _parser
    literal = "'" + query.replace("'", "''") + "'"
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:")
        row = _parser.execute(f"SELECT json_serialize_sql({literal})").fetchone()
    return str(row[0]) if row else '{"error": true}'


def _holds(tree: object, kind: str) -> bool:
    """Whether a parse tree holds an expression of class ``kind``."""
    if isinstance(tree, dict):
        return tree.get("class") == kind or any(_holds(v, kind) for v in tree.values())
    if isinstance(tree, list):
        return any(_holds(v, kind) for v in tree)
    return False


def first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
