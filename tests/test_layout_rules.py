"""Architecture rules over the package source, read with `ast` (nothing is imported).

* No module is over `MAX_LINES` lines (those in `_IN_PROGRESS` are expected to
  fail for now: a strict xfail, so one that gets split must leave the set).
* The module-level imports among `axon_audit` modules (`TYPE_CHECKING` blocks
  included: a cycle there is still a cycle in the design) form no cycle.
* A first-party import inside a function carries a comment saying why (on its
  line or the line above): such imports hide dependencies from the import graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "axon_audit"
MAX_LINES = 450

# Being split in the restructure; remove when done.
_IN_PROGRESS: set[str] = set()


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def _module_level(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module loads: top level, and inside if/try/with at top
    level (`if TYPE_CHECKING:` among them), but not inside functions or classes."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If):
            found += _module_level(node.body) + _module_level(node.orelse)
        elif isinstance(node, ast.Try):
            found += _module_level(node.body) + _module_level(node.orelse) + _module_level(node.finalbody)
            for handler in node.handlers:
                found += _module_level(handler.body)
        elif isinstance(node, ast.With):
            found += _module_level(node.body)
    return found


def _imported(module: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The package modules an import statement loads (the most specific that exists)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:  # relative: resolve against this module's package
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        # `from pkg import name` loads pkg.name when that is a module, else pkg.
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    out = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name.startswith("axon_audit") and name != module:
            out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = set()
        for node in _module_level(tree.body):
            graph[module] |= _imported(module, path, node, modules)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a closed path (first module repeated at the end), or None."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        color[node] = grey
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if color.get(nxt, black) == grey:
                return [*stack[stack.index(nxt) :], nxt]
            if color.get(nxt) == white:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        color[node] = black
        return None

    for node in sorted(graph):
        if color[node] == white:
            found = visit(node)
            if found:
                return found
    return None


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _size_cases() -> list:
    cases = []
    for path in _modules().values():
        name = _rel(path)
        marks = [pytest.mark.xfail(strict=True, reason=f"{name}: being split in the restructure")] \
            if name in _IN_PROGRESS else []
        cases.append(pytest.param(path, id=name, marks=marks))
    return cases


@pytest.mark.parametrize("path", _size_cases())
def test_no_module_over_the_line_limit(path: Path):
    n = _line_count(path)
    assert n <= MAX_LINES, f"{_rel(path)} has {n} lines, over {MAX_LINES}: split it"


def test_in_progress_names_existing_modules():
    """A module in `_IN_PROGRESS` that is gone must leave it too (one within the
    limit already fails above: its strict xfail passes)."""
    gone = sorted(_IN_PROGRESS - {_rel(path) for path in _modules().values()})
    assert not gone, f"remove from _IN_PROGRESS (no such module): {gone}"


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_and_prints_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_type_checking_and_from_imports():
    graph = import_graph()
    # `from axon_audit.model.event import AuditEvent` is an edge to model.event.
    assert "axon_audit.model.event" in graph["axon_audit.model.schema"]
    # `from axon_audit.model import event`-style and package imports resolve to modules too.
    assert all(name.startswith("axon_audit") for deps in graph.values() for name in deps)


def test_the_logger_stays_a_small_facade():
    """`AuditLogger` delegates to the write components (write/): its class body stays small."""
    path = Path(__file__).parent.parent / "axon_audit" / "write" / "logger.py"
    cls = next(n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef) and n.name == "AuditLogger")
    n = cls.end_lineno - cls.lineno + 1
    assert n <= 400, f"AuditLogger's class body has {n} lines, over 400: move work into a component"


def _function_imports() -> list[tuple[str, int, str]]:
    """(file, line, text) of each `axon_audit` import inside a function with no
    comment on its line or the line above."""
    found = []
    for path in _modules().values():
        lines = path.read_text().split("\n")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom):
                    names = [sub.module or ""]
                elif isinstance(sub, ast.Import):
                    names = [a.name for a in sub.names]
                else:
                    continue
                if not any(n == "axon_audit" or n.startswith("axon_audit.") for n in names):
                    continue
                here, above = lines[sub.lineno - 1], lines[sub.lineno - 2].strip()
                if "#" not in here and not above.startswith("#"):
                    found.append((_rel(path), sub.lineno, here.strip()))
    return found


def test_first_party_imports_inside_functions_say_why():
    assert _function_imports() == []


def test_import_leaves_the_query_engines_unloaded():
    """`import axon_audit` (what a logging service does) loads neither DuckDB nor the
    CLI's libraries: their objects would be walked by every cyclic-GC pass of the
    logging process (DuckDB alone cost +4 % CPU per `log_event`, measured)."""
    import subprocess
    import sys

    code = "import sys, axon_audit; print(sorted(m for m in ('duckdb', 'rich', 'click') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.strip()
    assert out == "[]"
