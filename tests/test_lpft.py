"""The fine-tuning recipe (LP-FT): a head that starts at the linear probe,
BatchNorm statistics kept fixed, training counted in steps, channels-last.

What the recipe gains on real data is measured in benchmarks/finetune_recipe;
these tests check that each part does what it says.
"""

import copy

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from sktransfer import (
    FineTunedClassifier,
    FineTunedRegressor,
    PretrainedFeatureExtractor,
)
from sktransfer._finetune import _has_trained_bn
from sktransfer._probe_head import RIDGE_ALPHAS
from sktransfer._testing import (
    TinyConvNet,
    TinyMLP,
    assert_allclose_float32,
    make_shapes_dataset,
)
from sktransfer._training import MIN_STEPS, training_epochs

PRE16 = {"resize_size": 16, "crop_size": 16}
# Learning rate ~0: after fit, the head is still the probe's.
FROZEN_START = dict(lr=1e-12, max_epochs=1, augment="off", device="cpu")


def _seeded(cls, seed=0, **kwargs):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)


def _pretrained_like_cnn():
    """A TinyConvNet whose BatchNorm statistics have been estimated (as a
    pretrained network's have), from a few forward passes in train mode."""
    net = _seeded(TinyConvNet)
    X, _ = make_shapes_dataset(n_per_class=10, size=16, random_state=5)
    x = torch.from_numpy(X).permute(0, 3, 1, 2).float() / 255
    net.train()
    with torch.no_grad():
        for _ in range(5):
            net(x)
    return net.eval()


class _MLP(nn.Module):
    """TinyMLP with an eager first layer (a lazy one is initialised at the
    first forward, differently by the extractor and the fine-tuner)."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def _tabular(n=90, n_classes=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 6).astype(np.float32)
    y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5][: n_classes - 1])
    return X, y


@pytest.mark.parametrize("n_classes", [2, 3])
def test_probe_head_gives_the_linear_probe_predictions(n_classes):
    X, y = _tabular(n_classes=n_classes)
    module = _seeded(_MLP, num_classes=n_classes)
    clf = FineTunedClassifier(
        copy.deepcopy(module),
        preprocessing="passthrough",
        head_init="probe",
        **FROZEN_START,
    ).fit(X, y)
    probe = make_pipeline(
        PretrainedFeatureExtractor(copy.deepcopy(module), preprocessing="passthrough"),
        StandardScaler(),
        LogisticRegression(max_iter=1000),
    ).fit(X, y)
    assert_allclose_float32(clf.predict_proba(X), probe.predict_proba(X), ulps=4096)
    np.testing.assert_array_equal(clf.predict(X), probe.predict(X))


def test_probe_head_uses_class_weights():
    X, y = _tabular(n_classes=2)
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:8]]
    X, y = X[keep], y[keep]
    module = _seeded(_MLP)
    clf = FineTunedClassifier(
        copy.deepcopy(module),
        preprocessing="passthrough",
        head_init="probe",
        class_weight="balanced",
        **FROZEN_START,
    ).fit(X, y)
    feats = PretrainedFeatureExtractor(
        copy.deepcopy(module), preprocessing="passthrough"
    ).fit_transform(X)
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=1000, class_weight="balanced")
    ).fit(feats, y)
    assert_allclose_float32(clf.predict_proba(X), probe.predict_proba(feats), ulps=4096)


def test_regressor_head_starts_at_ridge():
    X, _ = _tabular()
    y = X[:, 0] * 3 + X[:, 2] + 10
    module = _seeded(_MLP, num_classes=1)
    reg = FineTunedRegressor(
        copy.deepcopy(module),
        preprocessing="passthrough",
        head_init="probe",
        **FROZEN_START,
    ).fit(X, y)
    feats = PretrainedFeatureExtractor(
        copy.deepcopy(module), preprocessing="passthrough"
    ).fit_transform(X)
    scaled = StandardScaler().fit(y[:, None])
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(
        feats, scaled.transform(y[:, None]).ravel()
    )
    expected = scaled.inverse_transform(ridge.predict(feats)[:, None]).ravel()
    assert_allclose_float32(reg.predict(X), expected, ulps=4096)


def test_random_head_init_is_not_the_probe():
    X, y = _tabular()
    module = _seeded(_MLP, num_classes=3)
    kwargs = dict(preprocessing="passthrough", **FROZEN_START)
    probe = FineTunedClassifier(copy.deepcopy(module), head_init="probe", **kwargs)
    random = FineTunedClassifier(copy.deepcopy(module), head_init="random", **kwargs)
    assert probe.fit(X, y).score(X, y) > random.fit(X, y).score(X, y) + 0.2


def test_batchnorm_statistics_stay_fixed_only_when_asked():
    X, y = make_shapes_dataset(n_per_class=8, size=16)
    net = _pretrained_like_cnn()
    before = net.block1[1].running_mean.clone()
    common = dict(preprocessing=PRE16, max_epochs=2, augment="off", device="cpu")
    frozen = FineTunedClassifier(copy.deepcopy(net), **common).fit(X, y)  # auto
    assert frozen.net_.module_.freeze_bn
    body = frozen.net_.module_.body
    bn = next(m for m in body.modules() if isinstance(m, nn.BatchNorm2d))
    torch.testing.assert_close(bn.running_mean, before, rtol=0, atol=0)
    moving = FineTunedClassifier(copy.deepcopy(net), freeze_bn=False, **common)
    moving.fit(X, y)
    bn = [
        m for m in moving.net_.module_.body.modules() if isinstance(m, nn.BatchNorm2d)
    ]
    assert not torch.equal(bn[0].running_mean, before)


def test_auto_settings_follow_whether_batchnorm_is_pretrained():
    assert _has_trained_bn(_pretrained_like_cnn())
    assert not _has_trained_bn(_seeded(TinyConvNet))
    X, y = make_shapes_dataset(n_per_class=4, size=16)
    common = dict(preprocessing=PRE16, max_epochs=1, augment="off", device="cpu")
    untrained = FineTunedClassifier(_seeded(TinyConvNet), **common).fit(X, y)
    assert not untrained.net_.module_.freeze_bn
    scratch = FineTunedClassifier(_pretrained_like_cnn(), weights=None, **common)
    assert not scratch.fit(X, y).net_.module_.freeze_bn


def test_auto_epochs_give_at_least_min_steps():
    assert training_epochs("auto", 100, 32) == -(-MIN_STEPS // 4)  # 4 batches/epoch
    assert training_epochs("auto", 10_000, 32) == 5
    assert training_epochs(3, 100, 32) == 3
    X, y = make_shapes_dataset(n_per_class=8, size=16)  # 16 images, 1 batch
    clf = FineTunedClassifier(
        _seeded(TinyConvNet), preprocessing=PRE16, augment="off", batch_size=16
    ).fit(X, y)
    assert clf.n_epochs_ == MIN_STEPS
    assert sum(h["train_batch_count"] for h in clf.history_) == MIN_STEPS


def test_convolutional_body_trains_channels_last():
    X, y = make_shapes_dataset(n_per_class=4, size=16)
    clf = FineTunedClassifier(
        _seeded(TinyConvNet), preprocessing=PRE16, max_epochs=1, device="cpu"
    ).fit(X, y)
    module = clf.net_.module_
    assert module.channels_last
    convs = [m for m in module.body.modules() if isinstance(m, nn.Conv2d)]
    assert convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    mlp = FineTunedClassifier(
        _seeded(TinyMLP), preprocessing="passthrough", max_epochs=1, augment="off"
    ).fit(*_tabular())
    assert not mlp.net_.module_.channels_last
