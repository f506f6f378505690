"""Sample weights of the fine-tuners: validation, weighted targets, weighted losses.

With ``fit(X, y, sample_weight=w)`` every training (and validation) target
travels with its weight: the data sets hold :class:`WeightedTargets`, whose
rows are ``{"y": target, "w": weight}`` dicts (collated into dicts of
tensors), and the criterion is a weighted loss that accepts them. A batch's
loss is ``sum(v_i * l_i) / sum(v_i)`` with ``v_i`` the sample weight times
the class weight of the sample's label: the mean over the batch with sample
``i`` counted ``v_i`` times, which is what ``torch.nn.CrossEntropyLoss``
computes with class weights alone. Without ``sample_weight`` nothing here is
used: targets stay tensors and the losses are torch's own.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def check_sample_weight(owner, sample_weight, n_samples):
    """``sample_weight`` as a float64 array of shape ``(n_samples,)``, or None.

    A number gives every sample that weight. Raises ValueError (naming
    ``owner``) for a wrong shape, non-numeric, NaN, infinite or negative
    weights, and weights that are all zero.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number) and not isinstance(
        sample_weight, bool
    ):
        w = np.full(n_samples, sample_weight, dtype=np.float64)
    else:
        if hasattr(sample_weight, "to_numpy"):
            sample_weight = sample_weight.to_numpy()
        w = np.asarray(sample_weight)
        if w.dtype.kind not in "biuf":
            raise ValueError(
                f"{owner}: sample_weight must be numeric, got dtype {w.dtype}."
            )
        if w.shape != (n_samples,):
            raise ValueError(
                f"{owner}: sample_weight must have shape ({n_samples},) (one "
                f"weight per sample of X), got shape {w.shape}."
            )
        w = w.astype(np.float64)
    if not np.isfinite(w).all():
        bad = np.flatnonzero(~np.isfinite(w))
        raise ValueError(
            f"{owner}: sample_weight contains NaN or infinity (at rows "
            f"{bad[:5].tolist()}); give every sample a finite weight >= 0."
        )
    if (w < 0).any():
        bad = np.flatnonzero(w < 0)
        raise ValueError(
            f"{owner}: sample_weight must be >= 0, got negative weights at rows "
            f"{bad[:5].tolist()}."
        )
    if not w.any():
        raise ValueError(
            f"{owner}: sample_weight is zero for every sample, so there is "
            f"nothing to train on; give some samples a positive weight."
        )
    return w


class WeightedTargets:
    """Targets ``y`` (a tensor) with their weights ``w``: row ``i`` is the
    dict ``{"y": y[i], "w": w[i]}``, an index array gives a WeightedTargets."""

    def __init__(self, y, w):
        self.y = y
        self.w = w

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        if isinstance(i, numbers.Integral):
            return {"y": self.y[i], "w": self.w[i]}
        i = torch.as_tensor(np.asarray(i))
        return WeightedTargets(self.y[i], self.w[i])


def weighted_targets(y, sample_weight):
    """``torch.as_tensor(y)``, or WeightedTargets when ``sample_weight`` is given."""
    y_t = torch.as_tensor(y)
    if sample_weight is None:
        return y_t
    return WeightedTargets(y_t, torch.as_tensor(sample_weight, dtype=torch.float32))


def identity_targets(y, sample_weight):
    """Targets and weights as one float64 array ``(n, k + 1)``, for the run
    identity of a checkpoint."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    return np.column_stack([y, sample_weight])


def unpack(target):
    """``(y, w)`` of a collated batch target (``w`` None without weights)."""
    if isinstance(target, dict):
        return target["y"], target["w"]
    return target, None


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy (class weights ``weight``, ``label_smoothing``) whose
    targets may carry sample weights; the state dict is that of
    ``nn.CrossEntropyLoss`` (``weight``), so saved estimators read the same."""

    def __init__(self, weight=None, label_smoothing=0.0):
        super().__init__()
        self.register_buffer("weight", weight)
        self.label_smoothing = label_smoothing

    def forward(self, y_pred, y_true):
        y, w = unpack(y_true)
        loss = F.cross_entropy(
            y_pred,
            y,
            weight=self.weight,
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        norm = torch.ones_like(loss) if self.weight is None else self.weight[y]
        return weighted_mean(loss, norm, w)


class WeightedMSE(nn.Module):
    """Mean squared error (averaged over outputs per sample) whose targets may
    carry sample weights."""

    def forward(self, y_pred, y_true):
        y, w = unpack(y_true)
        loss = F.mse_loss(y_pred, y, reduction="none")
        loss = loss.reshape(len(loss), -1).mean(1)
        return weighted_mean(loss, torch.ones_like(loss), w)


def weighted_mean(loss, norm, w):
    """``sum(v_i * loss_i) / sum(v_i)`` with ``v_i = norm_i * w_i`` (``w`` may be None)."""
    if w is not None:
        w = w.to(loss)
        loss, norm = loss * w, norm * w
    # A batch whose weights are all zero contributes a zero loss.
    return loss.sum() / norm.sum().clamp_min(torch.finfo(loss.dtype).tiny)
