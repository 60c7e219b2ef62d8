"""Every exception the project defines derives from DativoError and is drawn, with its
module, in the tree of dativo/errors.py's docstring; the tree names no class that is
gone. Imports every module of dativo/, taps/ and targets/ to find them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import dativo.errors
from dativo.errors import DativoError
from tests.conftest import REPO

PACKAGES = ["dativo", *sorted(path.parent.name for base in ("taps", "targets")
                              for path in (REPO / base).glob("*/__init__.py"))]
TREE_NODE = re.compile(r"^ {4}(?:[│ ]   )*(?:[├└]── )?(\w+)(?: \(([\w.]+)\))?:", re.MULTILINE)


def project_exceptions() -> dict[str, type[BaseException]]:
    """Qualified name -> class, for every exception class defined in a project module."""
    found: dict[str, type[BaseException]] = {}
    for package in PACKAGES:
        root = importlib.import_module(package)
        modules = [package, *(info.name for info in
                              pkgutil.walk_packages(root.__path__, f"{package}."))]
        for name in modules:
            for value in vars(importlib.import_module(name)).values():
                if (inspect.isclass(value) and issubclass(value, BaseException)
                        and value.__module__ == name):
                    found[f"{name}.{value.__qualname__}"] = value
    return found


def tree() -> dict[str, str]:
    """Class name -> module, as errors.py's docstring draws them."""
    doc = dativo.errors.__doc__ or ""
    return {name: module or "dativo.errors" for name, module in TREE_NODE.findall(doc)}


def test_the_walk_finds_every_package_and_the_known_exceptions() -> None:
    assert {"dativo", "tap_dativo_postgres", "target_dativo_iceberg"} <= set(PACKAGES)
    names = {cls.__name__ for cls in project_exceptions().values()}
    assert {"DativoError", "TransientFailure", "RefusedFile", "SourceError"} <= names


def test_every_project_exception_derives_from_dativo_error() -> None:
    outside = sorted(name for name, cls in project_exceptions().items()
                     if not issubclass(cls, DativoError))
    assert outside == []


def test_the_tree_in_errors_py_is_complete_and_current() -> None:
    drawn = tree()
    defined = {cls.__name__: cls.__module__ for cls in project_exceptions().values()}
    assert drawn == defined


def test_the_tree_draws_each_class_under_its_base() -> None:
    """Indentation is ancestry: each node's nearest shallower node is its base class."""
    classes = {cls.__name__: cls for cls in project_exceptions().values()}
    parents: list[str] = []
    for match in TREE_NODE.finditer(dativo.errors.__doc__ or ""):
        depth = (len(match[0]) - len(match[0].lstrip(" │├└─"))) // 4 - 1
        parents[depth:] = [match[1]]
        if depth:
            assert issubclass(classes[match[1]], classes[parents[depth - 1]]), match[1]
