"""The comparison protocol behind ``sktransfer demo`` and ``benchmarks/``.

Classical baselines, a linear probe and fine-tuning are trained on the same
n-labels-per-class subsets of the official training set (one subset per seed)
and scored on the same test images.

Timing of the linear probe: the backbone features of every image the run
needs are extracted once; each fit is charged ``n_train`` times the measured
per-image extraction time plus the classifier's fit, each prediction
``n_test`` times it plus the classifier's predict.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class BenchmarkConfig:
    dataset: str = "auto"
    backbone: str = "efficientnet_lite0"
    image_size: int = 112
    sizes: tuple = (10, 50)
    seeds: tuple = (0, 1)
    test_size: int | None = 1000
    finetune_sizes: tuple = (10,)
    finetune_epochs: int | str = "auto"
    # Seeds at which to fine-tune (None: all of seeds); fine-tuning is the
    # slow part.
    finetune_seeds: tuple | None = None
    methods: tuple = (
        "pixels_logreg",
        "hog_linear_svm",
        "pixels_rbf_svc",
        "linear_probe",
        "fine_tune",
        "backbone_grid",
    )
    batch_size: int = 16
    device: str = "auto"  # of every extractor and fine-tuner
    download: str = "auto"
    # GridSearchCV over backbone x layer (linear probe pipelines sharing one
    # feature cache) and the LogME ranking of the same candidates, on one
    # labelled subset of grid_size per class (seed: the first of seeds).
    # Backbones that are not registered are skipped (and said so).
    grid_backbones: tuple = (
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    )
    grid_layers: tuple = (None, "blocks.5")
    grid_size: int = 50
    grid_cv: int = 3
    # Test images scoring each grid candidate (a stratified subset of the test
    # set, fixed seed; None: all of it).
    grid_test_size: int | None = None
    # FineTunedClassifier's own defaults (the LP-FT recipe, measured in
    # benchmarks/finetune_recipe); overrides go here.
    finetune_params: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


METHOD_LABELS = {
    "pixels_logreg": "raw pixels + logistic regression",
    "hog_linear_svm": "HOG + linear SVM",
    "pixels_rbf_svc": "raw pixels + RBF SVC",
    "linear_probe": "pretrained features + logistic regression (linear probe)",
    "fine_tune": "fine-tuned backbone (FineTunedClassifier)",
    "backbone_grid": "GridSearchCV over backbone x layer, and the LogME ranking",
}


DATASETS = ("auto", "fashion_mnist", "fashion_mnist_sample", "digits")
DOWNLOAD = ("auto", "yes", "no")


def load_benchmark_data(name, test_size, log=print, download="auto"):
    """(train images, train labels, test images, test labels, class names, name).

    ``name="auto"`` takes the full Fashion-MNIST when its files are found
    (``load_fashion_mnist``'s lookup); else downloads it when ``download`` is
    "yes", or "auto" and Zalando's server answers within 3 s; else the sample
    shipped with sktransfer. ``test_size`` keeps a class-stratified subset of
    the test images (fixed seed), None keeps them all.
    """
    if name not in DATASETS:
        raise ValueError(
            f"Unknown dataset {name!r}; use one of {', '.join(map(repr, DATASETS))}."
        )
    if download not in DOWNLOAD:
        raise ValueError(
            f"download must be one of {', '.join(map(repr, DOWNLOAD))}, got "
            f"{download!r}."
        )
    if name in ("auto", "fashion_mnist"):
        data = _full_fashion_mnist(name, download, log)
        name = "fashion_mnist" if data is not None else "fashion_mnist_sample"
    if name == "fashion_mnist_sample":
        data = _fashion_mnist_sample(log)
    if name == "digits":
        data = _digits(log)
    Xtr, ytr, Xte, yte, names = data
    if test_size is not None and test_size < len(yte):
        from .datasets import labels_per_class_split

        per_class = max(1, test_size // len(np.unique(yte)))
        idx, _ = labels_per_class_split(yte, per_class, random_state=12345)
        Xte, yte = Xte[idx], yte[idx]
        log(f"Test set: {len(yte)} images ({per_class} per class, stratified).")
    return Xtr, ytr, Xte, yte, names, name


def _full_fashion_mnist(name, download, log):
    """The full data set, or None (auto only) after saying why not."""
    from . import datasets

    try:
        train = datasets.load_fashion_mnist(subset="train")
        test = datasets.load_fashion_mnist(subset="test")
    except FileNotFoundError as exc:
        folders = [str(datasets._default_data_home()), str(datasets._DEBIAN_DIR)]
        why = f"no files in {' or '.join(folders)}"
        if download == "no":
            if name == "fashion_mnist":
                raise
            log(f"The full Fashion-MNIST is not installed here ({why}).")
            return None
        if download == "auto":
            reachable, reason = datasets._download_reachable(timeout=3.0)
            if not reachable:
                if name == "fashion_mnist":
                    raise FileNotFoundError(f"{exc}\n(no download: {reason})") from None
                log(
                    f"The full Fashion-MNIST is not installed here ({why}) and "
                    f"cannot be downloaded ({reason})."
                )
                return None
        log(
            "Downloading the full Fashion-MNIST (4 files, 30 MB) into "
            f"{datasets._default_data_home()} ..."
        )
        try:
            train = datasets.load_fashion_mnist(subset="train", download=True)
            test = datasets.load_fashion_mnist(subset="test", download=True)
        except OSError as failure:
            if name == "fashion_mnist":
                raise
            log(f"The download failed: {failure}")
            return None
    log(
        f"Data: the full Fashion-MNIST from {train.source} "
        f"({len(train.target)} train / {len(test.target)} test images, 28x28)."
    )
    return train.images, train.target, test.images, test.target, train.target_names


def _fashion_mnist_sample(log):
    from .datasets import load_fashion_mnist_sample

    train = load_fashion_mnist_sample(subset="train")
    test = load_fashion_mnist_sample(subset="test")
    log(
        f"Data: the Fashion-MNIST sample shipped with sktransfer "
        f"({len(train.target)} train / {len(test.target)} test images, 28x28, "
        f"{len(train.target) // 10} and {len(test.target) // 10} per class from the "
        "official training and test sets; MIT licence, Zalando SE). For the full "
        "data set: apt-get install dataset-fashion-mnist, or "
        "`sktransfer demo --download yes` where the internet is reachable."
    )
    return train.images, train.target, test.images, test.target, train.target_names


def _digits(log):
    from sklearn.model_selection import train_test_split

    from .datasets import load_digits_images

    d = load_digits_images()
    Xtr, Xte, ytr, yte = train_test_split(
        d.images, d.target, test_size=0.5, stratify=d.target, random_state=0
    )
    log(
        f"Data: scikit-learn digits, split in half: {len(ytr)} train / "
        f"{len(yte)} test images, 8x8."
    )
    return Xtr, ytr, Xte, yte, list(d.target_names)


def _hog(images):
    from skimage.feature import hog

    size = images.shape[1]
    cell = max(2, size // 7)
    return np.stack(
        [
            hog(
                img,
                orientations=9,
                pixels_per_cell=(cell, cell),
                cells_per_block=(2, 2),
            )
            for img in images
        ]
    ).astype(np.float32)


def _blas_limited():
    from threadpoolctl import threadpool_limits

    # torch's threads and OpenBLAS oversubscribe small machines when a sklearn
    # fit follows torch work in one process; one BLAS thread avoids that.
    return threadpool_limits(limits=1, user_api="blas")


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def _classical(method, Xtr, ytr, Xte):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    if method == "hog_linear_svm":
        (Ftr, t_tr) = _timed(_hog, Xtr)
        (Fte, t_te) = _timed(_hog, Xte)
        model = make_pipeline(StandardScaler(), LinearSVC(C=0.01, max_iter=5000))
    else:
        Ftr, Fte, t_tr, t_te = _flat(Xtr), _flat(Xte), 0.0, 0.0
        if method == "pixels_logreg":
            model = make_pipeline(
                StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)
            )
        else:
            model = SVC(kernel="rbf", gamma="scale", C=10)
    with _blas_limited():
        _, fit = _timed(model.fit, Ftr, ytr)
        pred, predict = _timed(model.predict, Fte)
    return pred, t_tr + fit, t_te + predict


def _flat(images):
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def _probe_head(Ftr, ytr, Fte):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    with _blas_limited():
        _, fit = _timed(model.fit, Ftr, ytr)
        pred, predict = _timed(model.predict, Fte)
    return pred, fit, predict


def _preprocessing(config):
    s = config.image_size
    return None if s is None else {"resize_size": s, "crop_size": s}


def run_benchmark(config, log=print, progress=True):
    """Run the protocol; return a dict (config, environment, results)."""
    from ._cache import FeatureCache
    from .datasets import labels_per_class_split

    Xtr_all, ytr_all, Xte, yte, class_names, dataset = load_benchmark_data(
        config.dataset, config.test_size, log, download=config.download
    )
    # One in-memory cache for every extractor of the run: the linear probe's
    # features are the grid's (backbone, None) candidate, the grid's folds and
    # refits share their rows, LogME reads the grid's features.
    cache = FeatureCache()
    splits = {}
    smallest_class = int(np.bincount(ytr_all).min())
    for n in config.sizes:
        # Every seed gives the same subset once n covers the smallest class.
        for seed in config.seeds[:1] if n >= smallest_class else config.seeds:
            idx, _ = labels_per_class_split(
                ytr_all, min(n, smallest_class), random_state=seed
            )
            splits[(n, seed)] = idx
    full_methods = config.extra.get("full_size_methods")
    results = []

    def record(method, n, seed, pred, fit_time, predict_time):
        acc = float(np.mean(pred == yte))
        results.append(
            dict(
                method=method,
                labels_per_class=n,
                seed=seed,
                n_train=len(splits[(n, seed)]),
                n_test=len(yte),
                accuracy=acc,
                fit_time=fit_time,
                predict_time=predict_time,
            )
        )
        log(
            f"  {method:<16} n/class={n:<5} seed={seed}  accuracy={acc:.4f}  "
            f"fit={fit_time:.1f}s  predict={predict_time:.1f}s"
        )

    for method in ("pixels_logreg", "hog_linear_svm", "pixels_rbf_svc"):
        if method not in config.methods:
            continue
        log(f"{METHOD_LABELS[method]}:")
        for (n, seed), idx in _splits_for(method, splits, smallest_class, full_methods):
            pred, fit_t, pred_t = _classical(method, Xtr_all[idx], ytr_all[idx], Xte)
            record(method, n, seed, pred, fit_t, pred_t)

    if "linear_probe" in config.methods:
        probe_splits = dict(
            _splits_for("linear_probe", splits, smallest_class, full_methods)
        )
        _run_linear_probe(
            config, Xtr_all, ytr_all, Xte, probe_splits, record, log, progress, cache
        )
    if "fine_tune" in config.methods:
        _run_fine_tune(config, Xtr_all, ytr_all, Xte, splits, record, log, progress)
    grid = None
    if "backbone_grid" in config.methods:
        # One BLAS thread: LogME's SVDs and the heads' fits oversubscribe the
        # cores after torch work (measured 10-20x slower with 2 threads on 2
        # busy cores); torch's own threads are not affected.
        with _blas_limited():
            grid = _run_backbone_grid(
                config, Xtr_all, ytr_all, Xte, yte, cache, log, progress
            )
    return dict(
        config=asdict(config),
        dataset=dataset,
        class_names=class_names,
        environment=environment(),
        results=results,
        grid=grid,
    )


def _splits_for(method, splits, smallest_class, full_methods):
    """The splits a method runs on: the full-set split only if it is listed."""
    return [
        (key, idx)
        for key, idx in splits.items()
        if full_methods is None or key[0] < smallest_class or method in full_methods
    ]


def _run_linear_probe(
    config, Xtr_all, ytr_all, Xte, splits, record, log, progress, cache=None
):
    from ._extractor import PretrainedFeatureExtractor

    log(
        f"{METHOD_LABELS['linear_probe']} ({config.backbone}, "
        f"{config.image_size or 'native'} px):"
    )
    union = np.unique(np.concatenate(list(splits.values())))
    extractor = PretrainedFeatureExtractor(
        config.backbone,
        preprocessing=_preprocessing(config),
        batch_size=config.batch_size,
        verbose=int(progress),
        cache=cache,
        device=config.device,
    ).fit(Xte[:1])
    F_union, t_union = _timed(extractor.transform, Xtr_all[union])
    F_test, t_test = _timed(extractor.transform, Xte)
    per_image = (t_union + t_test) / (len(union) + len(Xte))
    log(f"  extracted {len(union) + len(Xte)} images at {1 / per_image:.1f} images/s")
    position = {i: k for k, i in enumerate(union)}
    for (n, seed), idx in splits.items():
        Ftr = F_union[[position[i] for i in idx]]
        pred, fit_t, pred_t = _probe_head(Ftr, ytr_all[idx], F_test)
        record(
            "linear_probe",
            n,
            seed,
            pred,
            fit_t + per_image * len(idx),
            pred_t + per_image * len(Xte),
        )


def _run_fine_tune(config, Xtr_all, ytr_all, Xte, splits, record, log, progress):
    from ._finetune import FineTunedClassifier

    params = dict(config.finetune_params)
    log(
        f"{METHOD_LABELS['fine_tune']} ({config.backbone}, max_epochs="
        f"{config.finetune_epochs!r}, {params or 'default parameters'}):"
    )
    for (n, seed), idx in splits.items():
        if n not in config.finetune_sizes:
            continue
        if config.finetune_seeds is not None and seed not in config.finetune_seeds:
            continue
        clf = FineTunedClassifier(
            config.backbone,
            max_epochs=config.finetune_epochs,
            preprocessing=_preprocessing(config),
            random_state=seed,
            verbose=0,
            device=config.device,
            **params,
        )
        log(
            f"  fine-tuning on {len(idx)} images (n/class={n}, seed={seed}), "
            f"max_epochs={config.finetune_epochs!r} ..."
        )
        _, fit_t = _timed(clf.fit, Xtr_all[idx], ytr_all[idx])
        log(f"    {clf.n_epochs_} epochs, {fit_t:.0f} s")
        pred, pred_t = _timed(clf.predict, Xte)
        record("fine_tune", n, seed, pred, fit_t, pred_t)


def _grid_pipeline(config, cache):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from ._extractor import PretrainedFeatureExtractor

    return Pipeline(
        [
            (
                "features",
                PretrainedFeatureExtractor(
                    config.grid_backbones[0],
                    preprocessing=_preprocessing(config),
                    batch_size=config.batch_size,
                    cache=cache,
                    device=config.device,
                ),
            ),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=0.1, max_iter=2000)),
        ]
    )


def _run_backbone_grid(config, Xtr_all, ytr_all, Xte, yte, cache, log, progress):
    """GridSearchCV over backbone x layer, each candidate's test accuracy, and
    the LogME ranking of the same candidates (features from the shared cache)."""
    from scipy.stats import kendalltau
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from ._transferability import rank_backbones
    from .backbones import list_backbones
    from .datasets import labels_per_class_split

    registered = set(list_backbones())
    backbones = [b for b in config.grid_backbones if b in registered]
    skipped = [b for b in config.grid_backbones if b not in registered]
    if not backbones:
        raise ValueError(
            f"None of the grid backbones {list(config.grid_backbones)} is "
            "registered; see sktransfer.list_backbones()."
        )
    layers = list(config.grid_layers)
    n = min(config.grid_size, int(np.bincount(ytr_all).min()))
    seed = config.seeds[0]
    idx, _ = labels_per_class_split(ytr_all, n, random_state=seed)
    X, y = Xtr_all[idx], ytr_all[idx]
    log(
        f"{METHOD_LABELS['backbone_grid']}: backbones {backbones} x layers "
        f"{layers}, {n} labels per class (seed {seed}), {config.grid_cv}-fold CV, "
        f"scored on {min(config.grid_test_size or len(yte), len(yte))} test images"
        + (f"; not registered, skipped: {skipped}" if skipped else "")
    )
    if config.grid_test_size is not None and config.grid_test_size < len(yte):
        per_class = max(1, config.grid_test_size // len(np.unique(yte)))
        keep, _ = labels_per_class_split(yte, per_class, random_state=54321)
        Xte, yte = Xte[keep], yte[keep]
    pipe = _grid_pipeline(config, cache)
    search = GridSearchCV(
        pipe,
        {"features__backbone": backbones, "features__layer": layers},
        cv=StratifiedKFold(config.grid_cv, shuffle=True, random_state=seed),
        refit=True,
        verbose=2 if progress else 0,  # one line per fit
    )
    start = time.perf_counter()
    search.fit(X, y)
    search_time = time.perf_counter() - start
    cv = search.cv_results_
    candidates = []
    for i, params in enumerate(cv["params"]):
        backbone, layer = params["features__backbone"], params["features__layer"]
        start = time.perf_counter()
        model = clone(pipe).set_params(**params).fit(X, y)
        test_accuracy = float(model.score(Xte, yte))
        candidates.append(
            dict(
                backbone=backbone,
                layer=layer,
                cv_accuracy_mean=float(cv["mean_test_score"][i]),
                cv_accuracy_std=float(cv["std_test_score"][i]),
                cv_rank=int(cv["rank_test_score"][i]),
                test_accuracy=test_accuracy,
                test_time=time.perf_counter() - start,
            )
        )
        log(
            f"  {backbone} layer={layer!s:<9} CV accuracy="
            f"{candidates[-1]['cv_accuracy_mean']:.4f}  test accuracy="
            f"{test_accuracy:.4f}"
        )
    start = time.perf_counter()
    ranking = rank_backbones(
        X,
        y,
        [(c["backbone"], c["layer"]) for c in candidates],
        cache=cache,
        preprocessing=_preprocessing(config),
        batch_size=config.batch_size,
    )
    logme_time = time.perf_counter() - start
    by_key = {
        (b, layer): (score, rank, n_features)
        for b, layer, score, rank, n_features in zip(
            ranking["backbone"],
            ranking["layer"],
            ranking["logme"],
            ranking["rank"],
            ranking["n_features"],
        )
    }
    for c in candidates:
        c["logme"], c["logme_rank"], c["n_features"] = by_key[
            (c["backbone"], c["layer"])
        ]
    candidates.sort(key=lambda c: c["logme_rank"])
    for c in candidates:
        log(
            f"  LogME rank {c['logme_rank']}: {c['backbone']} layer="
            f"{c['layer']!s:<9} LogME={c['logme']:.4f}  test accuracy="
            f"{c['test_accuracy']:.4f}"
        )
    logme = [c["logme"] for c in candidates]
    test = [c["test_accuracy"] for c in candidates]
    tau = float(kendalltau(logme, test).statistic) if len(candidates) > 1 else None

    def best(key):
        c = max(candidates, key=lambda c: c[key])
        return dict(backbone=c["backbone"], layer=c["layer"])

    return dict(
        labels_per_class=n,
        seed=seed,
        n_train=len(idx),
        n_test=len(yte),
        cv=config.grid_cv,
        backbones=backbones,
        skipped_backbones=skipped,
        layers=layers,
        candidates=candidates,
        best_by_cv=best("cv_accuracy_mean"),
        best_by_logme=best("logme"),
        best_on_test=best("test_accuracy"),
        kendall_tau_logme_test=tau,
        search_time=search_time,
        logme_time=logme_time,
    )


def environment():
    """Hardware and versions, recorded with every result."""
    import os

    import sklearn
    import torch

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
    }
    for name in ("torchvision", "timm", "skorch"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            pass
    from . import __version__

    versions["sktransfer"] = __version__
    return {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "platform": platform.platform(),
        "versions": versions,
    }


def summarize(report):
    """Rows: method, labels/class, accuracy mean/std, median fit/predict time."""
    rows = {}
    for r in report["results"]:
        rows.setdefault((r["method"], r["labels_per_class"]), []).append(r)
    out = []
    for (method, n), rs in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        acc = np.array([r["accuracy"] for r in rs])
        out.append(
            dict(
                method=method,
                labels_per_class=n,
                n_seeds=len(rs),
                accuracy_mean=float(acc.mean()),
                accuracy_std=float(acc.std()),
                fit_time_median=float(np.median([r["fit_time"] for r in rs])),
                predict_time_median=float(np.median([r["predict_time"] for r in rs])),
            )
        )
    return out


def markdown_table(summary):
    lines = [
        "| labels/class | method | accuracy (mean ± sd) | seeds | fit s (median) | predict s (median) |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['labels_per_class']} | {METHOD_LABELS.get(s['method'], s['method'])} | "
            f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f} | {s['n_seeds']} | "
            f"{s['fit_time_median']:.1f} | {s['predict_time_median']:.1f} |"
        )
    return "\n".join(lines)


def plot(summary, path, title):
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in dict.fromkeys(s["method"] for s in summary):
        rows = [s for s in summary if s["method"] == method]
        ax.errorbar(
            [s["labels_per_class"] for s in rows],
            [s["accuracy_mean"] for s in rows],
            yerr=[s["accuracy_std"] for s in rows],
            marker="o",
            capsize=3,
            label=METHOD_LABELS.get(method, method),
        )
    ax.set_xscale("log")
    sizes = sorted({s["labels_per_class"] for s in summary})
    ax.set_xticks(sizes)
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("labelled training images per class")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _candidate_label(c):
    return f"{c['backbone'].replace('efficientnet_', '')} / {c['layer'] or 'pooled'}"


def grid_table(grid):
    """Markdown: each backbone x layer candidate, LogME beside its accuracies."""
    lines = [
        "| backbone | layer | features | LogME | LogME rank | "
        f"CV accuracy ({grid['cv']}-fold, {grid['n_train']} images) | CV rank | "
        f"test accuracy ({grid['n_test']} images) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in grid["candidates"]:
        lines.append(
            f"| {c['backbone']} | {c['layer'] or 'None (pooled head input)'} | "
            f"{c['n_features']} | {c['logme']:.4f} | {c['logme_rank']} | "
            f"{c['cv_accuracy_mean']:.3f} ± {c['cv_accuracy_std']:.3f} | "
            f"{c['cv_rank']} | {c['test_accuracy']:.3f} |"
        )

    def name(best):
        return f"{best['backbone']} / {best['layer'] or 'None'}"

    tau = grid["kendall_tau_logme_test"]
    lines += [
        "",
        f"{grid['labels_per_class']} labels per class (seed {grid['seed']}). "
        f"GridSearchCV picks {name(grid['best_by_cv'])}; LogME (no training, "
        f"{grid['logme_time']:.1f} s on cached features) picks "
        f"{name(grid['best_by_logme'])}; best on the test set: "
        f"{name(grid['best_on_test'])}."
        + (
            f" Kendall's tau between LogME and test accuracy: {tau:.2f} "
            f"({len(grid['candidates'])} candidates)."
            if tau is not None
            else ""
        ),
    ]
    if grid["skipped_backbones"]:
        lines.append(
            f"Not registered in this installation, so not compared: "
            f"{', '.join(grid['skipped_backbones'])}."
        )
    return "\n".join(lines)


def plot_logme(grid, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    cs = grid["candidates"]
    x = [c["logme"] for c in cs]
    ax.scatter(x, [c["test_accuracy"] for c in cs], label="test accuracy", zorder=3)
    ax.errorbar(
        x,
        [c["cv_accuracy_mean"] for c in cs],
        yerr=[c["cv_accuracy_std"] for c in cs],
        fmt="o",
        mfc="none",
        capsize=3,
        label=f"{grid['cv']}-fold CV accuracy (GridSearchCV)",
    )
    for c in cs:
        ax.annotate(
            _candidate_label(c),
            (c["logme"], c["test_accuracy"]),
            textcoords="offset points",
            xytext=(5, 4),
            fontsize=8,
        )
    ax.set_xlabel("LogME of the features (higher: predicted to transfer better)")
    ax.set_ylabel("accuracy of the linear probe")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report, folder, title):
    """Write results.json, results.md, accuracy.png (and logme.png) into
    ``folder``; return the Markdown tables."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(report)
    report = dict(report, summary=summary)
    (folder / "results.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown_table(summary)
    grid = report.get("grid")
    if grid:
        table += (
            "\n\n## Which backbone? GridSearchCV over backbone x layer vs LogME\n\n"
            + grid_table(grid)
        )
    env = report["environment"]
    (folder / "results.md").write_text(
        f"# {title}\n\n{table}\n\nHardware: {env['cpu_count']} CPUs "
        f"({env['machine']}), CUDA: {env['cuda']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + "\n"
    )
    if summary:
        plot(summary, folder / "accuracy.png", title)
    if grid:
        plot_logme(
            grid,
            folder / "logme.png",
            f"{title}\nLogME vs accuracy, {grid['labels_per_class']} labels per class",
        )
    return table
