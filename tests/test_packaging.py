"""The installed package carries its data: every non-Python file in ``stgraph/`` is
declared as package data in ``pyproject.toml`` (otherwise a wheel leaves it out, as it
once did the shipped localization checkpoint)."""
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def test_every_data_file_is_declared_package_data():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    covered = {
        path
        for package, patterns in declared.items()
        for pattern in patterns
        for path in (ROOT / package.replace(".", "/")).glob(pattern)
        if path.is_file()
    }
    data_files = {
        path
        for path in (ROOT / "stgraph").rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    }
    assert data_files, "the package is expected to ship data (the MERFISH sample, the pattern checkpoint)"
    assert sorted(map(str, data_files - covered)) == []


def test_every_licence_file_in_the_package_is_declared():
    """Embedded data under its own licence (the MERFISH sample: BSD-2-Clause) must be
    named in the metadata, next to stgraph's own BSD-3-Clause."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    shipped = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "stgraph").rglob("LICENSE*"))
    assert shipped == ["stgraph/datasets/_data/merfish_u2os/LICENSE"]
    assert set(shipped) <= set(project["license-files"])
    assert "BSD 2-Clause License" in (ROOT / shipped[0]).read_text()
    assert project["license"] == "BSD-3-Clause AND BSD-2-Clause"


def _imported_distributions() -> dict[str, set[str]]:
    """Distribution name (normalised) -> modules of ``stgraph/`` importing it, for every
    third-party top-level module the package imports."""
    import ast
    import importlib.metadata
    import re
    import sys

    providers = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in (ROOT / "stgraph").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top == "stgraph" or top in sys.stdlib_module_names:
                    continue
                # Not installed (an optional extra such as torch_cluster): PyPI spells it with "-".
                for dist in providers.get(top, [top]):
                    name = re.sub(r"[-_.]+", "-", dist).lower()
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_package_is_a_declared_dependency():
    import re

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    declared = {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.\-]+", r).group()).lower() for r in requirements}
    undeclared = {name: sorted(paths) for name, paths in _imported_distributions().items() if name not in declared}
    assert undeclared == {}
