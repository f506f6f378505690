"""Classical baselines on the subsets and test images of run.py, each with its
main hyperparameter chosen by inner cross-validation, and the comparison table.

For each data set, size and seed of ``results/results.json`` (run.py), on the
same labelled subset (``labels_per_class_split`` with the same seed) and the
same test images, at the images' native resolution:

- raw pixels + StandardScaler + LogisticRegression, C in 1e-3 .. 1e2;
- HOG + StandardScaler + LinearSVC, C in 1e-3 .. 1;
- raw pixels + RBF SVC (gamma="scale"), C in 0.1 .. 100;

C by GridSearchCV with stratified 3-fold CV (fewer folds when a class has fewer
images), as run.py's ``probe_cv`` gets. Writes results/classical.json and
results/comparison.md (the better probe, the fine-tuner with its defaults, the
best classical baseline, and the differences).

    python benchmarks/finetune_recipe/classical.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import threadpool_limits

from sktransfer._benchmark import _flat, _hog
from sktransfer.datasets import labels_per_class_split

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import load  # noqa: E402  (the same data and test images as run.py)

METHODS = {
    "pixels_logreg": (
        "raw pixels + logistic regression",
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        {"logisticregression__C": np.logspace(-3, 2, 6).tolist()},
    ),
    "hog_linear_svm": (
        "HOG + linear SVM",
        lambda: make_pipeline(StandardScaler(), LinearSVC(max_iter=5000)),
        {"linearsvc__C": [1e-3, 1e-2, 1e-1, 1.0]},
    ),
    "pixels_rbf_svc": (
        "raw pixels + RBF SVC",
        lambda: SVC(kernel="rbf", gamma="scale"),
        {"C": [0.1, 1.0, 10.0, 100.0]},
    ),
}


def fit_score(method, Xtr, ytr, Xte, yte, seed, n_jobs=None):
    _, make, grid = METHODS[method]
    if method == "hog_linear_svm":
        Ftr, Fte = _hog(Xtr), _hog(Xte)
    else:
        Ftr, Fte = _flat(Xtr), _flat(Xte)
    folds = min(3, int(np.bincount(ytr).min()))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    search = GridSearchCV(make(), grid, cv=cv, n_jobs=n_jobs).fit(Ftr, ytr)
    return float(search.score(Fte, yte)), search.best_params_


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="DATASET:N:SEED",
        help="run only these rows and keep the others of classical.json",
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="GridSearchCV's")
    args = parser.parse_args()
    out = Path(args.results)
    recipe = json.loads((out / "results.json").read_text())
    if args.report_only:
        rows = json.loads((out / "classical.json").read_text())["rows"]
        report(out, recipe["rows"], rows)
        return
    test_per_class = recipe["args"]["test_per_class"]
    keys = sorted({(r["dataset"], r["n_per_class"], r["seed"]) for r in recipe["rows"]})
    rows, data = [], {}
    if args.only:
        wanted = {(d, int(n), int(s)) for d, n, s in (o.split(":") for o in args.only)}
        rows = [
            r
            for r in json.loads((out / "classical.json").read_text())["rows"]
            if (r["dataset"], r["n_per_class"], r["seed"]) not in wanted
        ]
        keys = [k for k in keys if k in wanted]
    for dataset, n, seed in keys:
        if dataset not in data:
            data[dataset] = load(dataset, test_per_class)
        Xtr_all, ytr_all, Xte, yte = data[dataset]
        idx = labels_per_class_split(ytr_all, n, random_state=seed)[0]
        row = dict(dataset=dataset, n_per_class=n, seed=seed, n_test=len(yte))
        for method in METHODS:
            t0 = time.perf_counter()
            with threadpool_limits(1):
                acc, best = fit_score(
                    method, Xtr_all[idx], ytr_all[idx], Xte, yte, seed, args.n_jobs
                )
            row[method], row[f"{method}_params"] = acc, best
            row[f"{method}_s"] = time.perf_counter() - t0
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "classical.json").write_text(json.dumps({"rows": rows}, indent=1))
    report(out, recipe["rows"], rows)


def report(out, recipe_rows, classical_rows):
    grid = out / "grid.json"
    grid_rows = json.loads(grid.read_text())["rows"] if grid.exists() else []
    text = comparison(recipe_rows, classical_rows, grid_rows)
    (out / "comparison.md").write_text(text)
    plot(recipe_rows, classical_rows, out / "comparison.png", grid_rows)


def plot(recipe_rows, classical_rows, path, grid_rows=()):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in recipe_rows}, reverse=True)
    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 3.6))
    for ax, dataset in zip(np.atleast_1d(axes), datasets):
        series = [
            (recipe_rows, "finetune", "fine-tuned (defaults)", "o-"),
            (recipe_rows, "probe_cv", "linear probe (C by CV)", "s-"),
            (grid_rows, "grid_best", "best by cached grid search", "D-"),
        ] + [(classical_rows, m, v[0], "^--") for m, v in METHODS.items()]
        for i, (rows, key, label, style) in enumerate(series):
            rows = [r for r in rows if r["dataset"] == dataset]
            if not rows:
                continue
            sizes = sorted({r["n_per_class"] for r in rows})
            stats = [
                _stat([r for r in rows if r["n_per_class"] == n], key) for n in sizes
            ]
            ax.errorbar(
                sizes,
                [m for m, _ in stats],
                yerr=[s for _, s in stats],
                fmt=style,
                capsize=3,
                label=label,
                color=f"C{i}",
            )
        ax.set_xscale("log")
        ticks = sorted(
            {r["n_per_class"] for r in recipe_rows if r["dataset"] == dataset}
        )
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("labelled images per class")
        ax.set_ylabel("test accuracy")
        ax.set_title(dataset.replace("_", "-"))
        ax.grid(alpha=0.3)
    most = max(np.atleast_1d(axes), key=lambda a: len(a.get_lines()))
    np.atleast_1d(axes)[0].legend(*most.get_legend_handles_labels(), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _stat(rows, key):
    v = np.array([r[key] for r in rows])
    return v.mean(), v.std()


def comparison(recipe_rows, classical_rows, grid_rows=()):
    lines = [
        "# Transfer vs classical baselines on the same subsets and test images",
        "",
        "Mean ± sd over seeds. Classical baselines at native resolution, C by "
        "inner CV; probe = the better of run.py's two probes; fine-tune = "
        "FineTunedClassifier defaults (efficientnet_lite0, 64 px); grid = the "
        "best configuration of grid.py's cached GridSearchCV (backbone x layer "
        "x C, 64 px), refitted and scored on the same test images; best "
        "sktransfer = the better of fine-tune and grid.",
        "",
        "| data set | labels/class | seeds | best classical (its seeds) | probe | "
        "fine-tune | grid (its seeds) | fine-tune − probe | "
        "fine-tune − best classical | best sktransfer − best classical |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for dataset, n in sorted({(r["dataset"], r["n_per_class"]) for r in recipe_rows}):

        def same(rs, key=(dataset, n)):
            return [r for r in rs if (r["dataset"], r["n_per_class"]) == key]

        rec, cla, gri = same(recipe_rows), same(classical_rows), same(grid_rows)
        if not cla:
            continue
        probe = max(
            (_stat(rec, k) for k in ("probe_c1", "probe_cv")), key=lambda s: s[0]
        )
        ft = _stat(rec, "finetune")
        best = max(METHODS, key=lambda m: _stat(cla, m)[0])
        bm, bs = _stat(cla, best)
        gm, gs = _stat(gri, "grid_best") if gri else (float("nan"), 0.0)
        grid_cell = f"{gm:.3f} ± {gs:.3f} ({len(gri)})" if gri else ""
        top = max(ft[0], gm) if gri else ft[0]
        lines.append(
            f"| {dataset} | {n} | {len(rec)} | {METHODS[best][0]} {bm:.3f} ± {bs:.3f} "
            f"({len(cla)}) "
            f"| {probe[0]:.3f} ± {probe[1]:.3f} | {ft[0]:.3f} ± {ft[1]:.3f} "
            f"| {grid_cell} | {ft[0] - probe[0]:+.3f} | {ft[0] - bm:+.3f} "
            f"| {top - bm:+.3f} |"
        )
    lines += [
        "",
        "All classical baselines (mean ± sd):",
        "",
        "| data set | labels/class | seeds | "
        + " | ".join(v[0] for v in METHODS.values())
        + " |",
        "|---|---:|---:|" + "---:|" * len(METHODS),
    ]
    for dataset, n in sorted(
        {(r["dataset"], r["n_per_class"]) for r in classical_rows}
    ):
        cla = [
            r
            for r in classical_rows
            if (r["dataset"], r["n_per_class"]) == (dataset, n)
        ]
        cells = [f"{m:.3f} ± {s:.3f}" for m, s in (_stat(cla, k) for k in METHODS)]
        lines.append(f"| {dataset} | {n} | {len(cla)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
