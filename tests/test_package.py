"""Packaging rules: backend independence, one version, runnable examples."""

import ast
import pathlib
import re
import runpy
import sys

import pytest

import keras_clr

PACKAGE = pathlib.Path(keras_clr.__file__).parent
ROOT = PACKAGE.parent


def imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("module", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_modules_never_import_tensorflow(module):
    assert not [m for m in imported_modules(module) if m.split(".")[0] == "tensorflow"]


def test_version_is_defined_once():
    definitions = [
        path for path in ROOT.rglob("*.py")
        if ".venv" not in path.parts
        and re.search(r"^__version__ = ", path.read_text(), re.MULTILINE)
    ]
    assert definitions == [PACKAGE / "__init__.py"]
    assert "attr: keras_clr.__version__" in (ROOT / "setup.cfg").read_text()


@pytest.mark.parametrize(
    "script", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name
)
def test_example_runs(script, monkeypatch, capsys):
    # In this process, as `python examples/NAME.py --smoke` (one Keras start-up for all).
    monkeypatch.setattr(sys, "argv", [str(script), "--smoke"])
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out


def test_every_public_name_resolves_lazily():
    assert set(keras_clr.__all__) == {*keras_clr._SOURCES, "__version__"}
    for name in keras_clr.__all__:
        assert getattr(keras_clr, name) is not None
