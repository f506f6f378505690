"""The documentation site's sources agree with the package: the API reference
lists every public name, every public docstring passes numpydoc's checks, and
the gallery uses only the public API. (`make docs` builds the site itself.)"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import sktransfer
import sktransfer.datasets
import sktransfer.distributed
import sktransfer.testing

ROOT = Path(__file__).parents[1]
# As in docs/conf.py: every parameter described, returns described, a docstring.
CHECKS = {"PR01", "PR02", "PR07", "RT01", "RT03", "GL08"}


def public_names():
    top = [f"sktransfer.{n}" for n in sktransfer.__all__ if n != "__version__"]
    return (
        top
        + [f"sktransfer.datasets.{n}" for n in sktransfer.datasets.__all__]
        + [f"sktransfer.distributed.{n}" for n in sktransfer.distributed.__all__]
        + [f"sktransfer.testing.{n}" for n in sktransfer.testing.__all__]
    )


def public_methods():
    out = []
    for name in sktransfer.__all__:
        obj = getattr(sktransfer, name)
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if not attr.startswith("_") and (
                    inspect.isfunction(value) or isinstance(value, property)
                ):
                    out.append(f"sktransfer.{name}.{attr}")
    return out


def test_the_api_reference_lists_every_public_name():
    text = (ROOT / "docs" / "api.rst").read_text(encoding="utf-8")
    top, rest = text.split("sktransfer.datasets\n---")
    datasets, rest = rest.split("sktransfer.distributed\n---")
    distributed, testing = rest.split("sktransfer.testing\n---")
    listed = set(re.findall(r"^   (\w+)$", top, re.M))
    assert listed == set(sktransfer.__all__) - {"__version__"}
    listed = set(re.findall(r"^   (\w+)$", datasets, re.M))
    assert listed == set(sktransfer.datasets.__all__)
    listed = set(re.findall(r"^   (\w+)$", distributed, re.M))
    assert listed == set(sktransfer.distributed.__all__)
    listed = set(re.findall(r"^   (\w+)$", testing, re.M))
    assert listed == set(sktransfer.testing.__all__)


@pytest.mark.parametrize("name", public_names() + public_methods())
def test_docstring_passes_numpydoc_validation(name):
    validate = pytest.importorskip("numpydoc.validate").validate
    checks = CHECKS | ({"EX01"} if name in public_names() else set())
    errors = [f"{c} {m}" for c, m in validate(name)["errors"] if c in checks]
    assert not errors, errors


@pytest.mark.parametrize(
    "path", sorted((ROOT / "examples").glob("*.py")), ids=lambda p: p.name
)
def test_examples_import_only_public_modules(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = [
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    ]
    modules += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    private = [m for m in modules if any(p.startswith("_") for p in m.split("."))]
    assert not private, private


def test_the_user_guide_is_a_page_of_the_site():
    index = (ROOT / "docs" / "index.rst").read_text(encoding="utf-8")
    assert re.search(r"^   user_guide$", index, re.M)
    assert (ROOT / "docs" / "user_guide.md").is_file()
