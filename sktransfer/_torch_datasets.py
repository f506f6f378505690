"""torch Datasets over what users pass as X, for training and prediction."""

from __future__ import annotations

import numpy as np
import torch

from ._preprocessing import to_float

# Keep resized images in memory across epochs when they fit in this budget.
_MEMO_BYTES = 2 * 1024**3


class ImageDataset(torch.utils.data.Dataset):
    """``(x, y)`` pairs: preprocessed (and, in training, augmented) images.

    The resize and centre crop of each image are computed once and kept (in
    their original dtype) while the data set fits in 2 GiB, so later epochs
    only pay for augmentation and normalisation.
    """

    def __init__(self, images, y, preprocessing, augmentation=None):
        self.images = images
        self.y = y
        self.preprocessing = preprocessing
        self.augmentation = augmentation
        self._memo = {}
        self._memo_ok = None

    def __len__(self):
        return len(self.images)

    def _base(self, i):
        if i in self._memo:
            return self._memo[i]
        base = self.preprocessing.resize_crop(self.images[i])
        if self._memo_ok is None:
            self._memo_ok = (
                base.element_size() * base.numel() * len(self) <= _MEMO_BYTES
            )
        if self._memo_ok:
            self._memo[i] = base
        return base

    def __getitem__(self, i):
        x = to_float(self._base(i))
        if self.augmentation is not None:
            x = self.augmentation(x)
        x = self.preprocessing.normalize(x)
        return x, _target(self.y, i)


class TensorDataset(torch.utils.data.Dataset):
    """``(x, y)`` pairs from a float32 tensor (passthrough or features)."""

    def __init__(self, X, y):
        self.X = X
        self.y = y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], _target(self.y, i)


def _target(y, i):
    if y is None:
        return torch.zeros(0)
    return y[i]


def subset(dataset_X, indices):
    """Rows ``indices`` of an ImageSequence or a tensor."""
    if isinstance(dataset_X, torch.Tensor):
        return dataset_X[torch.as_tensor(np.asarray(indices))]
    return dataset_X.subset(indices)
