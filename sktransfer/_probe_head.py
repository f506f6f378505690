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


def probe_multilabel(features, y, sample_weight=None):
    """``(weight, bias)`` of shapes ``(n_labels, d)`` and ``(n_labels,)``:
    one StandardScaler + LogisticRegression per label column of the
    indicator matrix ``y`` (each column holds both 0 and 1), whose logits
    are the sigmoid outputs' logits; ``sample_weight`` None or one weight
    per row (scaler and every probe)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    with threadpool_limits(1):
        scaler = StandardScaler().fit(features, sample_weight=sample_weight)
        scaled = scaler.transform(features)
        models = [
            LogisticRegression(max_iter=1000).fit(
                scaled, y[:, k], sample_weight=sample_weight
            )
            for k in range(y.shape[1])
        ]
    coef = np.vstack([m.coef_ for m in models])
    intercept = np.concatenate([m.intercept_ for m in models])
    return _tensors(*_fold(scaler, coef, intercept))


def probe_regressor(features, y, sample_weight=None):
    """``(weight, bias)`` of StandardScaler + RidgeCV on ``features`` for the
    2-D targets ``y`` (n, k): shapes ``(k, d)`` and ``(k,)``; ``sample_weight``
    None or one weight per row (scaler and ridge)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    # float64: in float32, the penalty choice and the coefficients of the
    # weighted and the repeated problems differed by 1e-2 (measured).
    features = np.asarray(features, dtype=np.float64)
    with threadpool_limits(1):
        scaler = StandardScaler().fit(features, sample_weight=sample_weight)
        Z = scaler.transform(features)
        if sample_weight is None:
            model = RidgeCV(alphas=RIDGE_ALPHAS).fit(Z, y)
            coef, intercept = model.coef_, model.intercept_
        else:
            coef, intercept = weighted_ridge_loo(Z, y, sample_weight, RIDGE_ALPHAS)
    coef = np.atleast_2d(coef)
    return _tensors(*_fold(scaler, coef, np.atleast_1d(intercept)))


def weighted_ridge_loo(Z, y, w, alphas):
    """``(coef, intercept)`` of the ridge regression of ``y`` (n, k) on ``Z``
    with sample weights ``w``, its penalty picked from ``alphas`` by
    leave-one-out error counted as repetitions count it.

    RidgeCV's weighted leave-one-out leaves a whole weighted sample out, so a
    weight of 3 does not select the penalty that three copies select. Here a
    sample of weight ``w_i`` counts as ``w_i`` copies, one left out at a time:
    its leverage is that of one copy, ``1/sum(w) + z_i' (Zc' W Zc + a I)^-1
    z_i`` (``Zc`` centred by the weighted mean; the intercept is not
    penalised), and its error ``w_i * (r_i / (1 - h_i))**2``. Unit weights give
    RidgeCV's (exact) leave-one-out; zero weights are removed samples.
    """
    w = np.asarray(w, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    total = w.sum()
    z_mean = w @ Z / total
    y_mean = w @ y / total
    Zc, yc = Z - z_mean, y - y_mean
    root = np.sqrt(w)[:, None]
    U, S, Vt = np.linalg.svd(root * Zc, full_matrices=False)
    Uty = U.T @ (root * yc)
    proj = Zc @ Vt.T  # each sample's coordinates on the singular vectors
    best = None
    for alpha in alphas:
        shrink = S / (S**2 + alpha)
        coef = Vt.T @ (shrink[:, None] * Uty)  # (d, k)
        leverage = 1.0 / total + (proj**2) @ (1.0 / (S**2 + alpha))
        resid = (yc - Zc @ coef) / (1.0 - leverage)[:, None]
        error = float(w @ (resid**2).sum(1))
        if best is None or error < best[0]:
            best = (error, coef)
    coef = best[1].T  # (k, d)
    intercept = y_mean - coef @ z_mean
    return coef, intercept


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
