"""The best sktransfer configuration found by a cached GridSearchCV.

For each data set, size and seed of run.py (the same labelled subsets, drawn
by ``labels_per_class_split`` with the same seed, and the same test images),
a ``GridSearchCV`` with stratified 3-fold inner CV on the labelled subset only
over

    Pipeline([("features", PretrainedFeatureExtractor(backbone, layer=layer,
              preprocessing=64 px, cache=FeatureCache(<folder>))),
              ("scale", StandardScaler()), ("clf", LogisticRegression(C))])

with backbone in efficientnet_lite0/1/2 (ImageNet weights, offline), layer in
None (pooled pre-logits) and blocks.5 (the inner block LogME and the probe CV
ranked first on Fashion-MNIST in benchmarks/logme), and C on a small log grid;
refit on the whole subset and scored on the test images. One disk
``FeatureCache`` for the whole run: each image is extracted once per
(backbone, layer, preprocessing), every other fold, grid point, seed and size
reads it back. Rows (best parameters, test accuracy, search wall time, cache
hits and misses of the search and of the test scoring, each candidate's CV
score) are appended to results/grid.json after each search.

``--full`` adds the "all 60,000" row: Lite0 features at 64 px (blocks.5,
then pooled: ``--full-layers``) + StandardScaler + LogisticRegression with C
by 3-fold CV on all 60,000 Fashion-MNIST training images, the layer with the
better CV score kept, scored on the official 10,000 test images.

    python benchmarks/finetune_recipe/grid.py                  # every size
    python benchmarks/finetune_recipe/grid.py --full           # the 60,000 row
    python benchmarks/finetune_recipe/grid.py --smoke --output /tmp/x
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sktransfer import FeatureCache, PretrainedFeatureExtractor
from sktransfer.datasets import labels_per_class_split

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from run import SIZES, load  # noqa: E402  (the same data and test images as run.py)

BACKBONES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
LAYERS = [None, "blocks.5"]
CS = [0.01, 0.1, 1.0, 10.0]


def pipeline(prep, cache):
    return Pipeline(
        [
            (
                "features",
                PretrainedFeatureExtractor(
                    BACKBONES[0], preprocessing=prep, batch_size=64, cache=cache
                ),
            ),
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    )


def search_row(dataset, n, seed, grid, data, prep, cache):
    Xtr_all, ytr_all, Xte, yte = data
    idx = labels_per_class_split(ytr_all, n, random_state=seed)[0]
    Xtr, ytr = Xtr_all[idx], ytr_all[idx]
    folds = min(3, int(np.bincount(ytr).min()))
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    search = GridSearchCV(pipeline(prep, cache), grid, cv=cv)
    h0, m0 = cache.hits, cache.misses
    t0 = time.perf_counter()
    # One BLAS thread for the sklearn fits (torch keeps its own threads).
    with threadpool_limits(limits=1, user_api="blas"):
        search.fit(Xtr, ytr)
        search_s = time.perf_counter() - t0
        h1, m1 = cache.hits, cache.misses
        acc = float(search.score(Xte, yte))
    best = search.best_params_
    res = search.cv_results_
    candidates = [
        dict(
            backbone=p["features__backbone"],
            layer=p["features__layer"],
            C=p["clf__C"],
            cv=float(s),
        )
        for p, s in zip(res["params"], res["mean_test_score"])
    ]
    return dict(
        dataset=dataset,
        n_per_class=n,
        seed=seed,
        n_train=len(ytr),
        n_test=len(yte),
        folds=folds,
        grid={k: [str(v) for v in vals] for k, vals in grid.items()},
        n_candidates=len(candidates),
        grid_best=acc,
        best_backbone=best["features__backbone"],
        best_layer=best["features__layer"],
        best_C=best["clf__C"],
        best_cv=float(search.best_score_),
        search_s=search_s,
        search_cache_hits=h1 - h0,
        search_cache_misses=m1 - m0,
        test_cache_hits=cache.hits - h1,
        test_cache_misses=cache.misses - m1,
        candidates=candidates,
    )


def full_row(prep, cache, cs, layer):
    """Lite0 features + LogisticRegression (C by CV) on all 60,000."""
    from sktransfer.datasets import load_fashion_mnist

    train, test = load_fashion_mnist(), load_fashion_mnist(subset="test")
    ext = PretrainedFeatureExtractor(
        BACKBONES[0], layer=layer, preprocessing=prep, batch_size=64, cache=cache
    )
    h0, m0 = cache.hits, cache.misses
    t0 = time.perf_counter()
    Ftr = ext.fit(train.images[:1]).transform(train.images)
    Fte = ext.transform(test.images)
    extract_s = time.perf_counter() - t0
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(
        Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]
        ),
        {"clf__C": cs},
        cv=cv,
        n_jobs=2,  # features precomputed: the workers never touch the cache
    )
    t0 = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        search.fit(Ftr, train.target)
        fit_s = time.perf_counter() - t0
        acc = float(search.score(Fte, test.target))
    return dict(
        dataset="fashion_mnist",
        n_per_class="all",
        seed=0,
        n_train=len(train.target),
        n_test=len(test.target),
        backbone=BACKBONES[0],
        layer=layer,
        grid={"clf__C": [str(c) for c in cs]},
        accuracy=acc,
        best_C=search.best_params_["clf__C"],
        best_cv=float(search.best_score_),
        cv_scores=[float(s) for s in search.cv_results_["mean_test_score"]],
        extract_s=extract_s,
        fit_s=fit_s,
        cache_hits=cache.hits - h0,
        cache_misses=cache.misses - m0,
    )


def report(grid):
    """results/grid.md: mean ± sd per size, the configurations chosen, costs."""
    short = {b: b.replace("efficientnet_", "") for b in BACKBONES}
    lines = [
        "# Best sktransfer configuration by a cached GridSearchCV (grid.py)",
        "",
        "Test accuracy mean ± sd over seeds of the refitted best configuration; "
        "chosen = backbone / layer (None: pooled) / C per seed; search s = "
        "GridSearchCV.fit wall time (median over seeds, 2 shared CPU cores); "
        "hits / misses = FeatureCache reads during the searches (sum over "
        "seeds), then during the test scoring.",
        "",
        "| data set | labels/class | seeds | candidates | grid best | chosen "
        "(seed 0, 1, 2) | search s | search hits / misses | test hits / misses |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    rows = grid["rows"]
    for dataset, n in sorted({(r["dataset"], r["n_per_class"]) for r in rows}):
        rs = sorted(
            (r for r in rows if (r["dataset"], r["n_per_class"]) == (dataset, n)),
            key=lambda r: r["seed"],
        )
        acc = np.array([r["grid_best"] for r in rs])
        chosen = ", ".join(
            f"{short[r['best_backbone']]}/{r['best_layer']}/{r['best_C']:g}" for r in rs
        )
        total = {
            k: sum(r[k] for r in rs) for k in rs[0] if k.endswith(("hits", "misses"))
        }
        lines.append(
            f"| {dataset} | {n} | {len(rs)} | {rs[0]['n_candidates']} "
            f"| {acc.mean():.3f} ± {acc.std():.3f} | {chosen} "
            f"| {np.median([r['search_s'] for r in rs]):.0f} "
            f"| {total['search_cache_hits']} / {total['search_cache_misses']} "
            f"| {total['test_cache_hits']} / {total['test_cache_misses']} |"
        )

    def kept(row):
        return ", kept: the better CV" if row == grid.get("full") else ""

    for full in grid.get("full_rows", []):
        lines += [
            "",
            f"All {full['n_train']:,} training images ({full['backbone']}, "
            f"layer {full['layer']}{kept(full)}, "
            f"{grid['image_size']} px, C in {', '.join(full['grid']['clf__C'])} by "
            f"3-fold CV): C = {full['best_C']:g} (CV {full['best_cv']:.4f}), "
            f"{full['accuracy']:.4f} on the official {full['n_test']} test images; "
            f"extraction {full['extract_s']:.0f} s ({full['cache_hits']} cache hits, "
            f"{full['cache_misses']} misses), search + refit {full['fit_s']:.0f} s.",
        ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["digits", "fashion_mnist"])
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--backbones-at",
        action="append",
        default=[],
        metavar="N=B1,B2",
        help="restrict the backbones at size N, e.g. 1000=efficientnet_lite0",
    )
    parser.add_argument("--full", action="store_true", help="the 60,000 row only")
    parser.add_argument(
        "--full-layers",
        nargs="+",
        default=["blocks.5", "None"],
        help="Lite0 layers tried on all 60,000 (C by CV for each; the best CV wins)",
    )
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "sktransfer-grid-cache"),
        help="FeatureCache folder, shared by every search of the run",
    )
    parser.add_argument("--output", default=str(HERE / "results"))
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    backbones, layers, cs, image_size = BACKBONES, LAYERS, CS, 64
    if args.smoke:
        args.datasets, args.sizes, args.seeds = ["digits"], [3], [0]
        backbones, layers, cs, image_size = (
            BACKBONES[:1],
            [None, "blocks.5"],
            CS[:2],
            32,
        )
    restrict = {
        int(n): b.split(",") for n, b in (s.split("=") for s in args.backbones_at)
    }
    prep = {"resize_size": image_size, "crop_size": image_size}
    cache = FeatureCache(args.cache)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "grid.json"
    if args.report_only:
        (out / "grid.md").write_text(report(json.loads(path.read_text())))
        return
    results = json.loads(path.read_text()) if path.exists() else {"rows": []}
    results.update(
        image_size=image_size,
        test_per_class=args.test_per_class,
        torch=torch.__version__,
        machine=f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        smoke=args.smoke,
    )
    done = {(r["dataset"], r["n_per_class"], r["seed"]) for r in results["rows"]}
    if args.full:
        # Rows per layer, written as each ends; "full" = the best by CV.
        full_rows = results.setdefault("full_rows", [])
        for layer in [x if x != "None" else None for x in args.full_layers]:
            if any(r["layer"] == layer for r in full_rows):
                continue
            row = full_row(prep, cache, [0.01, 0.1, 1.0], layer)
            full_rows.append(row)
            results["full"] = max(full_rows, key=lambda r: r["best_cv"])
            path.write_text(json.dumps(results, indent=1))
            (out / "grid.md").write_text(report(results))
            print(json.dumps(row), flush=True)
        return
    for dataset in args.datasets:
        data = load(dataset, args.test_per_class)
        for n in args.sizes or SIZES[dataset]:
            grid = {
                "features__backbone": restrict.get(n, backbones),
                "features__layer": layers,
                "clf__C": cs,
            }
            for seed in args.seeds:
                if (dataset, n, seed) in done:
                    continue
                row = search_row(dataset, n, seed, grid, data, prep, cache)
                results["rows"].append(row)
                path.write_text(json.dumps(results, indent=1))
                (out / "grid.md").write_text(report(results))
                print(
                    json.dumps({k: v for k, v in row.items() if k != "candidates"}),
                    flush=True,
                )


if __name__ == "__main__":
    main()
