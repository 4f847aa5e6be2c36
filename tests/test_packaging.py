"""The installed package carries its data: every non-Python file in ``stgraph/`` is
declared as package data in ``pyproject.toml`` (otherwise a wheel leaves it out, as it
once did the shipped localization checkpoint); it imports only declared packages, and
no module of it imports another module's private name."""
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


def _is_submodule(module: str, name: str) -> bool:
    import importlib.util

    is_package = importlib.util.find_spec(module).submodule_search_locations is not None
    return is_package and importlib.util.find_spec(f"{module}.{name}") is not None


def _private_imports() -> list[str]:
    """``'file: module.name'`` for every import in ``stgraph/``, relative or from
    ``stgraph.``, of another module's private (underscore) name; private submodules
    (``_schema``) are modules, not names."""
    import ast
    import importlib.util

    found = []
    for path in sorted((ROOT / "stgraph").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        package = ".".join(parts[:-1] if parts[-1] != "__init__" else parts[:-1])
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if not node.level and (node.module or "").split(".")[0] != "stgraph":
                continue  # another package's private names are not stgraph's to police
            module = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and not _is_submodule(module, alias.name):
                    found.append(f"{path.relative_to(ROOT)}: {module}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_name():
    # io._xenium imported io._generic._read_text: a name its module may change freely;
    # pl._localization imported localization._geometry._nucleus_per_cell absolutely.
    assert _private_imports() == []
