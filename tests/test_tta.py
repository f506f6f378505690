"""Test-time augmentation (``tta``): deterministic views, predict time only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._params import InvalidParameterError
from sktransfer._testing import (
    TinyConvNet,
    TinyMLP,
    assert_allclose_float32,
    make_shapes_dataset,
)
from sktransfer._tta import MAX_VIEWS, TTAModel, shift_step, view

PREP = {"resize_size": 16, "crop_size": 16}


def _fitted(cls=FineTunedClassifier, **params):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = TinyConvNet()
    X, y = make_shapes_dataset(n_per_class=8, size=16)
    if cls is FineTunedRegressor:
        y = (y == "square").astype(float) + np.linspace(0, 1, len(y))
    est = cls(
        backbone,
        weights=None,
        max_epochs=2,
        augment="off",
        preprocessing=PREP,
        random_state=0,
        **params,
    )
    return est.fit(X, y), X


def test_views_are_the_documented_transforms():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    s = shift_step(16, 16)
    assert s == 1
    assert torch.equal(view(x, 0), x)
    assert torch.equal(view(x, 1), x.flip(-1))
    right = view(x, 2)  # content moves right, the first column is repeated
    assert torch.equal(right[..., s:], x[..., :-s])
    assert torch.equal(right[..., 0], x[..., 0])
    up = view(x, 5)
    assert torch.equal(up[..., :-s, :], x[..., s:, :])
    assert torch.equal(view(x, 6), view(x.flip(-1), 2))
    assert len({tuple(view(x, i).flatten().tolist()) for i in range(MAX_VIEWS)}) == 10
    with pytest.raises(ValueError, match="there are 10 views"):
        view(x, 10)


def test_tta_averages_the_probabilities_of_the_views():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(1))
    model = torch.nn.Sequential(model, torch.nn.LazyLinear(5))
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        model(x)
        expected = torch.stack([model(view(x, i)).softmax(1) for i in range(4)])
        got = TTAModel(model, 4, "softmax")(x).softmax(1)
    assert_allclose_float32(got, expected.mean(0))


def test_tta_none_is_unchanged_and_tta_changes_outputs_deterministically():
    clf, X = _fitted()
    plain = clf.predict_proba(X)
    assert np.array_equal(clf.set_params(tta=1).predict_proba(X), plain)
    assert np.array_equal(clf.set_params(tta=None).predict_proba(X), plain)
    flip = clf.set_params(tta="flip").predict_proba(X)
    assert np.array_equal(clf.set_params(tta=2).predict_proba(X), flip)
    assert np.abs(flip - plain).max() > 1e-4
    assert_allclose_float32(flip.sum(1), np.ones(len(X)))
    # By hand: the mean of the probabilities of X and of its mirror image.
    clf.set_params(tta=None)
    mirrored = clf.predict_proba(X[:, :, ::-1].copy())
    assert_allclose_float32(flip, (plain + mirrored) / 2)
    many = clf.set_params(tta=6).predict_proba(X)
    assert np.array_equal(clf.predict_proba(X), many)  # deterministic
    assert np.abs(many - flip).max() > 1e-4
    assert np.array_equal(clf.predict(X), clf.classes_[many.argmax(1)])


def test_tta_does_not_change_training():
    plain, _ = _fitted()
    with_tta, _ = _fitted(tta=4)
    for a, b in zip(
        plain.net_.module_.state_dict().values(),
        with_tta.net_.module_.state_dict().values(),
    ):
        assert torch.equal(a, b)


def test_regressor_tta_averages_predictions():
    reg, X = _fitted(FineTunedRegressor)
    plain = reg.predict(X)
    mirrored = reg.predict(X[:, :, ::-1].copy())
    flip = reg.set_params(tta="flip").predict(X)
    assert flip.shape == plain.shape
    assert_allclose_float32(flip, (plain + mirrored) / 2)


@pytest.mark.parametrize("tta", [0, 11, "flips", 2.0, True])
def test_bad_tta_is_refused_at_predict_time(tta):
    clf, X = _fitted()
    with pytest.raises(
        InvalidParameterError,
        match=r"FineTunedClassifier: tta must be None, \"flip\" or an int in "
        r"\[1, 10\] \(the number of views\), got",
    ):
        clf.set_params(tta=tta).predict(X)


def test_tta_with_passthrough_input_is_refused():
    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    y = np.arange(20) % 2
    clf = FineTunedClassifier(
        TinyMLP(), preprocessing="passthrough", augment="off", max_epochs=1
    ).fit(X, y)
    with pytest.raises(ValueError, match=r"tta='flip' transforms images.*tta=None"):
        clf.set_params(tta="flip").predict(X)


def test_tta_survives_save_and_load(tmp_path):
    from sktransfer import load, register_backbone, save
    from sktransfer.backbones import unregister_backbone

    register_backbone("tta_tiny_cnn", lambda weights: TinyConvNet())
    try:
        X, y = make_shapes_dataset(n_per_class=8, size=16)
        clf = FineTunedClassifier(
            "tta_tiny_cnn",
            weights=None,
            max_epochs=1,
            augment="off",
            preprocessing=PREP,
            tta="flip",
        ).fit(X, y)
        save(clf, tmp_path / "clf")
        loaded = load(tmp_path / "clf")
    finally:
        unregister_backbone("tta_tiny_cnn")
    assert loaded.tta == "flip"
    assert_allclose_float32(loaded.predict_proba(X), clf.predict_proba(X))


def test_multilabel_tta_averages_per_label_probabilities():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = TinyConvNet()
    X, y = make_shapes_dataset(n_per_class=8, size=16)
    Y = np.column_stack([y == "square", np.arange(len(y)) % 2 == 0]).astype(int)
    clf = FineTunedClassifier(
        backbone,
        weights=None,
        max_epochs=2,
        augment="off",
        preprocessing=PREP,
        random_state=0,
    ).fit(X, Y)
    plain = clf.predict_proba(X)
    mirrored = clf.predict_proba(
        [np.ascontiguousarray(np.asarray(x)[:, ::-1]) for x in X]
    )
    clf.set_params(tta="flip")
    averaged = clf.predict_proba(X)
    assert averaged.shape == plain.shape
    assert_allclose_float32(averaged, (plain + mirrored) / 2, ulps=1024)
