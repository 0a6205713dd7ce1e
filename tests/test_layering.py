"""The layering of DESIGN.md: core ← trainer ← apps; Qt only under apps/viewer/; no cycles.

The cycle check reads every import — also those inside functions, which hide a cycle
from Python but not from the design — and resolves relative ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QT = {"PySide6", "PyQt5", "PyQt6", "pyqtgraph", "qtpy", "pytestqt"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("rt_eeg2fmri", {"trainer", "apps"} | QT), ("trainer", {"apps"} | QT)],
)
def test_lower_layers_do_not_import_upper(package, forbidden):
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & forbidden) for p in _files(package)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_qt_only_under_viewer():
    viewer = ROOT / "apps" / "viewer"
    offenders = [
        str(p.relative_to(ROOT))
        for p in _files("apps")
        if viewer not in p.parents and _imports(p) & QT
    ]
    assert offenders == []


def test_every_module_is_scanned():
    assert len(_files("rt_eeg2fmri")) > 5


def _module_graph(root: Path, packages) -> dict[str, set[str]]:
    """``module → modules of the same tree it imports`` (``a.b`` for ``a/b.py``)."""

    def name_of(path: Path) -> str:
        parts = list(path.relative_to(root).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    files = {name_of(p): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for mod, path in files.items():
        here = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                deps.update(known(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                prefix = ".".join(base + ([node.module] if node.module else []))
                deps.update(known(f"{prefix}.{a.name}") or known(prefix) for a in node.names)
        graph[mod] = {d for d in deps if d and d != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_inside_the_packages():
    graph = _module_graph(ROOT, ["rt_eeg2fmri", "trainer", "apps"])
    assert len(graph) > 50
    assert _cycles(graph) == []


def test_the_cycle_check_finds_lazy_and_relative_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "run.py").write_text("from .evaluate import score\n")
    (pkg / "evaluate.py").write_text("def score():\n    from .run import x\n")  # lazy
    (pkg / "sub" / "a.py").write_text("from .. import run\nfrom . import b\n")
    (pkg / "sub" / "b.py").write_text("import pkg.sub.a\n")
    assert _cycles(_module_graph(tmp_path, ["pkg"])) == [
        ["pkg.evaluate", "pkg.run"],
        ["pkg.sub.a", "pkg.sub.b"],
    ]
