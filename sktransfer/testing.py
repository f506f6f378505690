"""Small networks and data for examples, tutorials and tests.

Nothing here is pretrained: :class:`TinyConvNet` and :class:`TinyMLP` are
randomly initialised backbones that run in a second on a CPU, and
:func:`make_shapes_dataset` makes images whose class is visible (a square or
a disk). The documentation's examples use them where a real pretrained
backbone would need a download.
"""

from __future__ import annotations

import numpy as np
from torch import nn

__all__ = ["TinyConvNet", "TinyMLP", "make_shapes_dataset"]


class TinyConvNet(nn.Module):
    """A 2-block CNN with BatchNorm and a linear head, randomly initialised.

    Small enough to fine-tune in a second on a CPU, with the parts transfer
    learning code must handle (convolutional blocks, BatchNorm statistics,
    a classification head): the backbone of the documentation's examples
    and of the test suite, in place of a pretrained network.

    Parameters
    ----------
    in_channels : int, default=3
        Channels of the input images.
    width : int, default=8
        Channels of both convolutional blocks, the number of features.
    num_classes : int, default=10
        Outputs of the linear head ``fc`` (replaced when fine-tuning).

    Examples
    --------
    >>> import torch
    >>> from sktransfer.testing import TinyConvNet
    >>> TinyConvNet()(torch.zeros(2, 3, 16, 16)).shape
    torch.Size([2, 10])
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
        """Class scores of a batch of images.

        Parameters
        ----------
        x : torch.Tensor of shape (N, in_channels, H, W)
            The images (H and W of at least 2).

        Returns
        -------
        logits : torch.Tensor of shape (N, num_classes)
            The head's outputs.
        """
        x = self.pool(self.block2(self.block1(x))).flatten(1)
        return self.fc(x)


class TinyMLP(nn.Module):
    """A tabular backbone for 2-D float input of any width (lazy first layer).

    With ``preprocessing="passthrough"`` it lets the estimators run on
    plain numeric arrays (scikit-learn's estimator checks use it).

    Parameters
    ----------
    hidden : int, default=16
        Width of the hidden layer, the number of features.
    num_classes : int, default=2
        Outputs of the linear head ``head`` (replaced when fine-tuning).

    Examples
    --------
    >>> import torch
    >>> from sktransfer.testing import TinyMLP
    >>> TinyMLP()(torch.zeros(5, 7)).shape
    torch.Size([5, 2])
    """

    def __init__(self, hidden=16, num_classes=2):
        super().__init__()
        self.body = nn.Sequential(nn.LazyLinear(hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x):
        """Outputs of a batch of rows.

        Parameters
        ----------
        x : torch.Tensor of shape (N, d) or (N, ...)
            The rows (flattened from the second dimension on).

        Returns
        -------
        outputs : torch.Tensor of shape (N, num_classes)
            The head's outputs.
        """
        return self.head(self.body(x.flatten(1)))


def make_shapes_dataset(n_per_class=20, size=24, random_state=0):
    """Synthetic RGB images of 2 classes: a bright square vs a bright disk.

    Each image is dark noise with one bright shape of random size, position
    and colour; images are shuffled.

    Parameters
    ----------
    n_per_class : int, default=20
        Images of each class.
    size : int, default=24
        Height and width of the images in pixels.
    random_state : int, default=0
        Seed of the shapes, colours, noise and order.

    Returns
    -------
    images : ndarray of shape (2 * n_per_class, size, size, 3), uint8
        The images.
    labels : ndarray of shape (2 * n_per_class,)
        ``"square"`` or ``"disk"``.

    Examples
    --------
    >>> from sktransfer.testing import make_shapes_dataset
    >>> X, y = make_shapes_dataset(n_per_class=3, size=16)
    >>> X.shape, sorted(set(y.tolist()))
    ((6, 16, 16, 3), ['disk', 'square'])
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
