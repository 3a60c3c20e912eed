"""The polars compiler: `Filters` to one exact polars predicate (`Filters.expr()`).

The expression runs on the hot frame (`model.schema.FRAME_SCHEMA`: Enum and
Categorical string columns) and on frames read back from Parquet or JSON.
"""

from __future__ import annotations

import polars as pl

from axon_audit.query.compiler import Compiler
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

__all__ = ["PolarsCompiler"]


class PolarsCompiler(Compiler[pl.Expr]):
    """Compiles every predicate kind to a polars expression.

    Example:
        >>> import polars as pl
        >>> from axon_audit.query.filters import Filters
        >>> df = pl.DataFrame({"user_id": ["u1", "u2", "u3"], "duration_ms": [1.0, 5.0, 9.0]})
        >>> expr = PolarsCompiler().compile(Filters.build(user_id=["u1", "u2"], min_duration_ms=2))
        >>> df.filter(expr)["user_id"].to_list()
        ['u2']
    """

    def combine(self, parts: list[pl.Expr]) -> pl.Expr:
        return pl.all_horizontal(parts) if len(parts) > 1 else parts[0]

    def visit_one_of(self, node: OneOf) -> pl.Expr:
        if len(node.values) == 1:
            return pl.col(node.column) == node.values[0]
        # Enum and Categorical columns compare with a list of plain strings as strings.
        return pl.col(node.column).cast(pl.String).is_in(list(node.values))

    def visit_time_at_least(self, node: TimeAtLeast) -> pl.Expr:
        return pl.col(node.column).dt.epoch("us") >= node.us

    def visit_time_at_most(self, node: TimeAtMost) -> pl.Expr:
        return pl.col(node.column).dt.epoch("us") <= node.us

    def visit_at_least(self, node: AtLeast) -> pl.Expr:
        return pl.col(node.column) >= node.bound

    def visit_at_most(self, node: AtMost) -> pl.Expr:
        return pl.col(node.column) <= node.bound

    def visit_contains(self, node: Contains) -> pl.Expr:
        return pl.col(node.column).str.contains(node.text, literal=True)

    def visit_json_path_equals(self, node: JsonPathEquals) -> pl.Expr:
        return pl.col(node.column).str.json_path_match(node.path) == node.text

    def visit_list_has_any(self, node: ListHasAny) -> pl.Expr:
        return pl.col(node.column).list.eval(pl.element().is_in(list(node.values))).list.any()
