"""The floors of the code (docs/architecture.md): imports only go down, surfaces stand apart.

Also the size rule: a module past 500 lines says in its docstring why it is one module.

A module may import a module of its own floor or of a floor below it, never one above;
a surface never imports another surface (what two surfaces share lives on a lower floor);
and no two parts import each other. A new top-level module or package must be given its
floor here, which is the moment to decide where it belongs.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import meetplatform

PACKAGE = Path(meetplatform.__file__).parent

#: Each part of ``meetplatform`` (a top-level module or package) and its floor.
FLOORS: dict[str, int] = {
    # 0: vocabulary and rules every floor uses; no state, no I/O of their own.
    "meetplatform": 0,
    "meetplatform.config": 0,
    "meetplatform.text": 0,
    "meetplatform.checksum": 0,
    "meetplatform.sanitize": 0,
    "meetplatform.embedding": 0,
    "meetplatform.tenancy": 0,
    "meetplatform.model": 0,
    "meetplatform.events": 0,
    "meetplatform.secret": 0,
    "meetplatform.httpkit": 0,
    "meetplatform.stats": 0,
    "meetplatform.clientaddr": 0,
    # 1: who holds state: the live registry, the durable store, the recordings catalogue.
    "meetplatform.registry": 1,
    "meetplatform.classroom": 1,
    "meetplatform.store": 1,
    "meetplatform.recordings": 1,
    # 2: services over that state, shared by the surfaces.
    "meetplatform.history": 2,
    "meetplatform.invitations": 2,
    "meetplatform.webhooks": 2,
    "meetplatform.documents": 2,
    "meetplatform.media": 2,
    # 3: the surfaces, each translating one protocol, and the HTTP site under them.
    "meetplatform.xmlapi": 3,
    "meetplatform.restapi": 3,
    "meetplatform.web": 3,
    "meetplatform.signalling": 3,
    "meetplatform.site": 3,
    "meetplatform.upgrade": 3,
    # 4: composition, the process (its log, its metrics over every part), the commands.
    "meetplatform.build": 4,
    "meetplatform.logs": 4,
    "meetplatform.metrics": 4,
    "meetplatform.tap": 4,
    "meetplatform.cli": 4,
    "meetplatform.clients_cli": 4,
    "meetplatform.nodes_cli": 4,
}

SURFACES = {"meetplatform.xmlapi", "meetplatform.restapi", "meetplatform.web",
            "meetplatform.signalling"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("meetplatform", *path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _part(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _imports(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            for candidate in (name, *(f"{name}.{alias.name}" for alias in node.names)):
                if candidate in known:
                    targets.add(candidate)
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names if alias.name in known)
    targets.discard(module)
    return targets


def _edges() -> dict[tuple[str, str], str]:
    """``(from part, to part) -> one module import that makes the edge``."""
    known = _modules()
    edges: dict[tuple[str, str], str] = {}
    for module, path in known.items():
        for target in _imports(module, path, known):
            source_part, target_part = _part(module), _part(target)
            if source_part != target_part:
                edges.setdefault((source_part, target_part), f"{module} imports {target}")
    return edges


#: Past this many lines a module's docstring must say why it is one module.
LONG_MODULE_LINES = 500


def test_long_modules_say_why_they_are_one() -> None:
    unexplained = []
    for module, path in sorted(_modules().items()):
        source = path.read_text(encoding="utf-8")
        if source.count("\n") <= LONG_MODULE_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(source)) or ""
        if "Why one module" not in docstring:
            unexplained.append(module)
    assert unexplained == []


def test_every_part_has_a_floor() -> None:
    parts = {_part(module) for module in _modules()}
    assert sorted(parts - FLOORS.keys()) == []


def test_imports_only_go_down() -> None:
    upward = [why for (source, target), why in _edges().items()
              if FLOORS[target] > FLOORS[source]]
    assert upward == []


def test_surfaces_do_not_import_each_other() -> None:
    across = [why for (source, target), why in _edges().items()
              if source in SURFACES and target in SURFACES]
    assert across == []


def test_no_two_parts_import_each_other() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in _edges():
        graph[source].add(target)

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph[stack.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    circles = sorted({tuple(sorted((a, b))) for a in list(graph) for b in graph[a]
                      if reaches(b, a)})
    assert circles == []
