"""The declared floors and the oldest-versions job's pins are the same versions.

pyproject.toml declares ``name>=X`` for every dependency and extra;
.ci/oldest-constraints.txt, which ``make test-oldest`` installs, pins
``name==X``. A floor raised in one place and not the other would make the
declared minimum untrue again, so every requirement is checked against the pin.
"""

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
requirements = pytest.importorskip("packaging.requirements")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / ".ci" / "oldest-constraints.txt"

if not (PYPROJECT.is_file() and CONSTRAINTS.is_file()):  # an installed copy
    pytest.skip("needs a source checkout", allow_module_level=True)


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins():
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)\s*={2,3}\s*(\S+)", line)
        assert match, f"{CONSTRAINTS.name}: not a `name==version` pin: {line!r}"
        name = _canonical(match[1])
        assert name not in pins, f"{CONSTRAINTS.name} pins {name} twice"
        pins[name] = match[2]
    return pins


def _declared():
    """(where, Requirement) for every floor pyproject.toml declares."""
    config = tomllib.loads(PYPROJECT.read_text())
    declared = [("build-system", r) for r in config["build-system"]["requires"]]
    declared += [("dependencies", r) for r in config["project"]["dependencies"]]
    for extra, reqs in config["project"]["optional-dependencies"].items():
        if extra == "lint":  # an exact pin of the formatter, not a floor
            continue
        declared += [(f"[{extra}]", r) for r in reqs]
    out = []
    for where, text in declared:
        req = requirements.Requirement(text)
        if _canonical(req.name) != "sktransfer":  # an extra made of extras
            out.append((where, req))
    return out


def test_every_floor_is_pinned_by_the_oldest_versions_job():
    pins = _pins()
    for where, req in _declared():
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == ">=", (
            f"{where} {req}: declare a single `>=` floor (the oldest tested release)"
        )
        name = _canonical(req.name)
        assert name in pins, f"{where} {req} has no pin in {CONSTRAINTS.name}"
        assert pins[name] == specs[0].version, (
            f"{where} {req}: {CONSTRAINTS.name} pins {name}=={pins[name]}; "
            "the declared floor and the tested one must be the same"
        )


def test_every_pin_is_a_declared_floor():
    declared = {_canonical(req.name) for _, req in _declared()}
    stray = sorted(set(_pins()) - declared)
    assert not stray, f"{CONSTRAINTS.name} pins {stray}, which pyproject.toml lacks"
