"""Imports point down, never up: no cycles among openclaw_rl's parts, nor among its modules.

Every ``import`` counts, function-level ones included: a lazy import hides a cycle from the
interpreter, not from a reader. Parts are the subpackages (``roll``, ``rock``, ...) and the
top-level modules (``episodes``, ``train``, ...); a ``__main__`` module is a command line, the top
layer (ARCHITECTURE.md: ``train.py / CLIs -> ... -> rock``), so it is a part of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "openclaw_rl"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The openclaw_rl modules that module ``name`` (at ``path``) imports, at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from pkg import module` imports the module
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {target for target in found if target in known and target != name}


def module_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(path, name, set(found)) for name, path in found.items()}


def part(module: str) -> str:
    """``openclaw_rl.roll.trainer`` -> ``roll``; ``openclaw_rl.data.__main__`` -> ``data.__main__``."""
    parts = module.split(".")[1:]
    if not parts:
        return "openclaw_rl"
    return ".".join(parts[:2]) if parts[-1] == "__main__" else parts[0]


def part_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    parts: dict[str, set[str]] = {}
    for module, targets in graph.items():
        edges = parts.setdefault(part(module), set())
        edges.update(part(t) for t in targets if part(t) != part(module))
    return parts


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``[a, b, ..., a]``, or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_finder_sees_cycles_and_function_level_imports(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom . import sib\n\ndef f():\n    from openclaw_rl.roll.trainer import train\n")
    known = {"openclaw_rl.roll.trainer", "openclaw_rl.roll.sib", "openclaw_rl.roll"}
    assert imports(source, "openclaw_rl.roll.m", known) == {"openclaw_rl.roll.trainer", "openclaw_rl.roll.sib"}
    assert part("openclaw_rl.data.__main__") == "data.__main__" and part("openclaw_rl.roll.sft") == "roll"


def test_the_graph_covers_the_package():
    graph = module_graph()
    assert "openclaw_rl.roll.trainer" in graph and "openclaw_rl.rock.vector" in graph["openclaw_rl.rock"]
    assert "openclaw_rl.rock" in graph["openclaw_rl.roll.trainer"]


def test_parts_import_each_other_in_one_direction():
    cycle = find_cycle(part_graph(module_graph()))
    assert cycle is None, "a cycle among openclaw_rl's parts: " + " -> ".join(cycle)


def test_modules_import_each_other_in_one_direction():
    cycle = find_cycle(module_graph())
    assert cycle is None, "a cycle among openclaw_rl's modules: " + " -> ".join(cycle)


# ARCHITECTURE.md's lower layers, bottom first; a part imports only parts of the layers below its own.
LAYERS = [
    {"errors"},  # the errors every part may raise
    {"imports"},  # module:name targets a config names (a feature function, an agent)
    {"rock", "ipa", "metrics", "atomic", "progress"},  # leaves: none imports another part but errors
    {"strategies", "episodes", "memory"},  # V7 rules; the episode runner; the policies' memory designs
    {"data"},  # trajectory datasets, which SFT reads
    {"roll"},
]


def test_the_lower_layers_import_only_layers_below_them():
    parts = part_graph(module_graph())
    for level, layer in enumerate(LAYERS):
        below = set().union(*LAYERS[:level])
        for name in layer:
            assert name in parts, f"{name}: no such part (update LAYERS)"
            assert parts[name] <= below, f"{name} imports {sorted(parts[name] - below)}, not below it"
