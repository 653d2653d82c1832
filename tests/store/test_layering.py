"""The store is the lowest floor: it imports nothing of the packages built on it."""

from __future__ import annotations

import ast
from pathlib import Path

import meetplatform.store

#: What the store may import of meetplatform: itself, the configuration and the plain
#: counters of meetplatform.stats (a leaf: see the last test).
ALLOWED = ("meetplatform.store", "meetplatform.config", "meetplatform.stats")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside the store package
                names.add("meetplatform.store")
            elif node.module is not None:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_store_imports_nothing_above_it() -> None:
    """Webhooks, history, the surfaces use the store; the store knows none of them (the
    webhook outbox's fan-out lives in meetplatform.webhooks.outbox)."""
    package = Path(meetplatform.store.__file__).parent
    upward = {
        f"{path.relative_to(package)}: {name}"
        for path in sorted(package.rglob("*.py"))
        for name in imported(path)
        if (name == "meetplatform" or name.startswith("meetplatform."))
        and not any(name == a or name.startswith(a + ".") for a in ALLOWED)
    }
    assert upward == set()


def test_the_counters_the_store_uses_import_nothing_of_meetplatform() -> None:
    """meetplatform.stats is allowed below the store only while it is a leaf."""
    import meetplatform.stats

    names = imported(Path(meetplatform.stats.__file__))
    assert not {n for n in names if n == "meetplatform" or n.startswith("meetplatform.")}
