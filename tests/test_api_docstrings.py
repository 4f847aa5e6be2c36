"""Every public function, class and method documents exactly the parameters it takes."""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re

import pytest

import stgraph


def public_subpackages() -> tuple:
    """Every stgraph subpackage with an ``__all__``, found by walking the package so a
    new one is covered too; private ones (a ``_`` in the dotted name) are left out."""
    found = []
    for info in pkgutil.walk_packages(stgraph.__path__, "stgraph."):
        if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
            module = importlib.import_module(info.name)
            if hasattr(module, "__all__"):
                found.append(module)
    return tuple(found)


NAMESPACES = public_subpackages()
# numpydoc headers whose entries name parameters (a dataclass documents its fields
# as attributes); the nn layers follow PyG's Google style ("Args:").
NUMPYDOC_SECTIONS = ("Parameters", "Other Parameters")
GOOGLE_SECTION = re.compile(r"^\s*Args:\s*$")
GOOGLE_ENTRY = re.compile(r"^(\s+)\**(\w+)\s*(?:\([^)]*\))?:")
NUMPYDOC_ENTRY = re.compile(r"^\**([\w*]+(?:\s*,\s*\**\w+)*)\s*(?::.*)?$")


def _numpydoc_names(lines: list[str], sections: tuple[str, ...]) -> set[str]:
    """Names of the entries (unindented lines) under the given numpydoc headers."""
    names, inside = set(), False
    for line, underline in zip(lines, lines[1:] + [""]):
        if re.fullmatch(r"-{3,}", underline.strip()):
            inside = line.strip() in sections
        elif inside and line and not line[0].isspace() and not re.fullmatch(r"-{3,}", line.strip()):
            match = NUMPYDOC_ENTRY.match(line)
            if match:
                names.update(name.strip().lstrip("*") for name in match.group(1).split(","))
    return names


def _google_names(lines: list[str]) -> set[str]:
    """Names of the entries of a Google-style ``Args:`` section (first indentation only)."""
    names, indent = set(), None
    for line in lines:
        if GOOGLE_SECTION.match(line):
            indent = 0
            continue
        if indent is None:
            continue
        if line.strip() and not line[0].isspace():
            break  # the next section
        match = GOOGLE_ENTRY.match(line)
        if match and indent in (0, len(match.group(1))):
            indent = len(match.group(1))
            names.add(match.group(2))
    return names


def documented_parameters(doc: str, sections: tuple[str, ...] = NUMPYDOC_SECTIONS) -> set[str]:
    """Parameter names a docstring documents, numpydoc or Google style."""
    lines = inspect.cleandoc(doc or "").splitlines()
    return _numpydoc_names(lines, sections) | _google_names(lines)


def signature_parameters(obj) -> list[str]:
    """Named parameters of ``obj`` (``self`` and ``*args`` / ``**kwargs`` left out: they may
    only forward, as :meth:`stgraph.models.MaskedGeneModel.forward` does)."""
    return [
        name
        for name, p in inspect.signature(obj).parameters.items()
        if name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def class_sections(cls, doc: str) -> tuple[str, ...]:
    """The sections that document ``cls``'s constructor: a dataclass may document its
    fields as attributes, unless it has a Parameters section, beside which Attributes
    names what else an instance holds (e.g. what ``__post_init__`` sets)."""
    if dataclasses.is_dataclass(cls) and not documented_parameters(doc):
        return NUMPYDOC_SECTIONS + ("Attributes",)
    return NUMPYDOC_SECTIONS


def public_callables():
    """``(name, callable, docstring, sections)`` of every public function, class and method
    (class and static methods included)."""
    for module in NAMESPACES:
        for name in module.__all__:
            obj = getattr(module, name)
            qualname = f"{module.__name__}.{name}"
            if inspect.isfunction(obj):
                yield qualname, obj, obj.__doc__, NUMPYDOC_SECTIONS
            elif inspect.isclass(obj):
                init = obj.__dict__.get("__init__")
                doc = (obj.__doc__ or "") + "\n\n" + ((init.__doc__ or "") if init else "")
                if init is not None or dataclasses.is_dataclass(obj):
                    yield qualname, obj, doc, class_sections(obj, doc)
                for method_name, method in vars(obj).items():
                    if isinstance(method, (classmethod, staticmethod)):
                        method = method.__func__
                    # PyG sets a ``propagate`` generated in a module of its own on a layer's
                    # class once one is built: only the methods written with the class count.
                    own = inspect.isfunction(method) and method.__module__ == obj.__module__
                    if own and not method_name.startswith("_"):
                        yield f"{qualname}.{method_name}", method, method.__doc__, NUMPYDOC_SECTIONS


def mismatches() -> list[str]:
    """One line per public callable whose documented parameters differ from its signature."""
    found = []
    for qualname, obj, doc, sections in public_callables():
        taken = signature_parameters(obj)
        documented = documented_parameters(doc, sections)
        undocumented = [name for name in taken if name not in documented]
        # Documenting what ``**options`` forwards is fine; naming nothing it takes is not.
        absent = sorted(documented - set(inspect.signature(obj).parameters))
        if undocumented or absent:
            found.append(f"{qualname}: undocumented {undocumented}, documented but absent {absent}")
    return found


def test_namespaces_cover_every_public_subpackage():
    names = {module.__name__ for module in NAMESPACES}
    assert {"stgraph.tl", "stgraph.pl", "stgraph.io", "stgraph.datasets", "stgraph.nn", "stgraph.models",
            "stgraph.coloc", "stgraph.spots", "stgraph.localization", "stgraph.domains", "stgraph.graph",
            "stgraph.data", "stgraph.nn.conv", "stgraph.cli"} <= names
    assert not any("._" in name for name in names)


def test_docstrings_document_exactly_the_signature():
    assert mismatches() == []


@pytest.mark.parametrize(
    "doc, expected",
    [
        ("Do.\n\nParameters\n----------\na, b\n    Two.\nc : int\n    One.\n\nReturns\n-------\nx\n    Not a parameter.\n", {"a", "b", "c"}),
        ("Do.\n\n    Args:\n        conv (Module): Layer.\n            more (text): not an entry.\n        k (int, optional): K.\n\n    Shapes:\n", {"conv", "k"}),
        ("Do, with no parameters section.", set()),
    ],
)
def test_documented_parameters_reads_both_styles(doc, expected):
    assert documented_parameters(doc) == expected


def test_dataclass_attributes_count_only_without_a_parameters_section():
    @dataclasses.dataclass
    class Fields:
        """Fields.\n\nAttributes\n----------\na\n    A.\n"""

        a: int

    @dataclasses.dataclass
    class Both:
        """Both.\n\nParameters\n----------\na\n    A.\n\nAttributes\n----------\nb\n    Set later.\n"""

        a: int

    fields, both = (documented_parameters(c.__doc__, class_sections(c, c.__doc__)) for c in (Fields, Both))
    assert (fields, both) == ({"a"}, {"a"})
