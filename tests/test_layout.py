"""The package's layout holds: measurements apart from presentation, and no import circle.

Read from the source with ``ast`` (nothing is imported), every import counts, also one inside a
function: a lazy import that hides a circle is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "solu_repro"
PRESENTATION = ("plotly", "ipywidgets", "IPython", "myst_nb", "html", "solu_repro.book")
"""What a module of ``solu_repro.paper`` must not import: figures, widgets, notebook display,
HTML rendering and the book."""


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """Every module ``name`` imports (absolute names; ``from pkg import sub`` counts as
    ``pkg.sub`` when ``sub`` is a module of this package)."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    out.add(f"{target}.{alias.name}")
    return out


def internal_graph() -> dict[str, set[str]]:
    graph = {}
    for name in MODULES:
        deps = {d for d in imports(name) if d in MODULES and d != name}
        # a package's __init__ importing its own submodules is how packages work, not a circle
        graph[name] = {d for d in deps if not (MODULES[name].name == "__init__.py"
                                               and d.startswith(name + "."))}
        # importing ``pkg.sub`` runs ``pkg/__init__`` first; that edge is the package's
        graph[name] -= {d for d in deps if MODULES[d].name == "__init__.py"
                        and name.startswith(d + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_module_graph_is_read():
    assert "solu_repro.paper.claim" in MODULES and "solu_repro.train.step" in MODULES
    assert "solu_repro.paper.claim" in imports("solu_repro.paper.registry")
    assert "solu_repro.train.step" in imports("solu_repro.train.precision")


def test_no_import_circle():
    cycle = find_cycle(internal_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", [n for n in MODULES if n.startswith("solu_repro.paper")])
def test_paper_modules_import_no_presentation(name):
    bad = sorted(d for d in imports(name)
                 if any(d == p or d.startswith(p + ".") for p in PRESENTATION))
    assert not bad, f"{name} imports {bad}: measurements go in solu_repro.paper, their " \
                    "figures, tables and HTML in solu_repro.book"


def test_every_claim_is_decided_by_a_function_of_its_section():
    from solu_repro.paper import registry

    for spec in registry.CLAIMS:
        assert spec.decide is not None, f"{spec.id} has no decide function"
        module = spec.decide.__module__
        assert module.startswith("solu_repro.paper.s"), (spec.id, module)
        assert spec in getattr(__import__(module, fromlist=["CLAIMS"]), "CLAIMS"), spec.id
        assert spec.decide.__name__ == f"decide_{spec.id}", spec.decide.__name__


def test_hook_names_are_built_in_one_place():
    """Outside ``solu_repro.hooks`` no module spells a hook name as an f-string."""
    import re

    spelled = re.compile(r"f\"[^\"]*(blocks\.\{[^}]*\}\.|\.hook_\{)")
    offenders = [f"{n}:{i}" for n, p in MODULES.items() if n != "solu_repro.hooks"
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if spelled.search(line) and not line.lstrip().startswith("#")]
    assert not offenders, offenders
