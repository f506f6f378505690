"""FineTunedClassifier and FineTunedRegressor: learning, labels, freezing,
schedules, early stopping, augmentation, scikit-learn integration, errors.

Everything runs on the CPU with tiny networks (TinyConvNet on 16-24 px
images, TinyMLP on tabular data) in a few epochs.
"""

from __future__ import annotations

import copy
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from skorch.callbacks import Callback

from sktransfer import FineTunedClassifier, FineTunedRegressor
from sktransfer._testing import TinyConvNet, TinyMLP, make_shapes_dataset
from sktransfer._training import split_blocks

PRE16 = {"resize_size": 16, "crop_size": 16}
# Full fine-tuning of a small random net (not the transfer defaults, which
# are measured on pretrained backbones in benchmarks/finetune_recipe) that
# learns the shapes task in ~15 epochs.
FAST = dict(
    schedule="onecycle",
    lr=3e-2,
    backbone_lr_ratio=1.0,
    freeze="none",
    augment="off",
    random_state=0,
    device="cpu",
)
TABULAR = dict(
    preprocessing="passthrough",
    augment="off",
    lr=3e-2,
    backbone_lr_ratio=1.0,
    freeze="none",
    random_state=0,
    device="cpu",
)


def _seeded(cls, seed=0, **kwargs):
    """A module with seeded weights, leaving the global torch state alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)


def _tabular(n=120, n_features=5, seed=0):
    """Two well separated Gaussian blobs (labels 0/1) and a linear target."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, n_features).astype(np.float32)
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    return X, y


def _blobs(n, size=16, seed=0):
    """Images with one bright disk; the target is the disk's area (% of pixels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = rng.uniform(1.5, 6, n)
    c = rng.uniform(5, size - 5, (n, 2))
    X = rng.integers(0, 40, (n, size, size, 3))
    mask = (yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2 <= r[
        :, None, None
    ] ** 2
    X[mask] = 220
    return X.astype(np.uint8), mask.mean(axis=(1, 2)) * 100


class _Snapshot(Callback):
    """Keeps the module's state at the start of training and the valid set."""

    def on_train_begin(self, net, **kwargs):
        self.initial = copy.deepcopy(net.module_.state_dict())
        self.precomputed = net.module_.precomputed

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        self.dataset_valid = dataset_valid


class _CountCalls:
    """A train_transform that counts the images it sees."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return x


@pytest.fixture(scope="module")
def shapes():
    X, y = make_shapes_dataset(n_per_class=30, size=16)
    X_test, y_test = make_shapes_dataset(n_per_class=30, size=16, random_state=1)
    return X, y, X_test, y_test


@pytest.fixture(scope="module")
def shapes_clf(shapes):
    X, y, _, _ = shapes
    clf = FineTunedClassifier(
        _seeded(TinyConvNet), preprocessing=PRE16, max_epochs=15, **FAST
    )
    return clf.fit(X, y)


# -- learning -----------------------------------------------------------------
def test_classifier_learns_shapes_far_above_chance(shapes, shapes_clf):
    _, _, X_test, y_test = shapes
    assert shapes_clf.score(X_test, y_test) >= 0.9  # chance is 0.5
    assert shapes_clf.n_epochs_ == 15
    assert shapes_clf.fit_time_ > 0


def test_regressor_learns_blob_area():
    X, y = _blobs(60)
    X_test, y_test = _blobs(60, seed=1)
    reg = FineTunedRegressor(
        _seeded(TinyConvNet), preprocessing=PRE16, max_epochs=15, **FAST
    ).fit(X, y)
    pred = reg.predict(X_test)
    assert pred.shape == (60,) and pred.dtype == np.float64
    assert reg.score(X_test, y_test) > 0.5


@pytest.mark.parametrize("target_scaling", [True, False])
@pytest.mark.parametrize("n_targets", [None, 1, 2])
def test_regressor_tabular_targets(n_targets, target_scaling):
    X, _ = _tabular(160)
    X_test, _ = _tabular(80, seed=1)
    w = np.array([[3.0, -1.0], [1.0, 2.0], [0.0, 1.0], [0.0, 0.0], [-2.0, 0.0]])

    def target(X):
        Y = X @ w + [5.0, -3.0]
        return Y[:, 0] if n_targets is None else Y[:, :n_targets]

    reg = FineTunedRegressor(
        _seeded(TinyMLP),
        max_epochs=30,
        batch_size=16,
        target_scaling=target_scaling,
        **TABULAR,
    )
    reg.fit(X, target(X))
    pred = reg.predict(X_test)
    assert pred.shape == target(X_test).shape
    assert reg.score(X_test, target(X_test)) > 0.8
    assert (reg._y_scaler is not None) == target_scaling


# -- labels -------------------------------------------------------------------
@pytest.mark.parametrize(
    "labels",
    [
        np.array(["cat", "dog"]),
        np.array([5, 2]),
        np.array(["zebra", "ant", "mole"]),
        np.array([7, -1, 3]),
    ],
    ids=["str-binary", "int-binary", "str-3", "int-3-unsorted"],
)
def test_labels_any_type_and_order(labels):
    rng = np.random.RandomState(0)
    k = len(labels)
    centers = rng.randn(k, 4) * 4
    codes = np.arange(90) % k
    X = (centers[codes] + rng.randn(90, 4)).astype(np.float32)
    y = labels[codes]
    clf = FineTunedClassifier(
        _seeded(TinyMLP), max_epochs=20, batch_size=16, **TABULAR
    ).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.unique(labels))
    pred = clf.predict(X)
    assert pred.dtype == y.dtype and set(pred) <= set(labels)
    assert np.mean(pred == y) > 0.9  # a mixed-up label mapping would fail here
    proba = clf.predict_proba(X)
    assert proba.shape == (90, k)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)


# -- reproducibility ----------------------------------------------------------
def test_random_state_reproducible_and_global_rng_untouched(shapes):
    X, y = shapes[0][:24], shapes[1][:24]

    def fit(seed):
        return (
            FineTunedClassifier(
                _seeded(TinyConvNet),
                preprocessing=PRE16,
                augment="default",
                max_epochs=2,
                batch_size=8,
                random_state=seed,
                device="cpu",
            )
            .fit(X, y)
            .predict_proba(X)
        )

    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = fit(0)
    after = torch.get_rng_state()
    assert torch.equal(before, after)
    np.testing.assert_array_equal(first, fit(0))
    assert not np.array_equal(first, fit(1))


# -- freezing -----------------------------------------------------------------
def _changed_blocks(module, initial):
    """Names of the body blocks whose parameters or buffers changed."""
    state = module.state_dict()
    changed = set()
    for name, _ in module.blocks:
        keys = [k for k in state if k.startswith(f"body.{name}.")]
        assert keys
        diff = [k for k in keys if not torch.equal(state[k], initial[k])]
        # A block either trains (all its tensors move) or not at all.
        assert diff in ([], keys), (name, diff)
        if diff:
            changed.add(name)
    return changed


@pytest.mark.parametrize(
    "freeze, freeze_epochs, augment, expected",
    [
        ("backbone", 1, "off", []),  # precomputed features
        ("backbone", 1, "light", []),  # the body runs, in eval mode
        (0, 1, "off", []),
        (1, 1, "off", ["body.block2.1"]),
        (2, 1, "off", ["body.block2.0", "body.block2.1"]),
        ("staged", 3, "off", []),
        ("staged", 1, "off", ["body.block1", "body.block2.0", "body.block2.1"]),
        ("none", 1, "off", ["body.block1", "body.block2.0", "body.block2.1"]),
    ],
)
def test_freezing_keeps_frozen_blocks_and_batchnorm_stats(
    shapes, freeze, freeze_epochs, augment, expected
):
    X, y = shapes[0][:24], shapes[1][:24]
    backbone = _seeded(TinyConvNet)
    original = copy.deepcopy(backbone.state_dict())
    snapshot = _Snapshot()
    clf = FineTunedClassifier(
        backbone,
        freeze=freeze,
        freeze_epochs=freeze_epochs,
        augment=augment,
        max_epochs=3,
        batch_size=8,
        lr=1e-2,
        backbone_lr_ratio=1.0,
        preprocessing=PRE16,
        random_state=0,
        device="cpu",
        net_params={"callbacks": [snapshot]},
    ).fit(X, y)
    module = clf.net_.module_
    # TinyConvNet's block2 holds most parameters, so split_blocks splits it.
    assert module.blocks == split_blocks(module.body)
    assert [n for n, _ in module.blocks] == [
        "body.block1",
        "body.block2.0",
        "body.block2.1",
    ]
    assert sorted(_changed_blocks(module, snapshot.initial)) == expected
    # BatchNorm statistics are part of the blocks' state compared above.
    assert any(k.endswith("running_mean") for k in snapshot.initial)
    state = module.state_dict()
    assert not torch.equal(state["head.weight"], snapshot.initial["head.weight"])
    # The body starts from the user's weights; the user's module is untouched.
    for key, value in original.items():
        if not key.startswith("fc."):
            assert torch.equal(snapshot.initial[f"body.body.{key}"], value)
        assert torch.equal(backbone.state_dict()[key], value)
    assert not module.frozen and not module.precomputed


def test_user_lazy_module_is_not_initialised():
    X, y = _tabular(40)
    backbone = TinyMLP()
    FineTunedClassifier(backbone, max_epochs=1, **TABULAR).fit(X, y)
    assert backbone.body[0].has_uninitialized_params()


def test_linear_probe_precompute_matches_slow_path(shapes):
    X, y = shapes[0], shapes[1]
    kwargs = dict(
        freeze="backbone",
        augment="off",
        max_epochs=4,
        batch_size=8,
        lr=3e-2,
        preprocessing=PRE16,
        random_state=0,
        device="cpu",
    )
    fast_snapshot, slow_snapshot = _Snapshot(), _Snapshot()
    fast = FineTunedClassifier(
        _seeded(TinyConvNet), **kwargs, net_params={"callbacks": [fast_snapshot]}
    ).fit(X, y)
    # Any train_transform turns precomputing off: the body runs every epoch.
    slow = FineTunedClassifier(
        _seeded(TinyConvNet),
        train_transform=lambda x: x,
        **kwargs,
        net_params={"callbacks": [slow_snapshot]},
    )
    slow.fit(X, y)
    assert fast_snapshot.precomputed and not slow_snapshot.precomputed
    np.testing.assert_allclose(
        fast.predict_proba(X), slow.predict_proba(X), rtol=0, atol=1e-5
    )
    assert fast.history_[-1]["train_loss"] == pytest.approx(
        slow.history_[-1]["train_loss"], abs=1e-5
    )


# -- augmentation -------------------------------------------------------------
@pytest.mark.parametrize("early_stopping", [False, True])
def test_train_transform_only_in_training(shapes, early_stopping):
    X, y = shapes[0][:20], shapes[1][:20]
    counter = _CountCalls()
    clf = FineTunedClassifier(
        _seeded(TinyConvNet),
        train_transform=counter,
        augment="light",
        early_stopping=early_stopping,
        validation_fraction=0.2,
        max_epochs=2,
        n_iter_no_change=5,
        preprocessing=PRE16,
        random_state=0,
        device="cpu",
    ).fit(X, y)
    n_train = 16 if early_stopping else 20  # validation images: no augmentation
    assert counter.calls == 2 * n_train
    counter.calls = 0
    proba = clf.predict_proba(X)
    clf.predict(X)
    assert counter.calls == 0
    np.testing.assert_array_equal(proba, clf.predict_proba(X))


@pytest.mark.parametrize("augment", ["light", "default"])
def test_augment_presets_run(shapes, augment):
    X, y = shapes[0][:20], shapes[1][:20]
    clf = FineTunedClassifier(
        _seeded(TinyConvNet),
        augment=augment,
        max_epochs=1,
        preprocessing=PRE16,
        random_state=0,
        device="cpu",
    )
    assert clf.fit(X, y).predict(X).shape == (20,)


# -- learning rates -----------------------------------------------------------
@pytest.mark.parametrize("layer_decay", [None, 0.5])
def test_discriminative_learning_rates(shapes, layer_decay):
    X, y = shapes[0][:16], shapes[1][:16]
    clf = FineTunedClassifier(
        _seeded(TinyConvNet),
        schedule="constant",
        lr=0.01,
        backbone_lr_ratio=0.1,
        layer_decay=layer_decay,
        freeze="none",
        augment="off",
        max_epochs=1,
        preprocessing=PRE16,
        random_state=0,
        device="cpu",
    ).fit(X, y)
    module = clf.net_.module_
    groups = clf.net_.optimizer_.param_groups
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert len(lr_of) == len(list(module.parameters()))
    for p in module.head.parameters():
        assert lr_of[id(p)] == pytest.approx(0.01)
    decay = 1.0 if layer_decay is None else layer_decay
    expected = {
        "body.block2.1": 1e-3,
        "body.block2.0": 1e-3 * decay,
        "body.block1": 1e-3 * decay**2,
    }
    for name, expected_lr in expected.items():
        params = list(module.body.get_submodule(name).parameters())
        assert params
        for p in params:
            assert lr_of[id(p)] == pytest.approx(expected_lr)
    assert [h["lr"] for h in clf.history_] == [pytest.approx(0.01)]


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
def test_schedules(schedule):
    X, y = _tabular(64)
    clf = FineTunedClassifier(
        _seeded(TinyMLP),
        schedule=schedule,
        warmup=0.3,
        max_epochs=10,
        batch_size=16,
        **TABULAR,
    ).fit(X, y)
    lrs = np.array([h["lr"] for h in clf.history_])
    assert len(lrs) == 10
    assert lrs.max() <= 3e-2 * (1 + 1e-6)
    if schedule == "constant":
        np.testing.assert_allclose(lrs, 3e-2)
        return
    peak = int(lrs.argmax())
    assert 0 < peak < 9  # rises during warmup, then falls
    assert np.all(np.diff(lrs[: peak + 1]) > 0)
    assert np.all(np.diff(lrs[peak:]) < 0)
    assert lrs[-1] < 0.05 * lrs.max()


@pytest.mark.parametrize("n_samples, max_epochs, warmup", [(10, 10, 0.1), (8, 1, 0.0)])
def test_onecycle_with_at_most_one_warmup_step(n_samples, max_epochs, warmup):
    # One batch per epoch: warmup * steps <= 1 made OneCycleLR divide by zero.
    X, y = _tabular(n_samples)
    clf = FineTunedClassifier(
        _seeded(TinyMLP), max_epochs=max_epochs, warmup=warmup, batch_size=32, **TABULAR
    ).fit(X, y)
    assert clf.n_epochs_ == max_epochs


# -- early stopping -----------------------------------------------------------
def test_early_stopping_stops_and_restores_best_weights():
    rng = np.random.RandomState(0)
    X = rng.randn(120, 5).astype(np.float32)
    y = (X[:, 0] + 0.8 * rng.randn(120) > 0).astype(int)  # noisy labels
    snapshot = _Snapshot()
    # A large constant learning rate makes the validation loss jump around.
    clf = FineTunedClassifier(
        _seeded(TinyMLP),
        early_stopping=True,
        n_iter_no_change=2,
        max_epochs=50,
        schedule="constant",
        batch_size=16,
        net_params={"callbacks": [snapshot]},
        **{**TABULAR, "lr": 1.0},
    ).fit(X, y)
    assert {"valid_loss", "valid_acc"} <= set(clf.history_[0])
    assert clf.n_epochs_ < 50
    valid_losses = [h["valid_loss"] for h in clf.history_]
    best = int(np.argmin(valid_losses))
    assert best == clf.n_epochs_ - 1 - 2  # then 2 epochs without improvement
    ds = snapshot.dataset_valid
    assert len(ds) == 12
    Xv = torch.stack([ds[i][0] for i in range(len(ds))])
    yv = torch.stack([ds[i][1] for i in range(len(ds))])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(clf.net_.module_(Xv), yv)
    assert float(loss) == pytest.approx(valid_losses[best], rel=1e-5)
    assert float(loss) != pytest.approx(valid_losses[-1], rel=1e-3)


def test_regressor_early_stopping_records_r2():
    X, _ = _tabular(60)
    reg = FineTunedRegressor(
        _seeded(TinyMLP), early_stopping=True, max_epochs=3, **TABULAR
    ).fit(X, X[:, 0] * 2)
    assert {"valid_loss", "valid_r2"} <= set(reg.history_[0])


def test_without_early_stopping_every_sample_trains():
    X, y = _tabular(50)
    clf = FineTunedClassifier(
        _seeded(TinyMLP), max_epochs=3, batch_size=16, **TABULAR
    ).fit(X, y)
    for row in clf.net_.history:
        assert sum(b["train_batch_size"] for b in row["batches"]) == 50
        assert "valid_loss" not in row
    assert clf.n_epochs_ == 3


# -- losses -------------------------------------------------------------------
def _imbalanced():
    rng = np.random.RandomState(0)
    X = rng.randn(100, 4).astype(np.float32)
    y = np.where(X[:, 0] + 0.5 * rng.randn(100) > 1.0, "rare", "common")
    return X, y


def test_class_weight_balanced_and_dict():
    X, y = _imbalanced()
    kwargs = dict(max_epochs=10, batch_size=16, **TABULAR)
    balanced = FineTunedClassifier(
        _seeded(TinyMLP), class_weight="balanced", **kwargs
    ).fit(X, y)
    expected = compute_class_weight("balanced", classes=np.unique(y), y=y)
    np.testing.assert_allclose(
        balanced.net_.criterion_.weight.numpy(), expected, rtol=1e-6
    )
    plain = FineTunedClassifier(_seeded(TinyMLP), **kwargs).fit(X, y)
    heavy = FineTunedClassifier(
        _seeded(TinyMLP), class_weight={"rare": 20.0}, **kwargs
    ).fit(X, y)
    np.testing.assert_allclose(heavy.net_.criterion_.weight.numpy(), [1.0, 20.0])
    assert plain.net_.criterion_.weight is None
    # A heavier rare class is predicted more often.
    assert np.sum(heavy.predict(X) == "rare") > np.sum(plain.predict(X) == "rare")


def test_class_weight_errors():
    X, y = _imbalanced()
    clf = FineTunedClassifier(
        _seeded(TinyMLP), class_weight={"rare": 2, "ghost": 3}, max_epochs=1, **TABULAR
    )
    with pytest.raises(
        ValueError,
        match=r"FineTunedClassifier: class_weight has "
        r"labels \['ghost'\] that are not in y's classes "
        r"\['common', 'rare'\]",
    ):
        clf.fit(X, y)
    with pytest.raises(
        ValueError, match="class_weight must be None, 'balanced' or a dict"
    ):
        clf.set_params(class_weight="heavy").fit(X, y)


def test_label_smoothing_caps_confidence():
    X, y = _tabular(80)
    kwargs = dict(max_epochs=40, batch_size=16, **TABULAR)
    sharp = FineTunedClassifier(_seeded(TinyMLP), **kwargs).fit(X, y)
    smooth = FineTunedClassifier(_seeded(TinyMLP), label_smoothing=0.4, **kwargs).fit(
        X, y
    )
    # The smoothed target of the true class is 1 - 0.4 + 0.4 / 2 = 0.8.
    assert sharp.predict_proba(X).max(axis=1).mean() > 0.95
    assert smooth.predict_proba(X).max(axis=1).mean() < 0.85
    assert smooth.score(X, y) > 0.9


# -- history and verbose ------------------------------------------------------
def test_history_and_verbose(capsys):
    X, y = _tabular(40)
    clf = FineTunedClassifier(_seeded(TinyMLP), max_epochs=2, **TABULAR).fit(X, y)
    assert len(clf.history_) == clf.n_epochs_ == 2
    for i, row in enumerate(clf.history_, start=1):
        assert {"epoch", "train_loss", "lr", "dur"} <= set(row)
        assert row["epoch"] == i and "batches" not in row
    assert capsys.readouterr().out == ""
    clf.set_params(verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "epoch" in out and "train_loss" in out and "dur" in out
    assert len([line for line in out.splitlines() if line.strip()[:1].isdigit()]) == 2


# -- scikit-learn integration -------------------------------------------------
def test_pipeline_and_cross_val_score():
    X, y = _tabular(90)
    pipe = make_pipeline(
        StandardScaler(),
        FineTunedClassifier(_seeded(TinyMLP), max_epochs=10, batch_size=16, **TABULAR),
    )
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_freeze_and_lr(n_jobs):
    X, y = _tabular(60)
    search = GridSearchCV(
        FineTunedClassifier(
            _seeded(TinyMLP),
            max_epochs=5,
            batch_size=16,
            # A random head: the learning rate decides (with the probe's
            # head, LP-FT, lr=1e-4 keeps the probe's solution and can win).
            head_init="random",
            **{**TABULAR, "freeze": "staged"},
        ),
        {"freeze": ["backbone", "none"], "lr": [1e-4, 3e-2]},
        cv=2,
        n_jobs=n_jobs,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["lr"] == 3e-2  # lr=1e-4 barely moves in 5 epochs
    assert search.best_estimator_.n_epochs_ == 5


def test_clone_gives_an_unfitted_copy(shapes_clf):
    fresh = clone(shapes_clf)
    assert not hasattr(fresh, "net_")
    assert fresh.get_params()["max_epochs"] == 15
    with pytest.raises(NotFittedError):
        fresh.predict(np.zeros((1, 16, 16, 3), np.uint8))


def test_pickle_round_trip(shapes, shapes_clf):
    X_test = shapes[2]
    loaded = pickle.loads(pickle.dumps(shapes_clf))
    np.testing.assert_array_equal(
        loaded.predict_proba(X_test), shapes_clf.predict_proba(X_test)
    )
    np.testing.assert_array_equal(loaded.classes_, shapes_clf.classes_)
    assert loaded.device_ == torch.device("cpu")


def test_pickle_of_a_gpu_fit_loads_on_the_cpu(shapes, shapes_clf):
    # The pickle holds the weights as CPU safetensors bytes; unpickled where
    # the fit's device is missing, the estimator runs on the CPU and says so.
    X_test = shapes[2]
    clf = copy.deepcopy(shapes_clf).set_params(device="cuda:99")
    with pytest.warns(
        UserWarning,
        match=re.escape(
            "FineTunedClassifier was saved with device='cuda:99', which is not "
            "available here; it is loaded on the CPU."
        ),
    ):
        loaded = pickle.loads(pickle.dumps(clf))
    assert loaded.device_ == torch.device(loaded.net_.device) == torch.device("cpu")
    np.testing.assert_array_equal(
        loaded.predict_proba(X_test), shapes_clf.predict_proba(X_test)
    )


def test_regressor_pickle_round_trip():
    X, _ = _tabular(40)
    y = np.c_[X[:, 0], X[:, 1]]
    reg = FineTunedRegressor(_seeded(TinyMLP), max_epochs=2, **TABULAR).fit(X, y)
    loaded = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))


def test_net_params_reach_skorch_and_keep_freezing(shapes):
    X, y = shapes[0][:16], shapes[1][:16]

    class Record(Callback):
        epochs = 0

        def on_epoch_end(self, net, **kwargs):
            Record.epochs += 1

    snapshot = _Snapshot()
    clf = FineTunedClassifier(
        _seeded(TinyConvNet),
        freeze="backbone",
        augment="light",
        max_epochs=3,
        preprocessing=PRE16,
        random_state=0,
        device="cpu",
        net_params={"callbacks": [Record(), snapshot], "max_epochs": 2},
    ).fit(X, y)
    assert clf.n_epochs_ == 2 and Record.epochs == 2
    assert clf.net_.max_epochs == 2
    # The user's callbacks are added to sktransfer's: the body stays frozen.
    assert _changed_blocks(clf.net_.module_, snapshot.initial) == set()
    assert "lr" in clf.history_[0]


# -- errors -------------------------------------------------------------------
@pytest.mark.parametrize(
    "params, match",
    [
        (
            {"freeze": "bad"},
            r"freeze must be one of \['staged', 'backbone', 'none'\] or "
            r"an int >= 0 .* got 'bad'",
        ),
        ({"freeze": -1}, r"freeze must be an int >= 0, got -1"),
        ({"freeze_epochs": -1}, r"freeze_epochs must be an int >= 0, got -1"),
        ({"lr": -1}, r"lr must be a float in \(0, inf\], got -1"),
        ({"lr": 0}, r"lr must be a float in \(0, inf\], got 0"),
        (
            {"backbone_lr_ratio": -0.1},
            r"backbone_lr_ratio must be a float in \[0, inf\]",
        ),
        ({"layer_decay": 2}, r"layer_decay must be a float in \(0, 1\] or None, got 2"),
        ({"weight_decay": "x"}, r"weight_decay must be a float"),
        (
            {"schedule": "x"},
            r"schedule must be one of \['onecycle', 'cosine', "
            r"'constant'\], got 'x'",
        ),
        ({"warmup": 1.0}, r"warmup must be a float in \[0, 1\), got 1.0"),
        ({"max_epochs": 0}, r"max_epochs must be an int >= 1, got 0"),
        ({"batch_size": 2.5}, r"batch_size must be an int >= 1, got 2.5"),
        (
            {"augment": "x"},
            r"augment must be one of \['off', 'light', 'default'\], "
            r"got 'x'",
        ),
        (
            {"train_transform": "flip"},
            r"train_transform must be callable or None, "
            r"got 'flip'",
        ),
        ({"early_stopping": 1}, r"early_stopping must be True or False, got 1"),
        (
            {"validation_fraction": 1.5},
            r"validation_fraction must be a float in "
            r"\(0, 1\), got 1.5",
        ),
        ({"n_iter_no_change": 0}, r"n_iter_no_change must be an int >= 1, got 0"),
        ({"verbose": -1}, r"verbose must be an int >= 0, got -1"),
        ({"net_params": "x"}, r"net_params must be a dict or None, got str"),
        (
            {"net_params": {"callbacks": "disable"}},
            r"net_params\['callbacks'\] must be a list of skorch callbacks",
        ),
        ({"label_smoothing": 1.0}, r"label_smoothing must be a float in \[0, 1\)"),
        ({"device": "tpu"}, r"device must be 'auto', 'cpu', 'cuda'"),
    ],
)
def test_invalid_params_raise_at_fit(params, match):
    X, y = _tabular(20)
    clf = FineTunedClassifier(_seeded(TinyMLP), **{**TABULAR, "max_epochs": 1})
    clf.set_params(**params)  # never fails
    with pytest.raises(ValueError, match=f"FineTunedClassifier: {match}"):
        clf.fit(X, y)


def test_construction_never_fails():
    bad = dict(
        weights=object(),
        freeze="bad",
        lr=-1,
        schedule="x",
        augment="x",
        validation_fraction=1.5,
        max_epochs=0,
        net_params="x",
        layer_decay=2,
        device="tpu",
        preprocessing=3,
        image_shape="x",
    )
    for cls, extra in [
        (FineTunedClassifier, {"class_weight": 3}),
        (FineTunedRegressor, {"target_scaling": "x"}),
    ]:
        est = cls("no-such-backbone", **bad, **extra)
        params = est.get_params()
        for key, value in {**bad, **extra}.items():
            assert params[key] is value
        clone(est)


def test_regressor_target_errors():
    X, _ = _tabular(20)
    reg = FineTunedRegressor(_seeded(TinyMLP), **{**TABULAR, "max_epochs": 1})
    with pytest.raises(
        ValueError,
        match="FineTunedRegressor: y must be numeric, got "
        "dtype <U1; for class labels use FineTunedClassifier",
    ):
        reg.fit(X, np.array(list("ab") * 10))
    with pytest.raises(ValueError, match="Input y contains NaN"):
        reg.fit(X, np.r_[np.nan, np.ones(19)])
    with pytest.raises(
        ValueError,
        match=r"y must be 1-D or 2-D, got shape "
        r"\(20, 1, 1\)",
    ):
        reg.fit(X, np.ones((20, 1, 1)))
    with pytest.raises(ValueError, match="target_scaling must be True or False"):
        reg.set_params(target_scaling="yes").fit(X, X[:, 0])


@pytest.mark.parametrize("cls", [FineTunedClassifier, FineTunedRegressor])
def test_input_errors(cls):
    X, _ = _tabular(20)
    y = np.arange(20) % 2
    name = cls.__name__
    est = cls(_seeded(TinyMLP), **{**TABULAR, "max_epochs": 1})
    with pytest.raises(
        ValueError,
        match=f"{name}: X and y have different lengths: 20 images but 19 targets",
    ):
        est.fit(X, y[:19])
    with pytest.raises(
        ValueError, match=f"{name} requires y to be passed, but the target y is None"
    ):
        est.fit(X, None)
    with pytest.raises(NotFittedError):
        est.predict(X)
    est.fit(X, y)
    with pytest.raises(
        ValueError, match=f"X has 3 features, but {name} is expecting 5 features"
    ):
        est.predict(X[:, :3])
    # Rows of numbers: an augment preset means no augmentation (the image
    # cases that still raise: tests/test_conventions.py).
    est.set_params(augment="light").fit(X, y)


def test_image_length_mismatch_and_single_class(shapes):
    X, y = shapes[0][:10], shapes[1][:10]
    clf = FineTunedClassifier(
        _seeded(TinyConvNet), preprocessing=PRE16, max_epochs=1, device="cpu"
    )
    with pytest.raises(
        ValueError,
        match="FineTunedClassifier: X and y have "
        "different lengths: 9 images but 10 targets",
    ):
        clf.fit(X[:9], y)
    with pytest.raises(
        ValueError,
        match="FineTunedClassifier needs samples of at "
        "least 2 classes in the data, but the data contains only "
        "one class: 'disk'",
    ):
        clf.fit(X, np.full(10, "disk"))


# -- devices ------------------------------------------------------------------
_LOAD_ON_CPU = """
import pickle, sys, warnings
import numpy as np, torch
assert not torch.cuda.is_available()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    clf = pickle.load(open(sys.argv[1], "rb"))
X = np.load(sys.argv[2])
assert clf.device_ == torch.device("cpu")
np.testing.assert_allclose(clf.predict_proba(X), np.load(sys.argv[3]), atol=1e-4)
"""


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_fitted_model_loads_and_predicts_on_cpu(shapes, tmp_path):
    X, y = shapes[0], shapes[1]
    clf = FineTunedClassifier(
        _seeded(TinyConvNet),
        preprocessing=PRE16,
        class_weight="balanced",
        max_epochs=3,
        **{**FAST, "device": "cuda"},
    ).fit(X, y)
    assert clf.device_.type == "cuda"
    with open(tmp_path / "clf.pkl", "wb") as f:
        pickle.dump(clf, f)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "proba.npy", clf.predict_proba(X))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_ON_CPU,
            str(tmp_path / "clf.pkl"),
            str(tmp_path / "X.npy"),
            str(tmp_path / "proba.npy"),
        ],
        env=env,
        check=True,
    )
