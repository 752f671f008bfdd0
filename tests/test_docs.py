"""The manual builds strictly (a broken link or API reference fails the suite), and its
code blocks import the modules they use and pass keras-clr's public names keyword
arguments they take (methods and positional arguments are not checked)."""

import ast
import inspect
import pathlib
import re
import subprocess
import sys
import textwrap

import keras

import keras_clr

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_mkdocs_builds_strictly(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "api" / "index.html").exists()


# The modules a snippet may use once a block of its page has imported them.
_IMPORTABLE = {"jax", "json", "keras", "keras_clr", "math", "np", "ops", "os", "pd", "plt",
               "tf", "torch", *keras_clr.__all__}
_FENCE = re.compile(r"^([ \t]*)```(?:python|py)\b[^\n]*\n(.*?)^\1```", re.S | re.M)


def _python_blocks():
    """Every ```python (or ```py) block of the README and the manual, with its page and
    line; indented ones (in a list item) dedented."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        blocks = list(_FENCE.finditer(text))
        opened = re.findall(r"^[ \t]*```(?:python|py)\b", text, re.M)
        assert len(blocks) == len(opened), f"{page.name}: a python block is not closed"
        for match in blocks:
            yield (page.name, text.count("\n", 0, match.start()) + 2,
                   textwrap.dedent(match.group(2)))


def _imported_names(tree):
    return {(alias.asname or alias.name).split(".")[0]
            for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names}


def _keyword_errors(tree):
    """Keyword arguments that keras-clr's public names (called as `name(...)` or
    `keras_clr.name(...)`) do not take; those with `**fit_kwargs` pass the rest to `fit`."""
    errors = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and getattr(func.value, "id", None) == "keras_clr":
            name = func.attr
        else:
            name = getattr(func, "id", None)
        if name not in keras_clr.__all__:
            continue
        parameters = dict(inspect.signature(getattr(keras_clr, name)).parameters)
        if parameters.pop("fit_kwargs", None):
            parameters |= inspect.signature(keras.Model.fit).parameters
        errors += [f"{name}({k.arg}=...)" for k in node.keywords
                   if k.arg is not None and k.arg not in parameters]
    return errors


def test_code_blocks_import_what_they_use_and_pass_arguments_that_exist():
    # Copied in order, each page's blocks must run as far as names go: a module or
    # keras-clr name is imported in that block or an earlier one of the same page
    # (the variables a page assumes, `model`, `x`, `y`, are the reader's).
    problems, imported = [], {}
    for page, line, code in _python_blocks():
        tree = ast.parse(code, f"{page}:{line}")
        seen = imported.setdefault(page, set())
        seen |= _imported_names(tree)
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        problems += [f"{page}:{line}: {name} is used, never imported"
                     for name in sorted((used & _IMPORTABLE) - seen)]
        problems += [f"{page}:{line}: {call}" for call in _keyword_errors(tree)]
    assert not problems, "\n".join(problems)
