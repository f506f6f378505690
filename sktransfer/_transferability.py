"""Transferability: rank pretrained backbones for a task without training a head.

LogME (You, Liu, Wang and Long, "LogME: Practical Assessment of Pre-trained
Models for Transfer Learning", ICML 2021) scores features ``F`` (n x d) for a
target ``y`` by the maximised log evidence of the Bayesian linear model
``y = F w + eps`` with ``w ~ N(0, I / alpha)`` and ``eps ~ N(0, 1 / beta)``::

    L(alpha, beta) = n/2 log beta + d/2 log alpha - n/2 log 2 pi
                     - beta/2 ||F m - y||^2 - alpha/2 m'm - 1/2 log det A,
    A = alpha I + beta F'F,  m = beta A^-1 F'y.

``alpha`` and ``beta`` are found by MacKay's fixed point
``gamma = sum_i beta s_i / (alpha + beta s_i)``, ``alpha = gamma / m'm``,
``beta = (n - gamma) / ||F m - y||^2`` over the eigenvalues ``s_i`` of
``F'F``. One economy SVD ``F = U diag(sigma) V'`` serves every target
column and iteration: with ``z = U'y``, ``s = sigma^2`` and
``lam = alpha / beta``,

    m'm = sum s z^2 / (lam + s)^2,
    ||F m - y||^2 = sum (lam z / (lam + s))^2 + ||y - U z||^2,
    log det A - d log alpha = sum log1p(s / lam),

so each iteration costs O(min(n, d)) per column. LogME is ``L / n`` at the
maximum, averaged over the target columns (the one-hot columns of a
classification target).
"""

from __future__ import annotations

import difflib
import time
import warnings
from numbers import Integral

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_consistent_length, column_or_1d
from sklearn.utils.multiclass import type_of_target

_TASKS = ("auto", "classification", "regression")
_EPS = float(np.finfo(np.float64).eps)
# The fixed point stops when the evidence per sample changes by less than
# _TOL (relative to max(1, |evidence per sample|)) in one iteration. Its
# convergence is linear: with a rate below 0.999 the gain left is below 1e-9,
# far below the LogME differences between backbones (1e-3 and more).
_TOL = 1e-12
# The slowest cases (n < d, where the evidence is flat towards beta -> inf)
# were measured to need about 5,000 iterations, a few ms per 1,000 columns.
_MAX_ITER = 20_000


# -- inputs -----------------------------------------------------------------
def _check_task(task, caller):
    if not isinstance(task, str) or task not in _TASKS:
        raise ValueError(
            f"{caller}: task must be one of {', '.join(map(repr, _TASKS))}; "
            f"got {task!r}."
        )


def _targets(y, task, caller):
    """The target matrix (n, K) in float64: one-hot classes or numeric columns."""
    _check_task(task, caller)
    if task == "auto":
        try:
            y = check_array(
                y, ensure_2d=False, dtype=None, input_name="y", ensure_min_samples=2
            )
            kind = type_of_target(y, input_name="y")
        except ValueError as exc:
            raise ValueError(f"{caller}: invalid y ({exc})") from exc
        if kind in ("binary", "multiclass"):
            task = "classification"
        elif kind in ("continuous", "continuous-multioutput", "multilabel-indicator"):
            task = "regression"
        else:
            raise ValueError(
                f"{caller}: cannot tell the task from y (sklearn's "
                f"type_of_target says {kind!r}); pass task='classification' "
                f"for 1-D class labels or task='regression' for numeric "
                f"target columns."
            )
    if task == "classification":
        return _one_hot(y, caller)
    return _numeric_targets(y, caller)


def _one_hot(y, caller):
    try:
        y = check_array(
            y, ensure_2d=False, dtype=None, input_name="y", ensure_min_samples=2
        )
        y = column_or_1d(y, warn=True)
    except ValueError as exc:
        raise ValueError(
            f"{caller}: for task='classification' y must be 1-D class labels "
            f"(for several numeric targets pass task='regression'); {exc}"
        ) from exc
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise TypeError(
            f"{caller}: the class labels in y cannot be sorted (mixed types?); "
            f"use labels of one type, e.g. all strings. ({exc})"
        ) from exc
    if len(classes) < 2:
        label = classes[0].item() if isinstance(classes[0], np.generic) else classes[0]
        raise ValueError(
            f"{caller}: y has a single class ({label!r}); LogME measures "
            f"how well the features separate classes, so y needs at least 2 "
            f"classes (pass task='regression' for a numeric target)."
        )
    return np.eye(len(classes))[codes.ravel()]


def _numeric_targets(y, caller):
    try:
        y = check_array(
            y, ensure_2d=False, dtype=np.float64, input_name="y", ensure_min_samples=2
        )
    except ValueError as exc:
        raise ValueError(
            f"{caller}: for task='regression' y must be finite numbers, 1-D or "
            f"2-D (n_samples, n_targets); {exc}"
        ) from exc
    y = y.reshape(len(y), -1)
    if y.shape[1] == 0:
        raise ValueError(f"{caller}: y has no target columns (shape {y.shape}).")
    zero = np.flatnonzero(~y.any(axis=0))
    if zero.size:
        where = "y is" if y.shape[1] == 1 else f"columns {zero.tolist()} of y are"
        raise ValueError(
            f"{caller}: {where} all zeros; the evidence of a zero target is "
            f"unbounded (its noise variance can shrink to 0). Remove such "
            f"columns."
        )
    return y


def _features(features, caller):
    try:
        return check_array(
            features, dtype=np.float64, ensure_min_samples=2, input_name="features"
        )
    except (ValueError, TypeError) as exc:
        raise type(exc)(
            f"{caller}: features must be a finite, dense 2-D numeric array "
            f"(n_samples >= 2, n_features >= 1); {exc}"
        ) from exc


def _check_lengths(features, targets, caller):
    try:
        check_consistent_length(features, targets)
    except ValueError as exc:
        raise ValueError(
            f"{caller}: features and y must have one row per sample; {exc}"
        ) from exc


# -- the evidence -----------------------------------------------------------
def _evidence(features, targets, *, tol=_TOL, max_iter=_MAX_ITER):
    """Maximise the log evidence of each target column over alpha and beta.

    Parameters
    ----------
    features : ndarray of shape (n, d), float64
    targets : ndarray of shape (n, K), float64, no all-zero column

    Returns
    -------
    evidence : ndarray of shape (K,)
        Log evidence per sample, ``L / n``, at the returned ``alpha, beta``.
    alpha, beta : ndarray of shape (K,)
        Prior precision of the weights and precision of the noise. ``alpha``
        is inf when the features are all zero (the weights then do not
        matter).
    n_iter : ndarray of shape (K,)
        Fixed-point iterations taken.
    """
    n, d = features.shape
    u, sigma, _ = np.linalg.svd(features, full_matrices=False)
    # Singular values below numpy's matrix_rank tolerance are rounding noise.
    cutoff = sigma[0] * max(n, d) * _EPS
    s = np.where(sigma > cutoff, sigma * sigma, 0.0)[:, None]  # (r, 1)
    r = s.shape[0]
    z = u.T @ targets  # (r, K)
    z2 = z * z
    if n > r:  # part of y outside the column space of F
        outside = np.sum((targets - u @ z) ** 2, axis=0)
    else:
        outside = np.zeros(targets.shape[1])
    y2 = np.sum(targets * targets, axis=0)
    n_cols = targets.shape[1]
    if s[0, 0] == 0.0:  # all-zero features: y ~ N(0, I / beta)
        beta = n / y2
        evidence = 0.5 * (np.log(beta) - np.log(2 * np.pi) - 1.0)
        return evidence, np.full(n_cols, np.inf), beta, np.zeros(n_cols, int)
    # Upper bounds: beyond lam_max the features contribute less than a
    # rounding error to A; beyond beta_max the noise variance is below one.
    lam_max = s[0, 0] / _EPS
    beta_max = n / (_EPS * y2)

    alpha = np.ones(n_cols)  # the paper's starting point
    beta = np.ones(n_cols)
    evidence = np.full(n_cols, -np.inf)
    n_iter = np.zeros(n_cols, int)
    todo = np.arange(n_cols)
    for _ in range(max_iter):
        a, b = alpha[todo], beta[todo]
        lam = a / b
        t = lam + s  # (r, k): (alpha + beta s) / beta
        mm = np.sum(s * z2[:, todo] / (t * t), axis=0)
        shrink = lam / t  # alpha / (alpha + beta s)
        res = np.sum(shrink * shrink * z2[:, todo], axis=0) + outside[todo]
        current = (
            0.5 * n * np.log(b)
            - 0.5 * np.sum(np.log1p(s / lam), axis=0)
            - 0.5 * n * np.log(2 * np.pi)
            - 0.5 * (b * res + a * mm)
        ) / n
        change = np.abs(current - evidence[todo])
        evidence[todo] = current
        n_iter[todo] += 1
        done = change <= tol * np.maximum(1.0, np.abs(current))
        # Update the columns not yet converged.
        gamma = np.sum(s / t, axis=0)
        rest = (n - r) + np.sum(shrink, axis=0)  # n - gamma, without cancellation
        with np.errstate(divide="ignore"):
            new_beta = np.minimum(rest / res, beta_max[todo])
            new_alpha = np.minimum(gamma / mm, lam_max * new_beta)
        keep = ~done
        alpha[todo[keep]] = new_alpha[keep]
        beta[todo[keep]] = new_beta[keep]
        todo = todo[keep]
        if todo.size == 0:
            break
    else:
        warnings.warn(
            f"LogME: the evidence of {todo.size} of {n_cols} target columns "
            f"still changed by up to {change.max():.3g} per sample after "
            f"{max_iter} fixed-point iterations; the score is a lower bound.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return evidence, alpha, beta, n_iter


# -- public -----------------------------------------------------------------
def logme_score(features, y, *, task="auto"):
    """LogME: how well features suit a target, without training a head.

    The maximised log evidence per sample of a Bayesian linear model of ``y``
    on ``features`` (You et al., ICML 2021), averaged over the target columns.
    Higher is better; values compare backbones (or layers) on the same
    samples and targets, not across datasets.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Finite numbers (computed in float64), e.g. the output of
        :meth:`PretrainedFeatureExtractor.transform
        <sktransfer.PretrainedFeatureExtractor.transform>`. Any number of
        features, fewer or more than samples.
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Class labels (any type) or numeric targets.
    task : {"auto", "classification", "regression"}, default="auto"
        ``"classification"``: ``y`` holds 1-D labels of at least 2 classes,
        each class is a one-hot target column. ``"regression"``: each column
        of ``y`` is a target (none may be all zeros). ``"auto"`` follows
        :func:`sklearn.utils.multiclass.type_of_target`: classification for
        ``"binary"`` and ``"multiclass"`` (so integer-valued floats count as
        labels; pass ``task="regression"`` for counts), regression for
        continuous ``y`` and for 0/1 indicator matrices (each column a
        target).

    Returns
    -------
    score : float
        Log evidence per sample, averaged over target columns.

    See Also
    --------
    logme_scorer : The same score as a scikit-learn scorer for an extractor.
    rank_backbones : Extract features with several backbones and rank them.

    Notes
    -----
    One SVD of the features serves all target columns and all fixed-point
    iterations. Where the evidence grows without bound in a direction (no
    noise left when ``n_samples <= n_features``, or useless features), the
    iteration stops at precisions where the remaining change is a float64
    rounding error. LogME is invariant to permuting samples or features, to
    rotating or rescaling the features and to renaming classes; scaling a
    regression target by ``c`` shifts the score by ``-log(c)``.

    References
    ----------
    K. You, Y. Liu, J. Wang, M. Long. LogME: Practical Assessment of
    Pre-trained Models for Transfer Learning. ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import logme_score
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, 60)
    >>> informative = np.eye(3)[y] + 0.3 * rng.normal(size=(60, 3))
    >>> noise = rng.normal(size=(60, 3))
    >>> bool(logme_score(informative, y) > logme_score(noise, y))
    True
    """
    caller = "logme_score"
    targets = _targets(y, task, caller)
    features = _features(features, caller)
    _check_lengths(features, targets, caller)
    return float(np.mean(_evidence(features, targets)[0]))


def logme_scorer(estimator, X, y):
    """Scorer: LogME of the features ``estimator.transform(X)`` for ``y``.

    Use as ``scoring=logme_scorer`` in :class:`~sklearn.model_selection.GridSearchCV`,
    :func:`~sklearn.model_selection.cross_val_score` and the like, to choose
    a backbone, layer or preprocessing of a
    :class:`~sktransfer.PretrainedFeatureExtractor` (or of a
    :class:`~sklearn.pipeline.Pipeline` ending in one) without training a
    head. The task is detected from ``y`` as ``logme_score(..., task="auto")``
    does.

    Parameters
    ----------
    estimator : fitted transformer
        Anything with ``transform(X)`` returning features.
    X : images or array-like
        Input of ``estimator.transform``.
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Labels or targets of ``X``.

    Returns
    -------
    score : float
        :func:`logme_score` of ``estimator.transform(X)`` and ``y``: higher
        means the features should transfer better.

    Notes
    -----
    With cross-validation the score is computed on the features of the
    held-out fold only. The extractor is not trained on the training fold
    (``fit`` only loads the backbone), so this is the LogME of a subset;
    each fold needs at least 2 classes (use stratified folds). A fold of
    few samples gives a noisier score than all samples at once, which
    :func:`rank_backbones` computes.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import PretrainedFeatureExtractor, logme_scorer
    >>> from sktransfer.testing import TinyConvNet, make_shapes_dataset
    >>> from sklearn.model_selection import GridSearchCV
    >>> images, labels = make_shapes_dataset(n_per_class=6, size=16)
    >>> extractor = PretrainedFeatureExtractor(
    ...     TinyConvNet(), preprocessing={"resize_size": 16, "crop_size": 16},
    ...     device="cpu")
    >>> search = GridSearchCV(extractor, {"layer": ["block1", None]}, cv=2,
    ...                       scoring=logme_scorer).fit(images, labels)
    >>> search.best_params_["layer"] in ("block1", None)
    True
    """
    if not hasattr(estimator, "transform"):
        raise TypeError(
            f"logme_scorer: the estimator must be a fitted transformer whose "
            f"transform(X) returns features (e.g. PretrainedFeatureExtractor, "
            f"or a Pipeline ending in one); {type(estimator).__name__} has no "
            f"transform method."
        )
    return logme_score(estimator.transform(X), y)


def _extractor_parameters():
    from sktransfer import PretrainedFeatureExtractor

    return sorted(PretrainedFeatureExtractor().get_params(deep=False))


def _candidate_params(candidates, allowed, caller):
    """Each candidate as a dict of extractor parameters, checked up front."""
    if isinstance(candidates, (dict, str)) or not hasattr(candidates, "__len__"):
        raise TypeError(
            f"{caller}: candidates must be a list of dicts of "
            f"PretrainedFeatureExtractor parameters or of (backbone, layer) "
            f"tuples; got {type(candidates).__name__}."
        )
    if len(candidates) == 0:
        raise ValueError(
            f"{caller}: candidates is empty; pass a list such as "
            f"[{{'backbone': 'efficientnet_lite0', 'layer': 'blocks.5'}}, "
            f"('efficientnet_lite0', None)]."
        )
    params = []
    for i, candidate in enumerate(candidates):
        if isinstance(candidate, tuple):
            if len(candidate) != 2:
                raise ValueError(
                    f"{caller}: candidates[{i}] is a tuple of length "
                    f"{len(candidate)}; a tuple must be (backbone, layer)."
                )
            candidate = {"backbone": candidate[0], "layer": candidate[1]}
        elif not isinstance(candidate, dict):
            raise TypeError(
                f"{caller}: candidates[{i}] must be a dict of "
                f"PretrainedFeatureExtractor parameters or a (backbone, layer) "
                f"tuple; got {type(candidate).__name__}."
            )
        unknown = [key for key in candidate if key not in allowed]
        if unknown:
            hints = [
                f"{key!r} -> {match[0]!r}"
                for key in unknown
                if (match := difflib.get_close_matches(str(key), allowed, n=1))
            ]
            hint = f" Did you mean {', '.join(hints)}?" if hints else ""
            raise ValueError(
                f"{caller}: candidates[{i}] has unknown key(s) "
                f"{', '.join(map(repr, unknown))}; the allowed keys are the "
                f"parameters of PretrainedFeatureExtractor: "
                f"{', '.join(allowed)}.{hint}"
            )
        params.append(dict(candidate))
    return params


def rank_backbones(
    X,
    y,
    candidates,
    *,
    cache="memory",
    task="auto",
    preprocessing=None,
    batch_size=16,
    device="auto",
    verbose=0,
):
    """Rank backbones (and layers) for a task by the LogME of their features.

    For each candidate, a :class:`~sktransfer.PretrainedFeatureExtractor` is
    fitted and transforms ``X``; :func:`logme_score` scores the features. No
    head is trained, so ranking many backbones costs about one feature
    extraction each.

    Parameters
    ----------
    X : images
        Any input :class:`~sktransfer.PretrainedFeatureExtractor` accepts.
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Labels or targets of ``X``.
    candidates : list of dict or of (backbone, layer) tuples
        Each dict holds parameters of ``PretrainedFeatureExtractor`` (e.g.
        ``{"backbone": "efficientnet_lite0", "layer": "blocks.5"}``); its
        values override the shared settings below. A tuple
        ``(backbone, layer)`` is short for ``{"backbone": ..., "layer": ...}``.
    cache : None, "memory", str, path or FeatureCache, default="memory"
        The extractors' ``cache``: features of images and candidates seen
        before (this call or an earlier one) are not computed again.
    task : {"auto", "classification", "regression"}, default="auto"
        As in :func:`logme_score`.
    preprocessing, batch_size, device
        Passed to every extractor (a candidate may override them).
    verbose : int, default=0
        1: print one line per candidate; 2 and more: also the extractors'
        progress bars.

    Returns
    -------
    results : dict of lists
        One entry per candidate, best first (``pandas.DataFrame(results)``
        makes a table of it):

        - ``"backbone"``: the backbone name (the class name for a module);
        - ``"layer"``: the layer(s) the features come from (None: pooled
          pre-classifier features);
        - ``"params"``: the candidate's parameters as given (as a dict);
        - ``"logme"``: the LogME score (higher is better);
        - ``"rank"``: 1 for the best; equal scores share the lowest rank;
        - ``"n_features"``: the length of the feature vectors;
        - ``"extract_time"``, ``"score_time"``: seconds to fit the extractor
          and transform ``X``, and to compute LogME.

    See Also
    --------
    logme_score : The score of one feature matrix.
    logme_scorer : LogME as a scorer, e.g. for GridSearchCV.

    Examples
    --------
    >>> from sktransfer import FeatureCache, rank_backbones
    >>> from sktransfer.testing import TinyConvNet, make_shapes_dataset
    >>> images, labels = make_shapes_dataset(n_per_class=4, size=16)
    >>> net = TinyConvNet()
    >>> results = rank_backbones(
    ...     images, labels, [(net, "block1"), (net, None)], cache=FeatureCache(),
    ...     preprocessing={"resize_size": 16, "crop_size": 16}, device="cpu")
    >>> results["rank"], results["n_features"]
    ([1, 2], [8, 8])
    >>> results["logme"][0] >= results["logme"][1]
    True
    """
    from scipy.stats import rankdata

    from sktransfer import PretrainedFeatureExtractor

    caller = "rank_backbones"
    if not isinstance(verbose, Integral) or isinstance(verbose, bool) or verbose < 0:
        raise ValueError(f"{caller}: verbose must be an int >= 0; got {verbose!r}.")
    targets = _targets(y, task, caller)
    allowed = _extractor_parameters()
    params = _candidate_params(candidates, allowed, caller)
    shared = {
        "cache": cache,
        "preprocessing": preprocessing,
        "batch_size": batch_size,
        "device": device,
        "verbose": max(verbose - 1, 0),
    }
    rows = []
    for i, candidate in enumerate(params):
        extractor = PretrainedFeatureExtractor(**{**shared, **candidate})
        start = time.perf_counter()
        features = extractor.fit(X).transform(X)
        extract_time = time.perf_counter() - start
        features = _features(features, caller)
        _check_lengths(features, targets, caller)
        start = time.perf_counter()
        score = float(np.mean(_evidence(features, targets)[0]))
        score_time = time.perf_counter() - start
        backbone = extractor.backbone
        rows.append(
            {
                "backbone": backbone
                if isinstance(backbone, str)
                else type(backbone).__name__,
                "layer": extractor.layer,
                "params": candidate,
                "logme": score,
                "n_features": int(features.shape[1]),
                "extract_time": extract_time,
                "score_time": score_time,
            }
        )
        if verbose > 0:
            print(
                f"[{caller}] {i + 1}/{len(params)} backbone={rows[-1]['backbone']!r} "
                f"layer={extractor.layer!r}: LogME {score:.4f}, "
                f"{features.shape[1]} features, extraction {extract_time:.2f} s, "
                f"LogME {score_time:.3f} s",
                flush=True,
            )
        del extractor, features
    scores = np.array([row["logme"] for row in rows])
    order = np.argsort(-scores, kind="stable")
    ranks = rankdata(-scores, method="min").astype(int)
    keys = (
        "backbone",
        "layer",
        "params",
        "logme",
        "rank",
        "n_features",
        "extract_time",
        "score_time",
    )
    results = {key: [] for key in keys}
    for j in order:
        for key in keys:
            results[key].append(int(ranks[j]) if key == "rank" else rows[j][key])
    return results
