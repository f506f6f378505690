"""Grad-CAM explanations of FineTunedClassifier, on a task with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from torch import nn

from sktransfer import FineTunedClassifier, plot_explanation
from sktransfer._explain import last_feature_map
from sktransfer._testing import (
    TinyConvNet,
    TinyMLP,
    assert_allclose_float32,
    make_shapes_dataset,
)

SIZE, SIDE = 32, 6


class AddCoords(nn.Module):
    """Appends x and y coordinate channels (CoordConv, Liu et al. 2018), so
    that convolutions can tell left from right."""

    def forward(self, x):
        n, _, h, w = x.shape
        ys = torch.linspace(-1, 1, h, device=x.device).view(1, 1, h, 1)
        xs = torch.linspace(-1, 1, w, device=x.device).view(1, 1, 1, w)
        return torch.cat([x, xs.expand(n, 1, h, w), ys.expand(n, 1, h, w)], 1)


class TinyCoordNet(nn.Module):
    """conv - relu - conv - relu on image + coordinates, average pooling,
    linear head: the class can depend on where things are."""

    def __init__(self, width=8):
        super().__init__()
        self.features = nn.Sequential(
            AddCoords(),
            nn.Conv2d(5, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, 2)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def square_images(n, seed):
    """Dark noisy images with one bright square; the label is the half of the
    image the square lies in. Returns images, labels and the square masks."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 50, (n, SIZE, SIZE, 3)).astype(np.uint8)
    masks = np.zeros((n, SIZE, SIZE), bool)
    labels = np.where(np.arange(n) % 2 == 0, "left", "right")
    for i, label in enumerate(labels):
        lo, hi = (0, SIZE // 2 - SIDE) if label == "left" else (SIZE // 2, SIZE - SIDE)
        top, left = rng.integers(0, SIZE - SIDE + 1), rng.integers(lo, hi + 1)
        images[i, top : top + SIDE, left : left + SIDE] = 230
        masks[i, top : top + SIDE, left : left + SIDE] = True
    return images, labels, masks


@pytest.fixture(scope="module")
def square_task():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = TinyCoordNet()
    X, y, _ = square_images(160, seed=0)
    clf = FineTunedClassifier(
        backbone,
        weights=None,
        max_epochs=15,
        lr=1e-2,
        augment="off",
        preprocessing={"resize_size": SIZE, "crop_size": SIZE},
        random_state=0,
    ).fit(X, y)
    return clf, square_images(60, seed=1)


def _hits(heatmaps, masks, margin=1):
    """Whether each heatmap's maximum lies on its square (grown by ``margin``
    pixels, for the blur of upsampling a 3x3-conv map)."""
    hits = []
    for heat, mask in zip(heatmaps, masks):
        r, c = np.unravel_index(np.argmax(heat), heat.shape)
        rows, cols = np.nonzero(mask)
        hits.append(
            rows.min() - margin <= r <= rows.max() + margin
            and cols.min() - margin <= c <= cols.max() + margin
        )
    return np.asarray(hits)


def test_heatmaps_peak_on_the_square_that_decides_the_class(square_task):
    clf, (X, y, masks) = square_task
    assert clf.score(X, y) >= 0.95  # the classifier solved the task
    heatmaps = clf.explain(X)
    assert heatmaps.shape == (len(X), SIZE, SIZE) and heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0 and np.allclose(heatmaps.max(axis=(1, 2)), 1)
    hits = _hits(heatmaps, masks)
    assert hits.mean() >= 0.9, f"peaks on the square for {hits.mean():.0%} only"
    # A bright square gives the largest activations even to a network that
    # has not learned the task (1 epoch, accuracy 0.5: the peak is on the
    # square for 59 of 60 images, but only 5% of the heatmap's mass, measured):
    # the square's share of the mass is what tells a learned explanation.
    # Trained (15 epochs): a median share of 63%, for 3.5% of the area.
    inside = (heatmaps * masks).sum((1, 2)) / heatmaps.sum((1, 2))
    assert np.median(inside) > 0.3


def test_the_test_can_fail_with_a_map_of_the_wrong_place(square_task):
    """The same check on the mirrored heatmaps (a map that points at the
    other half) fails: the test above is not vacuous."""
    clf, (X, _, masks) = square_task
    heatmaps = clf.explain(X)
    assert _hits(heatmaps[:, :, ::-1], masks).mean() < 0.2


def test_layer_and_target_choose_what_is_explained(square_task):
    clf, (X, _, _) = square_task
    backbone = clf.net_.module_.body.body
    x = torch.zeros(1, 3, SIZE, SIZE)
    assert last_feature_map(backbone, x) == "features"
    default = clf.explain(X[:4])
    np.testing.assert_array_equal(clf.explain(X[:4], layer="features"), default)
    early = clf.explain(X[:4], layer="features.2")
    assert early.shape == default.shape and not np.array_equal(early, default)
    predicted = clf.predict(X[:4])
    # One image alone vs the first of four: other batch sizes take other
    # float32 kernels on some CPUs (seen: 3e-7 on AMD EPYC).
    alone = clf.explain(X[:1], target=predicted[0])
    assert_allclose_float32(alone, default[:1])
    other = "left" if predicted[0] == "right" else "right"
    # Against the same batch size, so that only the target can differ.
    assert not np.allclose(clf.explain(X[:1], target=other), alone, atol=1e-3)


def test_explain_errors(square_task):
    clf, (X, _, _) = square_task
    with pytest.raises(ValueError, match=r"has no layer 'featurs'.*Close names"):
        clf.explain(X[:2], layer="featurs")
    with pytest.raises(TypeError, match=r"layer must be a module name \(str\)"):
        clf.explain(X[:2], layer=["features"])
    with pytest.raises(ValueError, match=r"target must be one of classes_"):
        clf.explain(X[:2], target="up")
    with pytest.raises(NotFittedError):
        FineTunedClassifier(TinyConvNet()).explain(X[:2])
    Xt = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    mlp = FineTunedClassifier(
        TinyMLP(), preprocessing="passthrough", augment="off", max_epochs=1
    ).fit(Xt, np.arange(20) % 2)
    with pytest.raises(ValueError, match=r"explain computes saliency maps of images"):
        mlp.explain(Xt)


def test_a_backbone_without_feature_maps_is_refused():
    X, y = make_shapes_dataset(n_per_class=5, size=8)
    clf = FineTunedClassifier(
        nn.Sequential(
            nn.Flatten(), nn.Linear(8 * 8 * 3, 4), nn.ReLU(), nn.Linear(4, 2)
        ),
        weights=None,
        max_epochs=1,
        augment="off",
        preprocessing={"resize_size": 8, "crop_size": 8},
    ).fit(X, y)
    with pytest.raises(ValueError, match=r"no module returning a spatial feature map"):
        clf.explain(X)


def test_plot_explanation_overlays_the_heatmap(square_task):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clf, (X, _, _) = square_task
    heat = clf.explain(X[:1])[0]
    fig, ax = plt.subplots()
    assert plot_explanation(X[0], heat, ax=ax) is ax
    image, overlay = ax.get_images()
    np.testing.assert_array_equal(overlay.get_array(), heat)
    assert overlay.get_alpha() == 0.5 and image.get_extent() == overlay.get_extent()
    with pytest.raises(ValueError, match=r"heatmap \(h, w\)"):
        plot_explanation(X[0], heat[None], ax=ax)
    plt.close(fig)
