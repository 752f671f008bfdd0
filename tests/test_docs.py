"""The manual builds strictly (a broken link or API reference fails the suite), and its
code blocks import what they use and call keras-clr with arguments it takes."""

import ast
import inspect
import pathlib
import re
import subprocess
import sys

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
_IMPORTABLE = {"keras", "keras_clr", "math", "np", "pd", "plt", "tf", *keras_clr.__all__}


def _python_blocks():
    """Every ```python block of the README and the manual, with its page and line."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            yield page.name, text.count("\n", 0, match.start()) + 2, match.group(1)


def _imported_names(tree):
    return {(alias.asname or alias.name).split(".")[0]
            for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names}


def _keyword_errors(tree):
    """Keyword arguments that keras-clr's public callables do not take (those with
    `**fit_kwargs` pass the rest to `fit`)."""
    errors = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in keras_clr.__all__):
            parameters = dict(inspect.signature(getattr(keras_clr, node.func.id)).parameters)
            if parameters.pop("fit_kwargs", None):
                parameters |= inspect.signature(keras.Model.fit).parameters
            errors += [f"{node.func.id}({k.arg}=...)" for k in node.keywords
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
