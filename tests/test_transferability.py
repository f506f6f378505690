"""LogME (logme_score, logme_scorer, rank_backbones): the evidence against a
dense evaluation and a Gaussian marginal likelihood, its maximum, closed
forms, invariances, sklearn model selection, ranking with a shared cache,
and every error path."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import (
    FeatureCache,
    PretrainedFeatureExtractor,
    logme_score,
    logme_scorer,
    rank_backbones,
)
from sktransfer._testing import TinyConvNet, make_shapes_dataset
from sktransfer._transferability import _evidence

EPS = np.finfo(np.float64).eps
SMALL = {"resize_size": 16, "crop_size": 16}
# Two runs of the fixed point on inputs equal up to rounding (permuted,
# rotated, rescaled) follow iterates a few ulps apart and may stop one
# iteration apart; each stops when the evidence per sample changes by less
# than 1e-12 x max(1, |evidence|), and with a linear rate below 0.999 the gain
# left is below 1e-9 of that scale.
STOP = {"rtol": 1e-9, "atol": 1e-9}


# -- helpers ----------------------------------------------------------------
def dense_evidence(F, y, alpha, beta, tolerance=True):
    """The log evidence L(alpha, beta) from its definition, with A built.

    Returns L and an absolute tolerance for it: float64 rounding of the
    terms summed, plus slogdet's error of about d * eps * cond(A).
    """
    n, d = F.shape
    A = alpha * np.eye(d) + beta * F.T @ F
    m = beta * np.linalg.solve(A, F.T @ y)
    sign, logdet = np.linalg.slogdet(A)
    assert sign == 1
    terms = np.array(
        [
            n / 2 * np.log(beta),
            d / 2 * np.log(alpha),
            -n / 2 * np.log(2 * np.pi),
            -beta / 2 * np.sum((F @ m - y) ** 2),
            -alpha / 2 * (m @ m),
            -logdet / 2,
        ]
    )
    if not tolerance:
        return terms.sum(), None
    atol = 64 * EPS * (np.abs(terms).sum() + d * np.linalg.cond(A))
    return terms.sum(), atol


def linear_problem(n, d, noise=0.3, seed=0, decay=0.0):
    """Features with singular values decaying as j^-decay and a linear target."""
    rng = np.random.default_rng(seed)
    F = rng.normal(size=(n, d)) * (1.0 + np.arange(d)) ** -decay
    y = F @ rng.normal(size=d) + noise * rng.normal(size=n)
    return F, y


def one_column(F, y):
    evidence, alpha, beta, _ = _evidence(F, y.reshape(len(y), -1))
    return evidence[0], alpha[0], beta[0]


# Shapes with the maximum inside (alpha, beta < their bounds): n > d, n = d,
# and n < d with decaying singular values (so that noise is identifiable).
INTERIOR = {"n>d": (60, 8, 0.0), "n=d": (20, 20, 1.5), "n<d": (30, 60, 1.5)}


# -- the evidence -----------------------------------------------------------
@pytest.mark.parametrize("shape", INTERIOR, ids=list(INTERIOR))
def test_evidence_equals_its_dense_definition(shape):
    n, d, decay = INTERIOR[shape]
    F, y = linear_problem(n, d, decay=decay)
    evidence, alpha, beta = one_column(F, y)
    expected, atol = dense_evidence(F, y, alpha, beta)
    np.testing.assert_allclose(evidence * n, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("shape", INTERIOR, ids=list(INTERIOR))
def test_evidence_equals_the_gaussian_marginal_likelihood(shape):
    # Independent of the formula: y ~ N(0, F F' / alpha + I / beta).
    n, d, decay = INTERIOR[shape]
    F, y = linear_problem(n, d, decay=decay, seed=1)
    evidence, alpha, beta = one_column(F, y)
    cov = F @ F.T / alpha + np.eye(n) / beta
    expected = multivariate_normal.logpdf(y, mean=np.zeros(n), cov=cov)
    atol = 64 * EPS * n * (np.linalg.cond(cov) + abs(expected))
    np.testing.assert_allclose(evidence * n, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("shape", INTERIOR, ids=list(INTERIOR))
def test_fixed_point_is_the_maximum(shape):
    n, d, decay = INTERIOR[shape]
    F, y = linear_problem(n, d, decay=decay, seed=2)
    evidence, alpha, beta = one_column(F, y)
    best, atol = dense_evidence(F, y, alpha, beta)
    for da, db in [(1.03, 1), (0.97, 1), (1, 1.03), (1, 0.97), (1.03, 1.03)]:
        assert dense_evidence(F, y, alpha * da, beta * db, False)[0] < best - atol

    def negative(log_ab):
        return -dense_evidence(F, y, *np.exp(log_ab), False)[0] / n

    found = minimize(
        negative,
        x0=[0.0, 0.0],
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000},
    )
    assert found.success
    # The optimiser cannot beat the fixed point by more than its stopping gap.
    assert -found.fun <= evidence + STOP["atol"] * max(1, abs(evidence))
    np.testing.assert_allclose(evidence, -found.fun, **STOP)
    # Near a maximum the evidence is flat: a 1e-12 evidence gap allows
    # relative parameter differences of about its square root.
    np.testing.assert_allclose(np.exp(found.x), [alpha, beta], rtol=1e-4)


def test_one_feature_matches_the_closed_form():
    # d = 1: with s = f'f, z = f'y / |f| and p = |y|^2 - z^2, the maximum is at
    # lam = alpha / beta = s p / ((n - 1) z^2 - p) and beta = n / E(lam), with
    # E(lam) = lam z^2 / (lam + s) + p (set the derivative of the profile
    # evidence -n/2 log E(lam) + 1/2 log(lam / (lam + s)) to 0).
    rng = np.random.default_rng(3)
    n = 50
    f = rng.normal(size=n)
    y = 0.5 * f + rng.normal(size=n)
    s = f @ f
    z2 = (f @ y) ** 2 / s
    p = y @ y - z2
    lam = s * p / ((n - 1) * z2 - p)
    beta = n / (lam * z2 / (lam + s) + p)
    expected = -0.5 * np.log(2 * np.pi * np.e / beta) + 0.5 / n * np.log(
        lam / (lam + s)
    )
    evidence, alpha_found, beta_found = one_column(f[:, None], y)
    np.testing.assert_allclose(evidence, expected, **STOP)
    np.testing.assert_allclose([alpha_found, beta_found], [lam * beta, beta], rtol=1e-4)


def test_features_orthogonal_to_the_target_leave_pure_noise():
    # z = 0: the evidence is largest without weights (alpha -> inf), and
    # y ~ N(0, I / beta) with beta = n / |y|^2.
    rng = np.random.default_rng(4)
    n = 30
    y = rng.normal(size=n)
    F = rng.normal(size=(n, 5))
    F -= np.outer(y, y @ F) / (y @ y)  # project y out of every column
    expected = -0.5 * np.log(2 * np.pi * np.e * (y @ y) / n)
    np.testing.assert_allclose(logme_score(F, y, task="regression"), expected, **STOP)
    # All-zero features are the same model.
    np.testing.assert_allclose(
        logme_score(np.zeros((n, 3)), y, task="regression"), expected, **STOP
    )


def test_no_noise_left_when_samples_do_not_exceed_features():
    # Here (n < d) the evidence is largest as beta -> inf; the iteration
    # stops where it no longer changes, with a finite value.
    F, y = linear_problem(12, 30, noise=0.05, decay=1.5)
    with np.errstate(all="raise"):
        evidence, alpha, beta = one_column(F, y)
    assert np.isfinite(evidence) and np.isfinite(alpha)
    assert beta > 1e10 * alpha
    cov = F @ F.T / alpha  # the limit model, y ~ N(0, F F' / alpha)
    expected = multivariate_normal.logpdf(y, mean=np.zeros(12), cov=cov)
    atol = 64 * EPS * 12 * (np.linalg.cond(cov) + abs(expected))
    np.testing.assert_allclose(evidence * 12, expected, rtol=1e-9, atol=atol)


def test_iteration_limit_warns():
    F, y = linear_problem(40, 5)
    with pytest.warns(ConvergenceWarning, match="1 of 1 target columns.*after 2"):
        _evidence(F, y[:, None], max_iter=2)


# -- invariances ------------------------------------------------------------
@pytest.fixture(scope="module")
def blobs():
    """A separable 3-class problem: 90 samples, 6 informative features."""
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 3, 90)
    centres = 3 * rng.normal(size=(3, 6))
    return centres[labels] + rng.normal(size=(90, 6)), labels


def test_invariant_to_permuting_samples(blobs):
    F, labels = blobs
    order = np.random.default_rng(0).permutation(len(labels))
    np.testing.assert_allclose(
        logme_score(F[order], labels[order]), logme_score(F, labels), **STOP
    )


def test_invariant_to_permuting_rotating_and_scaling_features(blobs):
    F, labels = blobs
    expected = logme_score(F, labels)
    rng = np.random.default_rng(1)
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    for changed in (F[:, rng.permutation(6)], F @ rotation, 1000 * F, F / 1000):
        np.testing.assert_allclose(logme_score(changed, labels), expected, **STOP)


def test_all_zero_feature_columns_change_nothing(blobs):
    # A zero column adds log(alpha) to d/2 log alpha and to log det A alike;
    # 200 of them also turn n > d into n < d (eigenvalues beyond the rank).
    F, labels = blobs
    for n_zero in (1, 200):
        padded = np.hstack([F, np.zeros((len(F), n_zero))])
        np.testing.assert_allclose(
            logme_score(padded, labels), logme_score(F, labels), **STOP
        )


def test_invariant_to_renaming_classes(blobs):
    F, labels = blobs
    renamed = np.array(["zebra", "ant", "moth"])[labels]
    np.testing.assert_allclose(logme_score(F, renamed), logme_score(F, labels), **STOP)
    np.testing.assert_allclose(
        logme_score(F, list(renamed)), logme_score(F, labels), **STOP
    )


def test_scaling_a_regression_target_shifts_the_score_by_its_log():
    F, y = linear_problem(50, 6)
    expected = logme_score(F, y) - np.log(10.0)
    np.testing.assert_allclose(logme_score(F, 10 * y), expected, **STOP)


def test_classification_is_the_mean_over_one_hot_columns(blobs):
    F, labels = blobs
    one_hot = np.eye(3)[labels]
    expected = np.mean(
        [logme_score(F, one_hot[:, k], task="regression") for k in range(3)]
    )
    np.testing.assert_allclose(logme_score(F, labels), expected, **STOP)
    np.testing.assert_allclose(
        logme_score(F, one_hot, task="regression"), expected, **STOP
    )
    # task="auto" reads the indicator matrix as 3 target columns, too.
    np.testing.assert_allclose(logme_score(F, one_hot), expected, **STOP)
    np.testing.assert_allclose(
        logme_score(F, labels, task="classification"), expected, **STOP
    )


def test_auto_reads_continuous_targets_as_regression():
    F, y = linear_problem(50, 6)
    Y = np.column_stack([y, F[:, 0] + 0.5])
    assert logme_score(F, y) == logme_score(F, y, task="regression")
    assert logme_score(F, Y) == logme_score(F, Y, task="regression")
    np.testing.assert_allclose(
        logme_score(F, Y),
        np.mean([logme_score(F, Y[:, 0]), logme_score(F, Y[:, 1])]),
        **STOP,
    )
    # Integer-valued floats are labels for "auto", numbers when asked.
    counts = np.round(np.abs(y) * 2)
    assert logme_score(F, counts) == logme_score(F, counts, task="classification")
    assert logme_score(F, counts) != logme_score(F, counts, task="regression")


@pytest.mark.parametrize("n, d", [(90, 6), (30, 80)], ids=["n>d", "n<d"])
def test_informative_features_score_higher_than_noise(n, d):
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, n)
    informative = 3 * rng.normal(size=(3, d))[labels] + rng.normal(size=(n, d))
    noise = rng.normal(size=(n, d))
    assert logme_score(informative, labels) > logme_score(noise, labels) + 0.1


# -- model selection with a tiny extractor ----------------------------------
@pytest.fixture(scope="module")
def shapes():
    return make_shapes_dataset(n_per_class=10, size=16)


@pytest.fixture(scope="module")
def net():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return TinyConvNet()


def test_scorer_in_grid_search_scores_the_held_out_fold(shapes, net):
    images, labels = shapes
    extractor = PretrainedFeatureExtractor(net, preprocessing=SMALL, device="cpu")
    cv = StratifiedKFold(n_splits=2, shuffle=True, random_state=0)
    layers = ["block1", "block2", None]
    search = GridSearchCV(
        extractor, {"layer": layers}, cv=cv, scoring=logme_scorer, error_score="raise"
    )
    search.fit(images, labels)
    for i, layer in enumerate(layers):
        for split, (train, test) in enumerate(cv.split(images, labels)):
            fitted = PretrainedFeatureExtractor(
                net, preprocessing=SMALL, device="cpu", layer=layer
            ).fit(images[train])
            expected = logme_score(fitted.transform(images[test]), labels[test])
            np.testing.assert_allclose(
                search.cv_results_[f"split{split}_test_score"][i], expected, **STOP
            )
    means = search.cv_results_["mean_test_score"]
    assert search.best_params_ == {"layer": layers[int(np.argmax(means))]}


def test_scorer_takes_a_pipeline_ending_in_an_extractor(shapes, net):
    images, labels = shapes
    extractor = PretrainedFeatureExtractor(net, preprocessing=SMALL, device="cpu")
    pipeline = Pipeline([("features", extractor)]).fit(images)
    expected = logme_score(extractor.transform(images), labels)
    assert logme_scorer(pipeline, images, labels) == expected
    assert logme_scorer(extractor, images, labels) == expected


def test_scorer_rejects_an_estimator_without_transform(blobs):
    F, labels = blobs
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(F, labels)
    with pytest.raises(TypeError, match=r"logme_scorer: .*Pipeline has no transform"):
        logme_scorer(model, F, labels)


def test_rank_backbones_sorts_candidates_and_reuses_the_cache(shapes, net):
    images, labels = shapes
    cache = FeatureCache()
    candidates = [(net, "block1"), {"backbone": net, "layer": "block2"}, (net, None)]
    kwargs = {"cache": cache, "preprocessing": SMALL, "device": "cpu"}
    results = rank_backbones(images, labels, candidates, **kwargs)
    keys = [
        "backbone",
        "layer",
        "params",
        "logme",
        "rank",
        "n_features",
        "extract_time",
        "score_time",
    ]
    assert list(results) == keys
    assert all(len(results[key]) == 3 for key in keys)
    assert results["logme"] == sorted(results["logme"], reverse=True)
    assert results["rank"] == [
        1 + sum(other > score for other in results["logme"])
        for score in results["logme"]
    ]
    assert sorted(map(str, results["layer"])) == ["None", "block1", "block2"]
    # None is the average-pooled output of block2 (pooled by the network
    # itself, possibly in another float32 summation order): the same score
    # up to float32 rounding of the features, which changes LogME by a few
    # 1e-7 relative (times the conditioning of these 8 features).
    scores = dict(zip(map(str, results["layer"]), results["logme"]))
    np.testing.assert_allclose(scores["None"], scores["block2"], rtol=1e-4, atol=1e-4)
    assert results["backbone"] == ["TinyConvNet"] * 3
    assert results["n_features"] == [8, 8, 8]
    assert all(t >= 0 for t in results["extract_time"] + results["score_time"])
    for layer, params, score in zip(
        results["layer"], results["params"], results["logme"]
    ):
        assert params == {"backbone": net, "layer": layer}
        features = PretrainedFeatureExtractor(
            net, layer=layer, preprocessing=SMALL, device="cpu"
        ).fit_transform(images)
        np.testing.assert_allclose(score, logme_score(features, labels), **STOP)

    # Again, with a repeated candidate: every vector is found in the cache.
    misses, hits = cache.misses, cache.hits
    again = rank_backbones(images, labels, candidates + [(net, None)], **kwargs)
    assert cache.misses == misses
    assert cache.hits - hits >= 4 * len(images)
    pooled = results["logme"][results["layer"].index(None)]
    # Cached features are the same float32 values: the same scores exactly.
    assert sorted(again["logme"]) == sorted(results["logme"] + [pooled])
    twice = [
        rank for layer, rank in zip(again["layer"], again["rank"]) if layer is None
    ]
    assert len(twice) == 2 and twice[0] == twice[1]  # equal scores share a rank


def test_rank_backbones_results_make_a_data_frame(shapes, net):
    pd = pytest.importorskip("pandas")
    images, labels = shapes
    results = rank_backbones(
        images[:8],
        labels[:8],
        [(net, "block1"), (net, None)],
        cache=None,
        preprocessing=SMALL,
        device="cpu",
    )
    frame = pd.DataFrame(results)
    assert frame.shape == (2, 8)
    assert frame["rank"].tolist() == [1, 2]


def test_rank_backbones_ties_share_a_rank_and_candidates_override(shapes, net, capsys):
    images, labels = shapes
    # batch_size is not in the cache key: the second candidate finds the
    # first one's vectors, so the two scores are exactly equal.
    candidates = [
        (net, "block1"),
        {"backbone": net, "layer": "block1", "batch_size": 3},
    ]
    cache = FeatureCache()
    results = rank_backbones(
        images,
        labels,
        candidates,
        cache=cache,
        preprocessing=SMALL,
        device="cpu",
        verbose=1,
    )
    assert cache.hits >= len(images)
    assert results["rank"] == [1, 1]
    assert results["logme"][0] == results["logme"][1]
    assert results["params"][1]["batch_size"] == 3
    printed = capsys.readouterr().out
    assert (
        "[rank_backbones] 1/2 backbone='TinyConvNet' layer='block1': LogME" in printed
    )


# -- errors -----------------------------------------------------------------
GOOD_F = np.random.default_rng(0).normal(size=(6, 3))
GOOD_Y = np.array([0, 1, 0, 1, 0, 1])
NAN_F = GOOD_F.copy()
NAN_F[2, 1] = np.nan
INF_F = GOOD_F.copy()
INF_F[0, 0] = np.inf


@pytest.mark.parametrize(
    "features, y, kwargs, error, match",
    [
        (
            NAN_F,
            GOOD_Y,
            {},
            ValueError,
            r"logme_score: features must be a finite, dense 2-D .*contains NaN",
        ),
        (INF_F, GOOD_Y, {}, ValueError, r"logme_score: features .*infinity"),
        (
            GOOD_F[:1],
            GOOD_Y[:1].astype(float) + 1,
            {"task": "regression"},
            ValueError,
            r"logme_score: .*1 sample\(s\).*minimum of 2",
        ),
        (GOOD_F[:, 0], GOOD_Y, {}, ValueError, r"logme_score: features .*Expected 2D"),
        (GOOD_F[:, :, None], GOOD_Y, {}, ValueError, r"logme_score: features .*dim 3"),
        (GOOD_F[:, :0], GOOD_Y, {}, ValueError, r"logme_score: features .*0 feature"),
        (
            GOOD_F,
            GOOD_Y[:5],
            {},
            ValueError,
            r"logme_score: features and y must have one row per sample.*\[6, 5\]",
        ),
        (
            GOOD_F,
            np.zeros(6, int),
            {},
            ValueError,
            r"logme_score: y has a single class \(0\); LogME measures how well",
        ),
        (
            GOOD_F,
            np.array(["cat"] * 6),
            {"task": "classification"},
            ValueError,
            r"logme_score: y has a single class \('cat'\)",
        ),
        (
            GOOD_F,
            GOOD_Y,
            {"task": "ranking"},
            ValueError,
            r"logme_score: task must be one of 'auto', 'classification', "
            r"'regression'; got 'ranking'",
        ),
        (
            GOOD_F,
            np.eye(2)[GOOD_Y],
            {"task": "classification"},
            ValueError,
            r"logme_score: for task='classification' y must be 1-D class labels",
        ),
        (
            GOOD_F,
            np.array(list("abcabc")),
            {"task": "regression"},
            ValueError,
            r"logme_score: for task='regression' y must be finite numbers.*convert string",
        ),
        (
            GOOD_F,
            np.zeros(6),
            {"task": "regression"},
            ValueError,
            r"logme_score: y is all zeros; the evidence of a zero target is unbounded",
        ),
        (
            GOOD_F,
            np.column_stack([GOOD_Y + 0.5, np.zeros(6)]),
            {},
            ValueError,
            r"logme_score: columns \[1\] of y are all zeros",
        ),
        (
            GOOD_F,
            np.array([0.5, np.nan, 1, 2, 3, 4]),
            {},
            ValueError,
            r"logme_score: invalid y \(Input y contains NaN",
        ),
        (
            GOOD_F,
            np.array([0.5, np.nan, 1, 2, 3, 4]),
            {"task": "regression"},
            ValueError,
            r"logme_score: for task='regression' .*Input y contains NaN",
        ),
        (
            GOOD_F,
            np.column_stack([GOOD_Y, 2 * GOOD_Y]),
            {},
            ValueError,
            r"logme_score: cannot tell the task from y .*'multiclass-multioutput'",
        ),
        (
            GOOD_F,
            np.array(["a", 1, "b", 2, "a", 1], dtype=object),
            {"task": "classification"},
            TypeError,
            r"logme_score: the class labels in y cannot be sorted",
        ),
    ],
)
def test_logme_score_errors(features, y, kwargs, error, match):
    with pytest.raises(error, match=match):
        logme_score(features, y, **kwargs)


def test_sparse_features_are_refused():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(
        TypeError,
        match=r"logme_score: features must be a "
        r"finite, dense .*toarray",
    ):
        logme_score(sparse.csr_matrix(GOOD_F), GOOD_Y)


@pytest.mark.parametrize(
    "candidates, error, match",
    [
        ([], ValueError, r"rank_backbones: candidates is empty; pass a list such as"),
        (
            {"backbone": "resnet18"},
            TypeError,
            r"rank_backbones: candidates must be a list of dicts .*got dict",
        ),
        ("resnet18", TypeError, r"rank_backbones: candidates must be a list .*got str"),
        (
            ["resnet18"],
            TypeError,
            r"rank_backbones: candidates\[0\] must be a dict .*or a \(backbone, layer\) "
            r"tuple; got str",
        ),
        (
            [("resnet18", None, "avg")],
            ValueError,
            r"rank_backbones: candidates\[0\] is a tuple of length 3; a tuple must be "
            r"\(backbone, layer\)",
        ),
        (
            [
                ("resnet18", None),
                {"backbone": "resnet18", "layers": "layer3", "zzz": 1},
            ],
            ValueError,
            r"rank_backbones: candidates\[1\] has unknown key\(s\) 'layers', 'zzz'; the "
            r"allowed keys are the parameters of PretrainedFeatureExtractor: backbone, "
            r"batch_size, cache, .*weights\. Did you mean 'layers' -> 'layer'\?",
        ),
    ],
)
def test_rank_backbones_candidate_errors(candidates, error, match):
    # Checked before any backbone is loaded (resnet18 weights are not here).
    with pytest.raises(error, match=match):
        rank_backbones(np.zeros((6, 16, 16, 3), np.uint8), GOOD_Y, candidates)


def test_rank_backbones_argument_errors(shapes, net):
    images, labels = shapes
    with pytest.raises(ValueError, match=r"rank_backbones: task must be one of"):
        rank_backbones(images, labels, [(net, None)], task="clf")
    with pytest.raises(ValueError, match=r"rank_backbones: verbose must be an int"):
        rank_backbones(images, labels, [(net, None)], verbose=-1)
    with pytest.raises(ValueError, match=r"rank_backbones: y has a single class"):
        rank_backbones(images, np.zeros(len(images)), [(net, None)])
    with pytest.raises(
        ValueError,
        match=r"rank_backbones: features and y must "
        r"have one row per sample",
    ):
        rank_backbones(
            images,
            labels[:-1],
            [(net, None)],
            cache=None,
            preprocessing=SMALL,
            device="cpu",
        )
