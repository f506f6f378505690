"""The parameter tables (sktransfer._params) are the one declaration of each
estimator's parameters: signatures, docstrings, the user guide, validation,
persistence and checkpoints agree with them."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
)
from sktransfer._params import (
    CLASSIFIER_PARAMS,
    EXTRACTOR_PARAMS,
    FINETUNE_PARAMS,
    REGRESSOR_PARAMS,
    InvalidParameterError,
    names,
)
from sktransfer._testing import TinyMLP

CLASSES = [PretrainedFeatureExtractor, FineTunedClassifier, FineTunedRegressor]
USER_GUIDE = Path(__file__).parents[1] / "docs" / "user_guide.md"


def table_defaults(cls):
    return {p.name: p.default for p in cls._params}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_signature_lists_the_table_with_its_defaults(cls):
    signature = inspect.signature(cls.__init__)
    defaults = {
        name: p.default for name, p in signature.parameters.items() if name != "self"
    }
    assert list(defaults) == [p.name for p in cls._params]
    assert defaults == table_defaults(cls)


def docstring_parameters(doc):
    """``{name: default}`` of a numpydoc Parameters section (parsed by hand:
    numpydoc is not a dependency)."""
    section = doc.split("Parameters\n    ----------\n")[1].split("\n\n    ")[0]
    out = {}
    for line in section.splitlines():
        match = re.match(r"^    (\w+) : .*, default=(.+)$", line)
        if match:
            out[match[1]] = ast.literal_eval(match[2])
        else:
            assert line.startswith("        ") or not line.strip(), line
    return out


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_docstring_lists_the_table_with_its_defaults(cls):
    documented = docstring_parameters(cls.__doc__)
    assert list(documented) == [p.name for p in cls._params]
    assert documented == table_defaults(cls)


def test_user_guide_lists_the_tables_with_their_defaults():
    text = USER_GUIDE.read_text(encoding="utf-8")
    # The extractor: its signature in a code block.
    block = re.search(
        r"```python\n(PretrainedFeatureExtractor\(.*?\))\n```", text, re.S
    )
    call = ast.parse(block[1].replace("*, ", ""), mode="eval").body
    assert not call.args
    guide = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert list(guide) == [p.name for p in EXTRACTOR_PARAMS]
    assert guide == table_defaults(PretrainedFeatureExtractor)
    # The fine-tuners: the table of their parameters.
    section = text.split("## FineTunedClassifier and FineTunedRegressor")[1]
    section = section.split("\n## ")[0]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", section, re.M)
    guide = {name: ast.literal_eval(default) for name, default in rows}
    table = {
        p.name: p.default
        for p in FINETUNE_PARAMS + CLASSIFIER_PARAMS + REGRESSOR_PARAMS
    }
    assert sorted(guide) == sorted(table)
    assert guide == table


def test_a_parameter_error_is_a_value_error_and_a_type_error():
    est = PretrainedFeatureExtractor(TinyMLP(), preprocessing="passthrough")
    X = np.zeros((2, 3), np.float32)
    for exc in (InvalidParameterError, ValueError, TypeError):
        with pytest.raises(
            exc, match=r"PretrainedFeatureExtractor: batch_size must be an int >= 1"
        ):
            est.set_params(batch_size=0).fit(X)


@pytest.mark.parametrize(
    "cls, params, match",
    [
        (
            PretrainedFeatureExtractor,
            {"random_state": "seed"},
            r"random_state must be None, an int or a numpy RandomState, got 'seed'\.",
        ),
        (
            PretrainedFeatureExtractor,
            {"image_shape": (8, 8, 2)},
            r"image_shape must be None, \(H, W\) or \(H, W, C\) with C in "
            r"\(1, 3, 4\), got \(8, 8, 2\)\.",
        ),
        (
            FineTunedRegressor,
            {"target_scaling": "yes"},
            r"target_scaling must be True or False, got 'yes'\.",
        ),
        (
            FineTunedClassifier,
            {"class_weight": 3},
            r"class_weight must be None, 'balanced' or a dict \{label: weight\}, "
            r"got 3\.",
        ),
    ],
)
def test_every_table_constraint_names_class_parameter_and_value(cls, params, match):
    est = cls(TinyMLP(), preprocessing="passthrough", **params)
    X = np.zeros((4, 3), np.float32)
    with pytest.raises(InvalidParameterError, match=f"{cls.__name__}: {match}"):
        est.fit(X, [0, 1, 0, 1])


def test_persistence_and_checkpoints_read_the_tables():
    from sktransfer import _checkpoint, _persistence

    assert names(FINETUNE_PARAMS, fit_only=True) == (
        "weights",
        "train_transform",
        "random_state",
        "net_params",
        "accelerator",
    )
    assert names(FINETUNE_PARAMS, affects_training=False) == (
        "verbose",
        "checkpoint_dir",
        "tta",
        "accelerator",
        "n_jobs",
        "compile",
    )
    # No other list of parameter names is left in these modules.
    for module in (_persistence, _checkpoint):
        source = inspect.getsource(module)
        assert "_FIT_ONLY" not in source and "_NOT_CONFIG" not in source
