"""Tiny backbones and image factories for tests, docs and smoke runs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-7


def float32_tolerance(expected, *, ulps=128):
    """``(rtol, atol)`` for float32 results that different kernels compute.

    CPUs (AVX2, AVX-512, AMX) and batch sizes change the order in which
    float32 sums are taken, so results differ by a few units in the last
    place of the *terms* summed, not of the result: a value near zero may
    carry the absolute error of the large values it was computed from. The
    tolerance is therefore ``ulps`` float32 epsilons relative to each value
    plus the same relative to the largest magnitude in ``expected``.
    ``ulps=128`` (1.5e-5) covers the short reductions of small test networks;
    comparisons across implementations (another library, resampling) pass
    a larger count.
    """
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    rtol = ulps * FLOAT32_EPS
    return rtol, rtol * max(scale, float(np.finfo(np.float32).tiny))


def assert_allclose_float32(actual, expected, *, ulps=128, err_msg=""):
    """``np.testing.assert_allclose`` with :func:`float32_tolerance`."""
    actual = actual.numpy() if isinstance(actual, torch.Tensor) else actual
    expected = expected.numpy() if isinstance(expected, torch.Tensor) else expected
    rtol, atol = float32_tolerance(expected, ulps=ulps)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


class TinyConvNet(nn.Module):
    """A 2-block CNN with BatchNorm and a linear head; 8 features.

    Small enough to fine-tune in a second on CPU, with the parts transfer
    learning code must handle: conv blocks, BatchNorm statistics, a head.
    """

    def __init__(self, in_channels=3, width=8, num_classes=10):
        super().__init__()
        self.block1 = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.block2 = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.pool(self.block2(self.block1(x))).flatten(1)
        return self.fc(x)


class TinyMLP(nn.Module):
    """A tabular backbone for 2-D float input of any width (lazy first layer).

    Used to run scikit-learn's estimator checks on the real estimators.
    """

    def __init__(self, hidden=16, num_classes=2):
        super().__init__()
        self.body = nn.Sequential(nn.LazyLinear(hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.head(self.body(x.flatten(1)))


def make_shapes_dataset(n_per_class=20, size=24, random_state=0):
    """Synthetic RGB images of 2 classes: a bright square vs a bright disk.

    Returns uint8 images (N, size, size, 3) and string labels.
    """
    rng = np.random.default_rng(random_state)
    images, labels = [], []
    yy, xx = np.mgrid[:size, :size]
    for label in ("square", "disk"):
        for _ in range(n_per_class):
            img = rng.integers(0, 60, (size, size, 3))
            r = rng.integers(size // 6, size // 4 + 1)
            cy, cx = rng.integers(r, size - r, 2)
            if label == "square":
                mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            else:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            color = rng.integers(150, 256, 3)
            img[mask] = color
            images.append(img)
            labels.append(label)
    images = np.stack(images).astype(np.uint8)
    labels = np.asarray(labels)
    order = rng.permutation(len(labels))
    return images[order], labels[order]


def save_torchvision_checkpoint(name, weights="DEFAULT", random_state=0):
    """Save random weights where torch's hub cache expects ``weights`` of ``name``.

    Lets tests exercise torchvision's real ``weights="DEFAULT"`` loading path
    without network. Returns the path written.
    """
    import os

    import torchvision

    from .backbones._torchvision import hub_checkpoint_path

    member = torchvision.models.get_model_weights(name)
    member = member.DEFAULT if weights == "DEFAULT" else member[weights]
    path = hub_checkpoint_path(member.url)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        model = torchvision.models.get_model(
            name, weights=None, num_classes=len(member.meta["categories"])
        )
    torch.save(model.state_dict(), path)
    return path


def save_images(folder, images, fmt="png"):
    """Write uint8 arrays as image files ``00000.<fmt>``, ...; return the paths."""
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:05d}.{fmt}"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths
