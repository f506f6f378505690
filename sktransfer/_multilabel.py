"""Multi-label classification: ``y`` as a binary indicator matrix.

A 2-D ``y`` of shape (n_samples, n_labels) with at least two columns, 1
where a sample has a label and 0 where it has not (what
:class:`~sklearn.preprocessing.MultiLabelBinarizer` returns), makes
:class:`~sktransfer.FineTunedClassifier` a multi-label classifier: one
sigmoid output per label, trained with binary cross-entropy on the logits.
This module validates such a ``y`` and holds the pieces that differ from
single-label classification (loss, validation score, prediction); the
estimator calls them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._sample_weight import unpack, weighted_mean


def is_multilabel_target(y):
    """Whether ``y`` (an array) is read as a multi-label indicator matrix:
    2-D with at least two columns. A single column is a 1-D ``y``."""
    return y.ndim == 2 and y.shape[1] >= 2


def check_indicator(y, owner):
    """``y`` (n_samples, n_labels) as float32 zeros and ones.

    Raises ``ValueError`` naming ``y`` (and the column) for values other
    than 0 and 1, missing values, and a label column that is constant (all 0:
    no sample has the label; all 1: every sample has it), which cannot be
    learned.
    """
    values = _numeric(y, owner)
    bad = ~((values == 0) | (values == 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        shown = y[row, col]
        shown = shown.item() if isinstance(shown, np.generic) else shown
        what = "a missing value" if _is_missing(shown) else f"the value {shown!r}"
        raise ValueError(
            f"{owner}: y is 2-D with {y.shape[1]} columns, read as a multi-label "
            f"indicator matrix (one column per label, as MultiLabelBinarizer "
            f"returns), but y[{row}, {col}] is {what}; every entry must be 0 or "
            f"1 (or False/True). For one label per sample pass a 1-D y; "
            f"multi-output multiclass targets are not supported."
        )
    for col in range(values.shape[1]):
        column = values[:, col]
        if column.min() == column.max():
            value = int(column[0])
            who = "no sample has" if value == 0 else "every sample has"
            raise ValueError(
                f"{owner}: column {col} of the multi-label y is all {value} "
                f"({who} label {col}), so that label cannot be learned. Drop the "
                f"column, or fit the MultiLabelBinarizer on labels the training "
                f"samples show (with cross-validation: fewer folds or more data)."
            )
    return values.astype(np.float32)


def _numeric(y, owner):
    if y.dtype.kind in "biuf":
        return y.astype(np.float64)
    if y.dtype.kind == "O":
        out = np.full(y.shape, np.nan)
        for idx, v in np.ndenumerate(y):
            if isinstance(v, (bool, np.bool_, int, float, np.integer, np.floating)):
                out[idx] = float(v)
        return out
    # Strings, complex, datetimes: no entry is an indicator.
    raise ValueError(
        f"{owner}: y is 2-D with {y.shape[1]} columns, read as a multi-label "
        f"indicator matrix, but its dtype is {y.dtype}; every entry must be 0 or "
        f"1 (or False/True). For one label per sample pass a 1-D y; label sets "
        f"become an indicator matrix with MultiLabelBinarizer().fit_transform; "
        f"multi-output multiclass targets are not supported."
    )


def _is_missing(value):
    if value is None:
        return True
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        return False


def check_multilabel_params(estimator):
    """Refuse the parameters that have no multi-label meaning (``class_weight``)."""
    if estimator.class_weight is not None:
        raise ValueError(
            f"{type(estimator).__name__}: class_weight={estimator.class_weight!r} "
            f"is for single-label y; with a multi-label indicator y set "
            f"class_weight=None."
        )


class MultiLabelLoss(nn.BCEWithLogitsLoss):
    """Binary cross-entropy on the logits, one term per label, averaged.

    With ``label_smoothing`` s the targets 0 and 1 become s/2 and 1 - s/2
    (the two-class case of cross-entropy's label smoothing).
    """

    def __init__(self, label_smoothing=0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        target, w = unpack(target)
        target = target.to(input.dtype)
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + self.label_smoothing / 2
        if w is None:
            return super().forward(input, target)
        loss = F.binary_cross_entropy_with_logits(input, target, reduction="none")
        loss = loss.mean(1)
        return weighted_mean(loss, torch.ones_like(loss), w)


def multilabel_valid_score(logits, y, w=None):
    """The fraction of (sample, label) entries right at probability 0.5
    (1 - Hamming loss), the ``valid_acc`` of a multi-label fit; with sample
    weights ``w``, each sample's fraction weighted."""
    hits = ((logits > 0) == (y > 0.5)).float().mean(1)
    if w is None:
        return float(hits.mean())
    return float((hits * w).sum() / w.sum().clamp_min(1e-30))


def multilabel_proba(logits):
    """Per-label probabilities (sigmoid) of an (n, n_labels) logits array."""
    return torch.sigmoid(torch.from_numpy(logits)).numpy()


def multilabel_predict(proba, threshold, dtype):
    """The indicator matrix: 1 where a label's probability exceeds
    ``threshold``, in the ``dtype`` of the ``y`` given to fit."""
    return (proba > threshold).astype(dtype)
