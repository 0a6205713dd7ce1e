"""The layering of DESIGN.md: core ← trainer ← apps; Qt only under apps/viewer/."""

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
