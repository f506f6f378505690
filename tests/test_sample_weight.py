"""fit(X, y, sample_weight): weighted losses, probes, validation, routing, errors."""

import copy

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._testing import (
    TinyConvNet,
    TinyMLP,
    assert_allclose_float32,
    make_shapes_dataset,
)

# One batch per epoch (batch_size above every data set here): a weight of k
# and k copies then give the same loss at every optimizer step.
_KW = dict(
    preprocessing="passthrough",
    max_epochs=8,
    lr=3e-2,
    batch_size=256,
    random_state=0,
)


def _data(n=40, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y_clf = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "no")
    y_reg = X[:, 0] - 2 * X[:, 2] + 0.1 * rng.normal(size=n)
    sw = rng.integers(0, 4, size=n)  # zeros included: removed samples
    return X, y_clf, y_reg, sw


def _outputs(est, X):
    if hasattr(est, "predict_proba"):
        return est.predict_proba(X)
    return est.predict(X)


@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
@pytest.mark.parametrize("head_init", ["probe", "random"])
def test_integer_weights_equal_repeated_samples(cls, head_init):
    X, y_clf, y_reg, sw = _data()
    y = y_clf if cls is FineTunedClassifier else y_reg
    est = cls(TinyMLP(), head_init=head_init, **_KW)
    repeated = clone(est).fit(X.repeat(sw, axis=0), y.repeat(sw))
    # Shuffled rows: skorch's shuffling orders the one batch differently,
    # which changes only the order of float32 sums.
    order = np.random.default_rng(1).permutation(len(X))
    weighted = clone(est).fit(X[order], y[order], sample_weight=sw[order])
    if cls is FineTunedRegressor and head_init == "probe":
        # The ridge probe (penalty 0.1 picked by leave-one-out) amplifies the
        # float32 rounding of the features (computed in batches of other
        # sizes): measured max difference 7e-7 to 1.1e-3 over data seeds 0-3,
        # on predictions of magnitude up to ~5 (float64 probe on exactly equal
        # features: 6e-14).
        diff = np.abs(weighted.predict(X) - repeated.predict(X)).max()
        assert diff < 5e-3
        return
    # Measured max difference over data seeds 0-3: 2.4e-7 (classifier
    # probabilities), 5e-7 (regressor, random head): float32 rounding.
    assert_allclose_float32(_outputs(weighted, X), _outputs(repeated, X))


def test_class_weight_and_sample_weight_multiply():
    # In the loss (and LogisticRegression) the weights multiply; the probe's
    # StandardScaler sees the sample weights only, so the heads start apart
    # with head_init="probe" (by design); compared from a random head.
    X, y, _, sw = _data()
    sw = sw + 1.0
    kw = {**_KW, "head_init": "random"}
    both = FineTunedClassifier(TinyMLP(), class_weight={"yes": 3.0}, **kw)
    both.fit(X, y, sample_weight=sw)
    product = FineTunedClassifier(TinyMLP(), **kw)
    product.fit(X, y, sample_weight=sw * np.where(y == "yes", 3.0, 1.0))
    assert_allclose_float32(both.predict_proba(X), product.predict_proba(X))


@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
def test_unit_weights_equal_no_weights_with_early_stopping(cls):
    # The weighted validation loss and score follow the weighted training
    # loss: unit weights change neither training nor early stopping. (Other
    # constant weights change the probe, as repeating every sample changes
    # LogisticRegression's balance of loss and penalty.)
    X, y_clf, y_reg, _ = _data(n=60)
    y = y_clf if cls is FineTunedClassifier else y_reg
    est = cls(TinyMLP(), early_stopping=True, **{**_KW, "max_epochs": 12})
    plain = clone(est).fit(X, y)
    weighted = clone(est).fit(X, y, sample_weight=np.ones(len(X)))
    assert weighted.n_iter_ == plain.n_iter_
    score = "valid_acc" if cls is FineTunedClassifier else "valid_r2"
    for a, b in zip(weighted.history_, plain.history_):
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-4, abs=1e-6)
        assert a[score] == pytest.approx(b[score], rel=1e-4, abs=1e-6)
    assert_allclose_float32(_outputs(weighted, X), _outputs(plain, X))


def test_weights_change_the_fit_of_images():
    X, y = make_shapes_dataset(n_per_class=6, size=16)
    kw = dict(
        freeze="none",
        max_epochs=5,
        lr=1e-2,
        preprocessing={"resize_size": 16, "crop_size": 16},
        random_state=0,
    )
    # The same initial backbone for both fits: only the weights differ.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = TinyConvNet()
    plain = FineTunedClassifier(copy.deepcopy(backbone), **kw).fit(X, y)
    sw = np.where(y == "disk", 5.0, 0.2)
    weighted = FineTunedClassifier(copy.deepcopy(backbone), **kw).fit(
        X, y, sample_weight=sw
    )
    p_plain = plain.predict_proba(X)[:, list(plain.classes_).index("disk")]
    p_weighted = weighted.predict_proba(X)[:, list(weighted.classes_).index("disk")]
    assert p_weighted.mean() > p_plain.mean()


# -- metadata routing ------------------------------------------------------------
@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def _small():
    return FineTunedClassifier(TinyMLP(), **{**_KW, "max_epochs": 3}).set_fit_request(
        sample_weight=True
    )


@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
def test_pipeline_routes_sample_weight(routing, cls):
    X, y_clf, y_reg, sw = _data()
    y = y_clf if cls is FineTunedClassifier else y_reg
    est = cls(TinyMLP(), **{**_KW, "max_epochs": 3})
    est.set_fit_request(sample_weight=True)
    pipe = make_pipeline(FunctionTransformer(), est)
    pipe.fit(X, y, sample_weight=sw)
    direct = clone(est).fit(X, y, sample_weight=sw)
    assert_allclose_float32(_outputs(pipe, X), _outputs(direct, X))
    unweighted = clone(est).fit(X, y)
    assert np.abs(_outputs(unweighted, X) - _outputs(direct, X)).max() > 1e-3


def test_cross_validate_routes_sample_weight_to_fit_and_score(routing):
    X, y, _, sw = _data()
    est = _small().set_score_request(sample_weight=True)
    cv = KFold(3)
    result = cross_validate(
        est, X, y, cv=cv, params={"sample_weight": sw}, return_estimator=True
    )
    for (train, test), fitted, score in zip(
        cv.split(X), result["estimator"], result["test_score"]
    ):
        manual = clone(est).fit(X[train], y[train], sample_weight=sw[train])
        assert_allclose_float32(fitted.predict_proba(X), manual.predict_proba(X))
        assert score == pytest.approx(
            manual.score(X[test], y[test], sample_weight=sw[test])
        )


def test_grid_search_routes_sample_weight_to_training(routing):
    X, y, _, sw = _data()
    est = _small().set_score_request(sample_weight=True)
    grid = GridSearchCV(est, {"lr": [1e-2, 3e-2]}, cv=2)
    grid.fit(X, y, sample_weight=sw)
    manual = clone(est).set_params(**grid.best_params_).fit(X, y, sample_weight=sw)
    assert_allclose_float32(
        grid.best_estimator_.predict_proba(X), manual.predict_proba(X)
    )


# -- bad weights -------------------------------------------------------------------
@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
@pytest.mark.parametrize(
    "sample_weight, match",
    [
        (
            np.ones((40, 1)),
            r"sample_weight must have shape \(40,\).*got shape \(40, 1\)",
        ),
        (np.ones(39), r"sample_weight must have shape \(40,\).*got shape \(39,\)"),
        (
            np.r_[-1.0, np.ones(39)],
            r"sample_weight must be >= 0, got negative weights at rows \[0\]",
        ),
        (
            np.r_[np.ones(39), np.nan],
            r"sample_weight contains NaN or infinity \(at rows \[39\]\)",
        ),
        (
            np.r_[np.inf, np.ones(39)],
            r"sample_weight contains NaN or infinity \(at rows \[0\]\)",
        ),
        (np.zeros(40), "sample_weight is zero for every sample"),
        (np.array(["a"] * 40), "sample_weight must be numeric, got dtype <U1"),
    ],
)
def test_bad_sample_weight_is_refused(cls, sample_weight, match):
    X, y_clf, y_reg, _ = _data()
    y = y_clf if cls is FineTunedClassifier else y_reg
    est = cls(TinyMLP(), **_KW)
    with pytest.raises(ValueError, match=f"{cls.__name__}: {match}"):
        est.fit(X, y, sample_weight=sample_weight)
    assert not hasattr(est, "net_")


def test_a_training_split_of_zero_weights_is_refused():
    X, y, _, _ = _data()
    sw = np.zeros(len(X))
    sw[0] = 1.0  # one positive weight; half the seeds hold sample 0 out
    est = FineTunedClassifier(
        TinyMLP(), early_stopping=True, validation_fraction=0.5, **_KW
    )
    with pytest.raises(ValueError, match="every sample of the training split"):
        for seed in range(50):
            est.set_params(random_state=seed).fit(X, y, sample_weight=sw)


def test_a_scalar_weight_weighs_every_sample():
    X, y, _, _ = _data()
    est = FineTunedClassifier(TinyMLP(), **_KW)
    scalar = clone(est).fit(X, y, sample_weight=2.0)
    array = clone(est).fit(X, y, sample_weight=np.full(len(X), 2.0))
    np.testing.assert_array_equal(scalar.predict_proba(X), array.predict_proba(X))


@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
def test_a_checkpoint_belongs_to_its_weights(cls, tmp_path):
    X, y_clf, y_reg, sw = _data()
    y = y_clf if cls is FineTunedClassifier else y_reg
    est = cls(TinyMLP(), checkpoint_dir=tmp_path, **{**_KW, "max_epochs": 2})
    est.fit(X, y, sample_weight=sw)
    with pytest.warns(UserWarning, match="belongs to another training run"):
        est.fit(X, y, sample_weight=sw + 1)
    with pytest.warns(UserWarning, match="belongs to another training run"):
        est.fit(X, y)


@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
def test_a_weighted_fit_saves_loads_and_pickles(cls, tmp_path):
    import pickle

    import sktransfer
    from sktransfer import register_backbone
    from sktransfer.backbones import unregister_backbone

    X, y_clf, y_reg, sw = _data()
    y = y_clf if cls is FineTunedClassifier else y_reg
    extra = {"class_weight": "balanced"} if cls is FineTunedClassifier else {}
    register_backbone("sktransfer_test_sw_mlp", lambda weights: TinyMLP())
    try:
        est = cls("sktransfer_test_sw_mlp", **_KW, **extra)
        est.fit(X, y, sample_weight=sw)
        sktransfer.save(est, tmp_path / "model")
        loaded = sktransfer.load(tmp_path / "model")
        unpickled = pickle.loads(pickle.dumps(est))
        for other in (loaded, unpickled):
            assert_allclose_float32(_outputs(other, X), _outputs(est, X))
    finally:
        unregister_backbone("sktransfer_test_sw_mlp")


def test_routing_without_a_fit_request_is_an_error_not_silence(routing):
    from sklearn.exceptions import UnsetMetadataPassedError

    X, y, _, sw = _data()
    est = FineTunedClassifier(TinyMLP(), **_KW).set_score_request(sample_weight=True)
    with pytest.raises(UnsetMetadataPassedError, match="set_fit_request"):
        GridSearchCV(est, {"lr": [1e-2]}, cv=2).fit(X, y, sample_weight=sw)


@pytest.mark.parametrize("head_init", ["probe", "random"])
def test_multilabel_integer_weights_equal_repeated_samples(head_init):
    X, _, _, sw = _data(n=60)
    # two labels, each column holding both 0 and 1 after repetition
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(int)
    est = FineTunedClassifier(TinyMLP(), head_init=head_init, **_KW)
    repeated = clone(est).fit(X.repeat(sw, axis=0), Y.repeat(sw, axis=0))
    weighted = clone(est).fit(X, Y, sample_weight=sw)
    assert weighted.predict_proba(X).shape == (len(X), 2)
    assert_allclose_float32(
        weighted.predict_proba(X), repeated.predict_proba(X), ulps=1024
    )


def test_multilabel_weights_change_the_fit():
    X, _, _, sw = _data(n=60)
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(int)
    est = FineTunedClassifier(TinyMLP(), **_KW)
    plain = clone(est).fit(X, Y).predict_proba(X)
    weighted = clone(est).fit(X, Y, sample_weight=sw).predict_proba(X)
    assert np.abs(plain - weighted).max() > 1e-3
