"""[layout] harness/ has no import cycles. The module graph is built from the source with the standard library's
``ast``: every ``import`` and ``from … import`` anywhere in a module counts (at the top, inside a function, under
``if TYPE_CHECKING``), since a cycle deferred into a function still means neither module can be read, tested or
moved without the other. ``from pkg import name`` is an edge to the module ``pkg.name`` when there is one, else to
``pkg`` itself; the implicit import of a parent package's ``__init__`` is not an edge (each ``__init__`` would
otherwise depend on every module below it).

[layout] harness/ is grouped by stage: at most eight plain modules at its top, every package's ``__init__`` says
what it owns and what it may import, and no package imports one above it (LAYERS, top to bottom)."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "harness"

#: harness/'s units (a package, or a plain module at its top; ``harness`` is the package's own ``__init__``, the
#: public API), top to bottom. A unit imports only units of the layers below its own: never one above, never a
#: peer of its own layer. A new package must be placed here.
LAYERS: list[list[str]] = [
    ["harness", "__main__", "pytest_plugin", "flask_command"],
    ["cli"],
    ["lint"],
    ["rehearse", "rolling"],
    ["estimate", "reports"],
    ["run"],
    ["checks"],
    ["chain", "schema", "datagen"],
    ["backends"],
    ["config"],
    ["errors", "results"],
    ["versions", "_version"],
]
#: imports that go up, each with the reason it is tolerated (importer → imported)
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}
MAX_TOP_MODULES = 8


def _modules(root: Path) -> dict[str, Path]:
    """Dotted name → file, for every module of the package at ``root``."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of the package at ``root`` → the modules of the same package it imports."""
    modules = _modules(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base_name = ".".join(base + ([node.module] if node.module else []))
                else:
                    base_name = node.module or ""
                subs = [f"{base_name}.{alias.name}" for alias in node.names]
                targets = [s for s in subs if s in modules] or [base_name]
                if len(targets) < len(subs):  # a name that is not a module comes from base_name itself
                    targets.append(base_name)
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path that comes back to its start) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_path_back(graph, min(component), component) for component in components]


def _path_back(graph: dict[str, set[str]], start: str, within: set[str]) -> list[str]:
    """The shortest path from ``start`` back to itself inside one component (breadth first)."""
    paths = {nxt: [start, nxt] for nxt in sorted(graph[start]) if nxt in within}
    queue = list(paths)
    while queue:
        node = queue.pop(0)
        if start in graph[node]:
            return [*paths[node], start]
        for nxt in sorted(graph[node]):
            if nxt in within and nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError("a component without a cycle")  # pragma: no cover


def test_harness_has_no_import_cycle() -> None:
    found = cycles(import_graph(PACKAGE))
    assert not found, "import cycle(s) in harness/: " + "; ".join(" -> ".join(c) for c in found)


def test_a_cycle_is_found_and_named(tmp_path: Path) -> None:
    """The check above can fail: a function-level import that closes a loop is reported with its path."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from .b import thing\n")
    (pkg / "sub" / "b.py").write_text("def thing():\n    from .. import a\n    return a\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    assert cycles(import_graph(pkg)) == [["pkg.a", "pkg.sub.b", "pkg.a"]]
    (pkg / "sub" / "b.py").write_text("def thing():\n    return 1\n")
    assert cycles(import_graph(pkg)) == []


def unit(module: str) -> str:
    """The unit a dotted module belongs to: its package below harness/, or the plain module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_violations(graph: dict[str, set[str]], layers: list[list[str]],
                     allowed: dict[tuple[str, str], str]) -> list[str]:
    """Every import of a unit that is not below the importer's, and every unit with no layer."""
    rank = {name: i for i, layer in enumerate(layers) for name in layer}
    found = sorted({f"{unit(m)} has no layer (add it to LAYERS)" for m in graph if unit(m) not in rank})
    for module in sorted(graph):
        for target in sorted(graph[module]):
            source_unit, target_unit = unit(module), unit(target)
            if source_unit == target_unit or (module, target) in allowed:
                continue
            if source_unit in rank and target_unit in rank and rank[target_unit] <= rank[source_unit]:
                where = "a peer" if rank[target_unit] == rank[source_unit] else "above it"
                found.append(f"{module} imports {target} ({target_unit} is {where})")
    return found


def test_at_most_eight_plain_modules_at_the_top() -> None:
    """The top of harness/ holds the public API and the few modules every stage shares; the rest lives in the
    package of its stage, so that the layout shows the stages of a run."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} plain modules at harness/'s top: {top}; move one into the " \
                                        "package of its stage"


def test_each_package_says_what_it_owns_and_may_import() -> None:
    packages = sorted(p.parent for p in PACKAGE.rglob("__init__.py") if p.parent != PACKAGE)
    assert packages
    for package in packages:
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        if package.parent == PACKAGE:  # a stage: it says what it may import
            assert "may import" in " ".join(doc.split()).lower(), \
                f"{package.relative_to(REPO)}/__init__.py: its docstring must say what it owns and what it may import"
        else:
            assert doc, f"{package.relative_to(REPO)}/__init__.py: its docstring must say what the package owns"


def test_no_package_imports_one_above_it() -> None:
    graph = import_graph(PACKAGE)
    assert not layer_violations(graph, LAYERS, ALLOWED_UPWARD), "\n".join(
        layer_violations(graph, LAYERS, ALLOWED_UPWARD))
    for (importer, imported), reason in ALLOWED_UPWARD.items():  # an exception that is no longer needed goes
        assert imported in graph.get(importer, set()), f"{importer} no longer imports {imported}: drop it " \
                                                       f"from ALLOWED_UPWARD ({reason})"
    assert {unit(m) for m in graph} <= {name for layer in LAYERS for name in layer}


def test_an_upward_import_is_found_and_named(tmp_path: Path) -> None:
    """The layer check above can fail: an import of a package above, of a peer, and a package with no layer."""
    pkg = tmp_path / "pkg"
    for sub in ("low", "high", "peer", "stray"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "high" / "a.py").write_text("from ..low import b\n")
    (pkg / "low" / "b.py").write_text("def f():\n    from ..high import a\n    return a\n")
    (pkg / "peer" / "c.py").write_text("from ..high.a import f\n")
    layers = [["pkg"], ["high", "peer"], ["low"]]
    graph = import_graph(pkg)
    assert layer_violations(graph, layers, {}) == [
        "stray has no layer (add it to LAYERS)",
        "pkg.low.b imports pkg.high.a (high is above it)",
        "pkg.peer.c imports pkg.high.a (high is a peer)",
    ]
    assert layer_violations(graph, layers, {("pkg.low.b", "pkg.high.a"): "why", ("pkg.peer.c", "pkg.high.a"): ""}) \
        == ["stray has no layer (add it to LAYERS)"]


def test_a_command_starts_its_preflight_before_it_imports_sqlalchemy() -> None:
    """``run``, ``lint`` and ``rehearse`` start their preflight (the app loading in a worker) before the parent imports
    SQLAlchemy, the backends or the Docker client (docs/speed.md): what the command line and the preflight import
    stays light."""
    import subprocess
    import sys

    heavy = ("sqlalchemy", "alembic", "docker", "testcontainers", "rich")
    code = ("import sys, harness.cli, harness.cli.run, harness.cli.lint, harness.cli.rehearse, harness.run.preflight; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_public_run_is_the_function_whatever_was_imported_first() -> None:
    """``from harness import run`` is the runner's ``run`` even when the ``harness.run`` package was imported before
    it (a subpackage of that name would otherwise take the attribute's place)."""
    import subprocess
    import sys

    code = ("import harness.run.process, harness.run.runner, harness; from harness import run; "
            "print(callable(run), harness.run is run, run.__module__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True", "harness"], done.stdout
