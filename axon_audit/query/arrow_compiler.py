"""The pyarrow pushdown compiler: the part of `Filters` a Parquet dataset scan can use.

What it compiles is handed to `pyarrow.dataset` (`read.lake.lake_dataset`), so
whole row groups are skipped by their min/max statistics and dictionary pages.
It is a *subset*: the kinds in `ArrowCompiler.left_out` are deliberately not
pushed, and the exact polars predicate (`Filters.expr()`) always runs after the
scan. So a pushed expression must never drop a row the polars one keeps.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from functools import reduce
from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from axon_audit.query.compiler import Compiler
from axon_audit.query.predicates import OneOf, TimeAtLeast, TimeAtMost

__all__ = ["ArrowCompiler"]

_TS = pa.timestamp("us", tz="UTC")


class ArrowCompiler(Compiler[pc.Expression]):
    """Compiles the statistics-friendly predicate kinds to a pyarrow dataset expression.

    Example:
        >>> import pyarrow as pa
        >>> from axon_audit.query.filters import Filters
        >>> table = pa.table({"user_id": ["u1", "u2"], "error_message": ["timeout", "timeout!"]})
        >>> push = ArrowCompiler().compile(Filters.build(user_id="u1", error_contains="!"))
        >>> table.filter(push)["user_id"].to_pylist()  # error_contains is left to polars
        ['u1']
        >>> sorted(ArrowCompiler.left_out)
        ['at_least', 'at_most', 'contains', 'json_path_equals', 'list_has_any']
    """

    left_out: ClassVar[Mapping[str, str]] = {
        # pyarrow compares NaN as false, polars and DuckDB order it above every
        # number: pushing a duration bound could drop rows the exact filter keeps.
        "at_least": "NaN compares differently in pyarrow than in polars",
        "at_most": "NaN compares differently in pyarrow than in polars",
        # Row-group statistics cannot rule out a substring, a JSON value or a list
        # element, so pushing these only moves the same per-row work into the scan.
        "contains": "no statistics can skip a row group for a substring",
        "json_path_equals": "pyarrow has no JSON functions; statistics cannot help",
        "list_has_any": "no statistics for list elements",
    }

    def combine(self, parts: list[pc.Expression]) -> pc.Expression:
        return reduce(operator.and_, parts)

    def visit_one_of(self, node: OneOf) -> pc.Expression:
        # Typed: an empty Python list would be a null-typed value set, which
        # pyarrow refuses against a string column instead of matching nothing.
        return pads.field(node.column).isin(pa.array(node.values, pa.string()))

    def visit_time_at_least(self, node: TimeAtLeast) -> pc.Expression:
        return pads.field(node.column) >= pa.scalar(node.us, _TS)

    def visit_time_at_most(self, node: TimeAtMost) -> pc.Expression:
        return pads.field(node.column) <= pa.scalar(node.us, _TS)
