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
