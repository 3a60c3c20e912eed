"""The DuckDB compiler: `Filters` to a `WHERE` predicate and its parameters (`Filters.sql()`).

The rule that keeps it injection-proof: the text holds only the fixed column
names of the predicates and `?` placeholders; every value a caller gave is a
bound parameter, in placeholder order.
"""

from __future__ import annotations

from typing import Any

from axon_audit.model.schema import COLUMNS
from axon_audit.model.timestamps import from_us
from axon_audit.query.compiler import Compilable, Compiler
from axon_audit.query.predicates import (
    AtLeast,
    AtMost,
    Contains,
    JsonPathEquals,
    ListHasAny,
    OneOf,
    TimeAtLeast,
    TimeAtMost,
)

__all__ = ["SqlCompiler"]

#: A predicate's text and the parameters of its placeholders.
Sql = tuple[str, list[Any]]


def _col(name: str) -> str:
    # Column names come from the field table, never from a caller; refuse anything
    # but the event columns rather than escape it, so no text but ours reaches the SQL.
    if name not in COLUMNS:
        raise ValueError(f"not an event column: {name!r}")
    return f'"{name}"'


class SqlCompiler(Compiler[Sql]):
    """Compiles every predicate kind to DuckDB SQL with `?` parameters.

    Unlike the base, `compile` always returns text: `TRUE` when nothing is
    filtered, `FALSE` when the filters can match nothing (`Filters.is_empty`).

    Example:
        >>> import duckdb
        >>> from axon_audit.query.filters import Filters
        >>> where, params = SqlCompiler().compile(Filters.build(error_contains="time", max_duration_ms=10))
        >>> where, params
        ('"duration_ms" <= ? AND contains("error_message", ?)', [10.0, 'time'])
        >>> duckdb.execute(
        ...     f"SELECT count(*) FROM (VALUES ('timeout', 3.0), ('timeout', 30.0)) t(error_message, duration_ms) "
        ...     f"WHERE {where}", params).fetchone()
        (1,)
    """

    def compile(self, filters: Compilable) -> Sql:
        if filters.is_empty:
            return "FALSE", []
        where = super().compile(filters)
        return where if where is not None else ("TRUE", [])

    def combine(self, parts: list[Sql]) -> Sql:
        return " AND ".join(text for text, _ in parts), [v for _, params in parts for v in params]

    def visit_one_of(self, node: OneOf) -> Sql:
        if not node.values:
            return "FALSE", []
        if len(node.values) == 1:
            return f'{_col(node.column)} = ?', list(node.values)
        return f'{_col(node.column)} IN ({", ".join("?" * len(node.values))})', list(node.values)

    def visit_time_at_least(self, node: TimeAtLeast) -> Sql:
        return f'{_col(node.column)} >= ?', [from_us(node.us)]

    def visit_time_at_most(self, node: TimeAtMost) -> Sql:
        return f'{_col(node.column)} <= ?', [from_us(node.us)]

    def visit_at_least(self, node: AtLeast) -> Sql:
        return f'{_col(node.column)} >= ?', [node.bound]

    def visit_at_most(self, node: AtMost) -> Sql:
        return f'{_col(node.column)} <= ?', [node.bound]

    def visit_contains(self, node: Contains) -> Sql:
        return f'contains({_col(node.column)}, ?)', [node.text]

    def visit_json_path_equals(self, node: JsonPathEquals) -> Sql:
        return f'json_extract_string({_col(node.column)}, ?) = ?', [node.path, node.text]

    def visit_list_has_any(self, node: ListHasAny) -> Sql:
        return f'list_has_any({_col(node.column)}, ?::VARCHAR[])', [list(node.values)]
