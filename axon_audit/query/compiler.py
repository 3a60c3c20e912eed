"""The base of the backend compilers: dispatch by predicate kind, fail loudly on a gap.

A backend compiler (`polars_compiler`, `sql_compiler`, `arrow_compiler`)
subclasses `Compiler` with one `visit_<kind>` method per predicate kind of
`predicates.KINDS` and a `combine` that ANDs the compiled parts. A kind with no
visitor raises `NotImplementedError` naming the compiler and the kind, so a new
filter cannot be silently dropped by one backend. A pushdown compiler that
leaves kinds out on purpose lists them, with the reason, in `left_out`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from axon_audit.query.predicates import KINDS, Predicate


class Compilable(Protocol):
    """What a compiler reads of `Filters` (a protocol, so compilers need not import
    the filters module that uses them)."""

    @property
    def is_empty(self) -> bool: ...

    def predicates(self) -> Iterator[Predicate]: ...

__all__ = ["Compiler"]

T = TypeVar("T")


class Compiler(Generic[T]):
    """Compiles `Filters` to a backend's predicate of type `T` (None: nothing filtered).

    Example:
        >>> from axon_audit.query.filters import Filters
        >>> from axon_audit.query.sql_compiler import SqlCompiler
        >>> class NoUsers(SqlCompiler):
        ...     visit_one_of = None  # a gap: compiling a OneOf must not silently drop it
        >>> NoUsers().compile(Filters.build(user_id="u1"))
        Traceback (most recent call last):
        ...
        NotImplementedError: NoUsers has no visit_one_of: it cannot compile 'one_of' predicates
    """

    #: Kinds this compiler deliberately does not compile, each with the reason
    #: (a pushdown subset; the exact filter runs after it). Empty for exact compilers.
    left_out: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = set(cls.left_out) - set(KINDS)
        if unknown:
            raise TypeError(f"{cls.__name__}.left_out names unknown predicate kinds {sorted(unknown)}")
        both = [k for k in cls.left_out if getattr(cls, f"visit_{k}", None) is not None]
        if both:
            raise TypeError(f"{cls.__name__} both visits and leaves out {both}: choose one")

    @classmethod
    def missing(cls) -> list[str]:
        """The kinds this compiler neither visits nor leaves out (should be none).

        Example:
            >>> from axon_audit.query.polars_compiler import PolarsCompiler
            >>> PolarsCompiler.missing()
            []
        """
        return [k for k in KINDS if k not in cls.left_out and getattr(cls, f"visit_{k}", None) is None]

    def visit(self, node: Predicate) -> T | None:
        """One predicate compiled; None only for a kind in `left_out`."""
        if node.kind in self.left_out:
            return None
        method = getattr(self, f"visit_{node.kind}", None)
        if method is None:
            raise NotImplementedError(
                f"{type(self).__name__} has no visit_{node.kind}: it cannot compile {node.kind!r} predicates"
            )
        out: T = method(node)
        return out

    def compile(self, filters: Compilable) -> T | None:
        """All of `filters`' predicates compiled and ANDed; None when none is compiled."""
        parts = [p for p in map(self.visit, filters.predicates()) if p is not None]
        return self.combine(parts) if parts else None

    def combine(self, parts: list[T]) -> T:
        """The conjunction of one or more compiled parts."""
        raise NotImplementedError(f"{type(self).__name__} has no combine")
