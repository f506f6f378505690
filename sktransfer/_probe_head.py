"""The first stage of LP-FT: the new head starts at the linear probe's solution.

LP-FT (Kumar et al., ICLR 2022) fits the head on the frozen pretrained
features to convergence before anything else trains, so that fine-tuning
starts from the linear probe and the first gradients do not distort the
features with a random head. The probe is scikit-learn's:
``StandardScaler`` then ``LogisticRegression`` (classification) or
``RidgeCV`` (regression, on the scaled targets the net trains on). The
scaler is folded into the linear layer, so the head sees the raw features.
"""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_limits

# Ridge penalties tried by the regressor's probe (leave-one-out, one SVD).
RIDGE_ALPHAS = np.logspace(-3, 3, 13)


def probe_classifier(features, y, n_classes, class_weight=None, sample_weight=None):
    """``(weight, bias)`` of shapes ``(n_classes, d)`` and ``(n_classes,)``
    whose logits are those of StandardScaler + LogisticRegression fitted on
    ``features``; ``y`` holds encoded labels 0..n_classes-1.

    ``class_weight`` is None or a per-class array (the loss's weights);
    ``sample_weight`` None or one weight per row (scaler and probe). With
    two classes scikit-learn's single logit ``z`` becomes ``(-z/2, z/2)``,
    which gives the same softmax.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    weights = None if class_weight is None else dict(enumerate(class_weight))
    # torch may have left its threads busy: sklearn's BLAS gets one thread
    # rather than oversubscribing the cores.
    with threadpool_limits(1):
        scaler = StandardScaler().fit(features, sample_weight=sample_weight)
        model = LogisticRegression(max_iter=1000, class_weight=weights)
        model.fit(scaler.transform(features), y, sample_weight=sample_weight)
    weight, bias = _fold(scaler, model.coef_, model.intercept_)
    if n_classes == 2:
        weight = np.vstack([-weight / 2, weight / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2])
    return _tensors(weight, bias)


def probe_regressor(features, y, sample_weight=None):
    """``(weight, bias)`` of StandardScaler + RidgeCV on ``features`` for the
    2-D targets ``y`` (n, k): shapes ``(k, d)`` and ``(k,)``; ``sample_weight``
    None or one weight per row (scaler and ridge)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    with threadpool_limits(1):
        scaler = StandardScaler().fit(features, sample_weight=sample_weight)
        model = RidgeCV(alphas=RIDGE_ALPHAS).fit(
            scaler.transform(features), y, sample_weight=sample_weight
        )
    coef = np.atleast_2d(model.coef_)
    return _tensors(*_fold(scaler, coef, np.atleast_1d(model.intercept_)))


def set_head(head, weight, bias):
    """Copy ``weight`` and ``bias`` into the ``nn.Linear`` ``head``."""
    with torch.no_grad():
        head.weight.copy_(weight.to(head.weight))
        head.bias.copy_(bias.to(head.bias))


def _fold(scaler, coef, intercept):
    """``coef @ (x - mean) / scale + intercept`` as ``weight @ x + bias``."""
    weight = coef / scaler.scale_
    bias = intercept - weight @ scaler.mean_
    return weight, bias


def _tensors(weight, bias):
    return (
        torch.as_tensor(np.asarray(weight), dtype=torch.float32),
        torch.as_tensor(np.asarray(bias), dtype=torch.float32),
    )
