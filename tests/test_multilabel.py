"""FineTunedClassifier with a multi-label y (a 2-D indicator matrix).

Tabular data on TinyMLP (milliseconds a fit) for the contract, and one
image task on TinyConvNet (which of two shapes an image shows) for learning.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse
import torch
from sklearn.base import clone
from sklearn.datasets import make_multilabel_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, hamming_loss
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MultiLabelBinarizer, StandardScaler

import sktransfer
from sktransfer import FineTunedClassifier
from sktransfer._params import InvalidParameterError
from sktransfer._testing import TinyConvNet, TinyMLP, assert_allclose_float32

TABULAR = dict(
    preprocessing="passthrough",
    augment="off",
    max_epochs=20,
    lr=3e-2,
    random_state=0,
    device="cpu",
)


def _seeded(cls, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return cls(**kwargs)


def _data(n=160, n_labels=4, seed=0):
    X, Y = make_multilabel_classification(
        n, n_features=8, n_classes=n_labels, random_state=seed
    )
    return X.astype(np.float32), Y


def _clf(**params):
    return FineTunedClassifier(_seeded(TinyMLP), **{**TABULAR, **params})


@pytest.fixture(scope="module")
def fitted():
    X, Y = _data()
    return _clf().fit(X, Y), X, Y


def test_outputs_are_an_indicator_matrix_and_per_label_probabilities(fitted):
    clf, X, Y = fitted
    proba = clf.predict_proba(X)
    pred = clf.predict(X)
    assert proba.shape == pred.shape == Y.shape
    assert pred.dtype == Y.dtype
    assert set(np.unique(pred)) <= {0, 1}
    assert ((proba >= 0) & (proba <= 1)).all()
    # Per-label probabilities, not a distribution over labels.
    assert not np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.classes_, np.arange(Y.shape[1]))
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(Y.dtype))
    assert type(clf.net_.criterion_).__name__ == "MultiLabelLoss"


def test_it_learns_better_than_predicting_each_labels_majority(fitted):
    clf, X, Y = fitted
    majority = np.tile((Y.mean(axis=0) > 0.5).astype(int), (len(Y), 1))
    assert hamming_loss(Y, clf.predict(X)) < 0.7 * hamming_loss(Y, majority)
    assert f1_score(Y, clf.predict(X), average="samples", zero_division=0) > 0.6
    assert 0 <= f1_score(Y, clf.predict(X), average="macro") <= 1
    # The score is scikit-learn's subset accuracy for an indicator y.
    assert 0 < clf.score(X, Y) <= 1


@pytest.mark.parametrize("threshold", [0.2, 0.8])
def test_threshold_applies_at_predict_without_refitting(fitted, threshold):
    clf, X, Y = fitted
    other = pickle.loads(pickle.dumps(clf)).set_params(threshold=threshold)
    np.testing.assert_array_equal(
        other.predict(X), (clf.predict_proba(X) > threshold).astype(Y.dtype)
    )
    lower, higher = (
        (other, clf) if threshold < 0.5 else (clf, other)
    )  # a lower threshold predicts a superset of the labels
    assert (lower.predict(X) >= higher.predict(X)).all()


def test_probe_head_is_one_logistic_regression_per_label():
    X, Y = _data()
    # A frozen body, a learning rate too small to move the head: what
    # predict_proba shows is the probe head LP-FT starts from.
    clf = _clf(
        freeze="backbone", lr=1e-12, weight_decay=0.0, max_epochs=1, head_init="probe"
    ).fit(X, Y)
    body = clf.net_.module_.body
    with torch.no_grad():
        features = body(torch.from_numpy(X)).numpy().astype(np.float64)
    probe = OneVsRestClassifier(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    ).fit(features, Y)
    assert_allclose_float32(clf.predict_proba(X), probe.predict_proba(features))


@pytest.mark.parametrize(
    "form",
    ["bool", "float", "list of lists", "sparse", "DataFrame", "object"],
)
def test_indicator_forms_give_the_same_model(fitted, form):
    clf, X, Y = fitted
    pd = pytest.importorskip("pandas") if form == "DataFrame" else None
    y = {
        "bool": lambda: Y.astype(bool),
        "float": lambda: Y.astype(np.float32),
        "list of lists": Y.tolist,
        "sparse": lambda: scipy.sparse.csr_matrix(Y),
        "DataFrame": lambda: pd.DataFrame(Y, columns=list("abcd")),
        "object": lambda: Y.astype(object),
    }[form]()
    other = clone(clf).fit(X, y)
    np.testing.assert_array_equal(other.predict(X), clf.predict(X))
    expected = {"bool": bool, "float": np.float32}.get(form, Y.dtype)
    assert other.predict(X).dtype == expected


def test_multilabel_binarizer_labels_end_to_end():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    tags = [
        {name for name, col in zip("abc", (0, 1, 2)) if X[i, col] > 0}
        for i in range(len(X))
    ]
    binarizer = MultiLabelBinarizer()
    Y = binarizer.fit_transform(tags)
    clf = _clf(max_epochs=30).fit(X, Y)
    predicted = binarizer.inverse_transform(clf.predict(X))
    right = np.mean([set(p) == t for p, t in zip(predicted, tags)])
    assert right > 0.8


def test_cross_validation_uses_kfold_and_grid_search_tunes_threshold():
    X, Y = _data(n=120)
    # A classifier's default cv is StratifiedKFold, which refuses an indicator
    # y; scikit-learn's check_cv picks KFold for it.
    scores = cross_val_score(_clf(max_epochs=5), X, Y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()
    scores = cross_val_score(
        _clf(max_epochs=5), X, Y, cv=KFold(3), scoring="f1_samples"
    )
    assert np.isfinite(scores).all()
    search = GridSearchCV(
        _clf(max_epochs=5), {"threshold": [0.3, 0.5]}, cv=3, scoring="f1_macro"
    ).fit(X, Y)
    assert search.best_params_["threshold"] in (0.3, 0.5)


def test_tags_declare_multi_label():
    tags = FineTunedClassifier().__sklearn_tags__()
    assert tags.classifier_tags.multi_label is True


def test_pickle_keeps_the_multilabel_model(fitted):
    # A pickle holds what sktransfer.save writes (_export / _restore).
    clf, X, Y = fitted
    clf_bool = clone(clf).fit(X, Y.astype(bool))
    for model, dtype in ((clf, Y.dtype), (clf_bool, bool)):
        other = pickle.loads(pickle.dumps(model))
        np.testing.assert_array_equal(other.predict(X), model.predict(X))
        assert other.predict(X).dtype == dtype
        assert_allclose_float32(other.predict_proba(X), model.predict_proba(X))


def test_save_and_load_keep_the_multilabel_model(tmp_path):
    from sktransfer.backbones import unregister_backbone

    X, Y = _data()
    sktransfer.register_backbone("multilabel_test_mlp", lambda w: _seeded(TinyMLP))
    try:
        clf = FineTunedClassifier("multilabel_test_mlp", weights=None, **TABULAR)
        clf.fit(X, Y.astype(bool))
        sktransfer.save(clf, tmp_path / "model")
        loaded = sktransfer.load(tmp_path / "model")
    finally:
        unregister_backbone("multilabel_test_mlp")
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.predict(X).dtype == bool
    assert_allclose_float32(loaded.predict_proba(X), clf.predict_proba(X))


def test_checkpoint_of_a_multilabel_fit_is_resumed_under_another_threshold(tmp_path):
    from sktransfer._params import names

    # The threshold only acts at predict: a checkpoint stays valid.
    assert "threshold" in names(FineTunedClassifier._params, affects_training=False)
    X, Y = _data()
    first = _clf(max_epochs=3, checkpoint_dir=tmp_path).fit(X, Y)
    assert (tmp_path / "checkpoint.pt").is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "checkpoint of another run" warning
        again = _clf(max_epochs=3, checkpoint_dir=tmp_path, threshold=0.7).fit(X, Y)
    assert again.n_epochs_ == first.n_epochs_ == 3
    assert_allclose_float32(again.predict_proba(X), first.predict_proba(X))


def test_early_stopping_and_label_smoothing_with_multilabel_y():
    X, Y = _data()
    clf = _clf(early_stopping=True, validation_fraction=0.2, max_epochs=4).fit(X, Y)
    assert all(0 <= row["valid_acc"] <= 1 for row in clf.history_)
    smoothed = _clf(label_smoothing=0.2, max_epochs=4).fit(X, Y)
    plain = _clf(max_epochs=4).fit(X, Y)
    # Smoothed targets s/2 and 1 - s/2 cannot be fitted to a loss of 0.
    assert smoothed.history_[-1]["train_loss"] > plain.history_[-1]["train_loss"]


def test_images_with_two_shapes_learn_both_labels():
    """Each 16 px image may show a bright square on the left and a bright
    bar on the right; the labels say which."""
    rng = np.random.default_rng(0)
    n = 96
    Y = rng.integers(0, 2, (n, 2))
    X = rng.integers(0, 40, (n, 16, 16, 3)).astype(np.uint8)
    X[Y[:, 0] == 1, 4:10, 1:7] = 230
    X[Y[:, 1] == 1, 2:14, 11:14] = 230
    clf = FineTunedClassifier(
        _seeded(TinyConvNet),
        preprocessing={"resize_size": 16, "crop_size": 16},
        freeze="none",
        schedule="onecycle",
        lr=3e-2,
        augment="off",
        max_epochs=15,
        random_state=0,
        device="cpu",
    ).fit(X, Y)
    assert hamming_loss(Y, clf.predict(X)) < 0.1


# -- errors ---------------------------------------------------------------------------
def _fit_error(y, **params):
    X, _ = _data(n=len(y))
    return _clf(max_epochs=1, **params).fit(X, y)


@pytest.mark.parametrize(
    ("value", "column", "who"),
    [(0, 2, "no sample has"), (1, 1, "every sample has")],
)
def test_constant_label_column_is_refused_naming_it(value, column, who):
    _, Y = _data(n=40)
    Y[:, column] = value
    with pytest.raises(
        ValueError,
        match=rf"FineTunedClassifier: column {column} of the multi-label y is all "
        rf"{value} \({who} label {column}\), so that label cannot be learned",
    ):
        _fit_error(Y)


@pytest.mark.parametrize(
    ("y", "what"),
    [
        (np.array([[0, 1], [2, 0], [1, 1], [0, 0]]), "the value 2"),
        (np.array([[0, 1], [1, 0], [np.nan, 1], [0, 0]]), "a missing value"),
        (np.array([[0, 1], [1, 0], [0.5, 1], [0, 0]]), "the value"),
        (np.array([[0, 1], [1, 0], [-1, 1], [0, 0]]), "the value"),
    ],
)
def test_non_binary_entries_are_refused_naming_the_entry(y, what):
    with pytest.raises(
        ValueError,
        match=rf"FineTunedClassifier: y is 2-D with 2 columns, read as a "
        rf"multi-label indicator matrix .*, but y\[\d, \d\] is ({what})",
    ):
        _fit_error(y)


def test_missing_entries_of_an_object_indicator_are_refused():
    y = np.array([[0, 1], [1, 0], [None, 1], [0, 0]], dtype=object)
    with pytest.raises(
        ValueError,
        match=r"FineTunedClassifier: y has a missing value at y\[2, 0\] \(None\)",
    ):
        _fit_error(y)


@pytest.mark.parametrize(
    "y",
    [
        np.array([["a", "b"], ["b", "a"], ["a", "a"], ["b", "b"]]),
    ],
)
def test_multioutput_multiclass_and_odd_dtypes_are_refused(y):
    with pytest.raises(
        ValueError,
        match=rf"y is 2-D with 2 columns, read as a multi-label indicator matrix, "
        rf"but its dtype is {y.dtype}; every entry must be 0 or 1",
    ):
        _fit_error(y)


def test_class_weight_is_refused_with_multilabel_y():
    _, Y = _data(n=40)
    with pytest.raises(
        ValueError,
        match=r"FineTunedClassifier: class_weight='balanced' is for single-label y",
    ):
        _fit_error(Y, class_weight="balanced")


@pytest.mark.parametrize("threshold", [0.0, 1.0, 1.5, "high"])
def test_threshold_must_lie_strictly_between_0_and_1(threshold):
    _, Y = _data(n=40)
    with pytest.raises(
        InvalidParameterError,
        match=r"FineTunedClassifier: threshold must be a float in \(0, 1\)",
    ):
        _fit_error(Y, threshold=threshold)


def test_a_threshold_set_after_fit_is_checked_at_predict(fitted):
    clf, X, _ = fitted
    other = pickle.loads(pickle.dumps(clf)).set_params(threshold=2.0)
    with pytest.raises(
        InvalidParameterError,
        match=r"FineTunedClassifier: threshold must be a float in \(0, 1\), got 2.0",
    ):
        other.predict(X)


def test_a_single_column_is_single_label():
    X, Y = _data(n=60)
    with pytest.warns(Warning, match="column-vector y was passed"):
        clf = _clf(max_epochs=2).fit(X, Y[:, :1])
    assert clf.predict(X).ndim == 1


def test_decision_function_and_log_proba_are_per_label():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    clf = FineTunedClassifier(
        TinyMLP(), preprocessing="passthrough", max_epochs=2, random_state=0
    ).fit(X, Y)
    scores = clf.decision_function(X)
    assert scores.shape == (40, 2)
    proba = clf.predict_proba(X)
    assert_allclose_float32(1 / (1 + np.exp(-scores)), proba)
    assert_allclose_float32(np.exp(clf.predict_log_proba(X)), proba)
