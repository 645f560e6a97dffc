"""nanofm's modules import each other in one direction: no cycles, counting imports inside functions too
(an import moved into a function to dodge a cycle still ties the two modules together)."""

from __future__ import annotations

import ast
from pathlib import Path

import nanofm

ROOT = Path(nanofm.__file__).parent  # src/nanofm


def module_files(root: Path) -> dict[str, Path]:
    """{"nanofm.families.bert.pretrain": path, "nanofm.tasks": .../tasks/__init__.py, ...}"""
    out = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports anywhere in its file (relative imports resolved; `from a
    import b` counts b when b is a module, else a)."""
    mods = module_files(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                names = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            for name in names:
                while name not in mods and "." in name:
                    name = name.rpartition(".")[0]
                if name in mods and name != mod:
                    graph[mod].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (strongly connected groups of 2+ modules, Tarjan's algorithm), leaving out a package
    whose __init__ re-exports its own submodules (they import it back only through those)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            top = min(group, key=len)
            if len(group) > 1 and not all(m == top or m.startswith(top + ".") for m in group):
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    # the bug it catches: a checker that reads module-level imports only, or gets relative imports wrong
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from .a import f\n")  # a re-export: not a cycle
    (pkg / "sub" / "a.py").write_text("from ..b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from .sub.a import f  # dodging the cycle\n    return f\n")
    (pkg / "c.py").write_text("import pkg.b\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.sub.a"} and graph["pkg.c"] == {"pkg.b"}
    assert cycles(graph) == [["pkg.b", "pkg.sub.a"]]


def test_nanofm_has_no_import_cycles():
    # the bug it catches: a module that imports a module above it (registry <-> models, interop <-> tasks, ...)
    assert cycles(import_graph(ROOT)) == []


# The house's one direction, top to bottom: a module may import its own group and the groups below it only.
LAYERS = [
    ("", "__main__"),  # the package's face: `import nanofm; nanofm.load(...)`, `python -m nanofm`
    ("cli",),
    ("serve",),  # nanofm serve: built on api; only the CLI imports it
    ("api",),
    ("experiments",),
    ("convert",),
    ("tasks",),
    ("families",),
    ("interop", "runs"),
    ("engine",),
    ("data", "core", "registry"),
    ("text", "vision", "viz"),
    ("config", "progress"),
    ("text_files",),
    ("errors", "version", "hashing"),
]
RANK = {group: len(LAYERS) - i for i, groups in enumerate(LAYERS) for group in groups}


def group(module: str) -> str:
    """nanofm.families.bert.model -> "families"; nanofm -> ""."""
    return module.split(".")[1] if "." in module else ""


def upward(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b}" for a, bs in graph.items() for b in bs
                  if group(a) != group(b) and RANK[group(a)] <= RANK[group(b)])


def test_every_module_has_a_layer():
    # the bug it catches: a new top-level module or package that nobody placed in the house (its imports unchecked)
    assert sorted({group(m) for m in module_files(ROOT)} - set(RANK)) == []


def test_the_checker_finds_an_upward_import():
    # the bug it catches: a check that passes everything (ranks inverted, or groups compared wrongly)
    graph = {"nanofm.engine.trainer": {"nanofm.families.bert.model"}, "nanofm.cli.train": {"nanofm.engine.trainer"}}
    assert upward(graph) == ["nanofm.engine.trainer -> nanofm.families.bert.model"]


def test_imports_run_one_way():
    # the bug it catches: a lower layer reaching up (the engine importing a family, a family importing the task
    # table or the CLI), even from inside a function
    assert upward(import_graph(ROOT)) == []
