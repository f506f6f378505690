"""Fine-tuning through Hugging Face Accelerate (skorch's AccelerateMixin), on
the CPU in one process."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._testing import (
    TinyConvNet,
    assert_allclose_float32,
    make_shapes_dataset,
)

accelerate = pytest.importorskip("accelerate")
from skorch.hf import AccelerateMixin  # noqa: E402

PRE = {"resize_size": 16, "crop_size": 16}


def seeded_convnet():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyConvNet()


@pytest.fixture(scope="module")
def data():
    return make_shapes_dataset(n_per_class=8, size=20)


def make(cls=FineTunedClassifier, **params):
    defaults = {
        "weights": None,
        "preprocessing": PRE,
        "max_epochs": 3,
        "batch_size": 8,
        "augment": "off",
        "device": "cpu",
        "random_state": 0,
    }
    return cls(seeded_convnet(), **{**defaults, **params})


def test_classifier_trains_through_an_accelerator(data):
    X, y = data
    plain = make().fit(X, y)
    accelerated = make(accelerator="auto").fit(X, y)
    assert isinstance(accelerated.net_, AccelerateMixin)
    assert not isinstance(plain.net_, AccelerateMixin)
    assert accelerated.device_ == torch.device("cpu")
    proba = accelerated.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert set(accelerated.predict(X)) <= set(np.unique(y))
    # One CPU process, full precision: the same training as without it.
    assert len(accelerated.history_) == len(plain.history_)
    assert_allclose_float32(proba, plain.predict_proba(X), ulps=4096)


def test_regressor_and_an_accelerator_object(data):
    X, y = data
    target = (y == y[0]).astype(float) * 2.0 - 1.0
    reg = make(FineTunedRegressor, accelerator=accelerate.Accelerator()).fit(X, target)
    assert isinstance(reg.net_, AccelerateMixin)
    pred = reg.predict(X)
    assert pred.shape == (len(X),) and np.isfinite(pred).all()


def test_an_accelerated_fit_clones_and_pickles(data):
    X, y = data
    clf = make(accelerator="auto").fit(X, y)
    assert clone(clf).get_params()["accelerator"] == "auto"
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_accelerator_errors(data):
    X, y = data
    with pytest.raises(ValueError, match="with an accelerator, mixed precision is the"):
        make(accelerator="auto", precision="bfloat16").fit(X, y)
    with pytest.raises(TypeError, match="accelerator must be None, 'auto' or an"):
        make(accelerator="cuda").fit(X, y)
