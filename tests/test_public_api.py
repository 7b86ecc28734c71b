"""The core's public API: plugins, the cookiecutter template and contrib/ import only names in
the ``__all__`` of a public core module; the core has no import cycle; the store contract works
through the `Store` protocol alone."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import ampel_core
from ampel_core.store import Store
from ampel_core.store_contract import StoreContract

REPOSITORY = Path(__file__).resolve().parents[1]
OUTSIDE_THE_CORE = ["plugins", "cookiecutter", "contrib"]


def core_modules() -> list[str]:
    return [info.name for info in pkgutil.walk_packages(ampel_core.__path__, "ampel_core.")]


def core_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) of every import of ampel_core in a file (name None: the module itself)."""
    found: list[tuple[int, str, str | None]] = []
    source = re.sub(r"\{\{.*?\}\}", "x", re.sub(r"\{%.*?%\}", "", path.read_text()))  # template files: no Jinja
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ampel_core":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names if alias.name.split(".")[0] == "ampel_core"]
    return found


def private_use(module: str, name: str | None) -> str | None:
    """Why importing ``name`` from ``module`` is not public API (None: it is)."""
    if any(part.startswith("_") for part in module.split(".")):
        return f"{module} is a private module"
    if name is None:
        return None
    target = importlib.import_module(module)
    if importlib.util.find_spec(f"{module}.{name}") is not None if hasattr(target, "__path__") else False:
        return private_use(f"{module}.{name}", None)  # a submodule of a package
    public = getattr(target, "__all__", None)
    if public is None:
        return f"{module} declares no __all__"
    if name not in public:
        return f"'{name}' is not in {module}.__all__"
    return None


def test_every_public_core_module_declares_its_api() -> None:
    for name in core_modules():
        if not any(part.startswith("_") for part in name.split(".")):
            module = importlib.import_module(name)
            assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
            missing = [n for n in module.__all__ if not hasattr(module, n)]
            assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_plugins_template_and_contrib_import_only_public_core_names() -> None:
    import importlib.util  # noqa: F401 - find_spec in private_use

    problems = []
    files = [path for folder in OUTSIDE_THE_CORE for path in sorted((REPOSITORY / folder).rglob("*.py"))
             if ".venv" not in path.parts and "{{" not in path.name]
    assert len(files) > 30
    for path in files:
        for line, module, name in core_imports(path):
            why = private_use(module, name)
            if why:
                problems.append(f"{path.relative_to(REPOSITORY)}:{line}: {why}")
    assert not problems, "imports of private core names:\n" + "\n".join(problems)


def test_the_core_has_no_import_cycle() -> None:
    """Module-level imports between core modules form no cycle (imports inside functions are
    deferred on purpose and may point anywhere)."""
    graph: dict[str, set[str]] = {}
    for name in core_modules():
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin
        tree = ast.parse(Path(spec.origin).read_text())
        edges = set()
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ampel_core"):
                edges.add(node.module)
            elif isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name.startswith("ampel_core.")}
        graph[name] = {edge for edge in edges if edge in graph or edge in core_modules()} - {name}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        assert module not in visiting, f"import cycle: {' -> '.join([*visiting[visiting.index(module):], module])}"
        if module in done:
            return
        visiting.append(module)
        for edge in graph.get(module, ()):
            visit(edge)
        visiting.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_layering() -> None:
    """The runtime never imports the built-in units; comparing runs does not need the notebook API."""
    for name in [m for m in core_modules() if m.startswith("ampel_core.runtime") or m.startswith("ampel_core.drivers")]:
        assert "builtin_units" not in {module for _, module, _ in core_imports(Path(importlib.util.find_spec(name).origin))}
    assert "ampel_core.api" not in {module for _, module, _ in core_imports(REPOSITORY / "ampel_core" / "compare.py")}


def test_the_store_contract_uses_the_protocol_only() -> None:
    """`StoreContract` calls only `Store` protocol methods on a store, so a backend that is not SQL
    can pass it (`SqlStoreContract` adds the SQL-only checks)."""
    protocol = {name for name in dir(Store) if not name.startswith("_")}
    calls: set[str] = set()
    for node in ast.walk(ast.parse(inspect.getsource(StoreContract))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if isinstance(receiver, ast.Subscript):  # stores[worker]
                receiver = receiver.value
            if isinstance(receiver, ast.Name) and receiver.id in ("store", "again", "reader", "stores"):
                calls.add(node.func.attr)
    assert calls and calls <= protocol, f"not in the Store protocol: {sorted(calls - protocol)}"
    assert {"quarantined", "alert_blobs", "tickets", "reports"} <= calls
