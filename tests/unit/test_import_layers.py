"""Imports point down: the executor knows no backend, `sim` and `engine` not each other.

Read from the source (AST), so an import inside a function counts as much as one at the
top of a module: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_fate"


def imported_modules(package: str) -> dict[str, set[str]]:
    """``airflow_fate`` modules imported by each file of ``package`` (or by one module)."""
    root = PACKAGE.joinpath(*package.split(".")[1:])
    module = root.with_suffix(".py")
    paths = [module] if module.is_file() else sorted(root.rglob("*.py"))
    assert paths, f"no source for {package}"
    found: dict[str, set[str]] = {}
    for path in paths:
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(PACKAGE.parent))] = {
            n for n in names if n.startswith("airflow_fate.")
        }
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        pytest.param("airflow_fate.executor", "airflow_fate.launch.kubernetes", id="executor"),
        pytest.param("airflow_fate.sim", "airflow_fate.engine", id="sim-not-engine"),
        pytest.param("airflow_fate.engine", "airflow_fate.sim", id="engine-not-sim"),
        pytest.param("airflow_fate.spine", "airflow_fate.sim", id="spine-not-sim"),
        pytest.param("airflow_fate.spine", "airflow_fate.engine", id="spine-not-engine"),
        pytest.param("airflow_fate.launch.types", "airflow_fate.launch.kubernetes", id="types"),
    ],
)
def test_package_does_not_import(package: str, forbidden: str) -> None:
    offenders = {
        path: sorted(n for n in names if n == forbidden or n.startswith(forbidden + "."))
        for path, names in imported_modules(package).items()
    }
    assert not {p: n for p, n in offenders.items() if n}, f"{package} imports {forbidden}"


def test_the_walk_sees_imports() -> None:
    """Guard against a vacuous pass: the executor does import the launch layer."""
    names = set().union(*imported_modules("airflow_fate.executor").values())
    assert "airflow_fate.launch.backends" in names
