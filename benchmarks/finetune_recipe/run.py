"""Does FineTunedClassifier with its default parameters beat the linear probe?

For each data set, labelled-subset size and seed this trains, on the same
subset and scores on the same test images:

- ``probe_c1``: the linear probe a user writes first,
  ``make_pipeline(PretrainedFeatureExtractor(backbone), StandardScaler(),
  LogisticRegression())`` (C = 1, the solution LP-FT's head starts from);
- ``probe_cv``: the same with C chosen by 3-fold inner cross-validation
  (``LogisticRegressionCV``, C in 1e-3 .. 1e2): the strongest simple probe;
- ``finetune``: ``FineTunedClassifier(backbone)`` with its defaults (only the
  image size is set, the same for all methods), plus any ``--variant``
  (parameter overrides, to compare recipes on the same subsets).

The target of the recipe: finetune's mean over seeds >= the better probe's
mean - 0.01, at every size. Writes results.json and results.md.

    python benchmarks/finetune_recipe/run.py                # everything, ~25 min
    python benchmarks/finetune_recipe/run.py --smoke        # seconds
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor
from sktransfer.datasets import labels_per_class_split

HERE = Path(__file__).parent
SIZES = {"fashion_mnist": (10, 100, 1000), "digits": (5, 20, 80)}


def load(name, test_per_class):
    """uint8 (n, H, W) images: train, train labels, test, test labels."""
    if name == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        images = np.round(d.images * (255 / 16)).astype(np.uint8)
        Xtr, Xte, ytr, yte = train_test_split(
            images, d.target, test_size=0.5, stratify=d.target, random_state=0
        )
        return Xtr, ytr, Xte, yte
    from sktransfer.datasets import load_fashion_mnist

    train, test = load_fashion_mnist(), load_fashion_mnist(subset="test")
    idx = labels_per_class_split(test.target, test_per_class, random_state=0)[0]
    return train.images, train.target, test.images[idx], test.target[idx]


def probes(Ftr, ytr, Fte, yte, seed):
    with threadpool_limits(1):
        scaler = StandardScaler().fit(Ftr)
        Str, Ste = scaler.transform(Ftr), scaler.transform(Fte)
        c1 = LogisticRegression(max_iter=1000).fit(Str, ytr)
        folds = min(3, int(np.bincount(ytr).min()))
        cv = LogisticRegressionCV(
            Cs=np.logspace(-3, 2, 6).tolist(), cv=folds, max_iter=1000
        ).fit(Str, ytr)
    return float(c1.score(Ste, yte)), float(cv.score(Ste, yte)), float(cv.C_[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(SIZES))
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help='extra fine-tuning runs, e.g. light=\'{"augment": "light"}\'',
    )
    parser.add_argument("--output", default=str(HERE / "results"))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.datasets, args.sizes, args.seeds = ["digits"], [3], [0]
        args.image_size, args.backbone = 32, "efficientnet_lite0"
    torch.set_num_threads(2)
    variants = {"finetune": {}}
    for v in args.variant:
        name, _, params = v.partition("=")
        variants[name] = json.loads(params)
    prep = {"resize_size": args.image_size, "crop_size": args.image_size}
    extra = {"max_epochs": 1} if args.smoke else {}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for dataset in args.datasets:
        Xtr_all, ytr_all, Xte, yte = load(dataset, args.test_per_class)
        ext = PretrainedFeatureExtractor(args.backbone, preprocessing=prep)
        Fte = ext.fit(Xte[:1]).transform(Xte)
        for n in args.sizes or SIZES[dataset]:
            for seed in args.seeds:
                idx = labels_per_class_split(ytr_all, n, random_state=seed)[0]
                Xtr, ytr = Xtr_all[idx], ytr_all[idx]
                t0 = time.perf_counter()
                Ftr = ext.transform(Xtr)
                c1, cv, best_c = probes(Ftr, ytr, Fte, yte, seed)
                row = dict(
                    dataset=dataset,
                    n_per_class=n,
                    seed=seed,
                    image_size=args.image_size,
                    n_test=len(yte),
                    probe_c1=c1,
                    probe_cv=cv,
                    probe_cv_C=best_c,
                    probe_s=time.perf_counter() - t0,
                )
                for name, params in variants.items():
                    clf = FineTunedClassifier(
                        args.backbone,
                        preprocessing=prep,
                        random_state=seed,
                        **{**extra, **params},
                    )
                    t0 = time.perf_counter()
                    clf.fit(Xtr, ytr)
                    row[f"{name}_fit_s"] = time.perf_counter() - t0
                    row[name] = float(clf.score(Xte, yte))
                    row[f"{name}_epochs"] = clf.n_epochs_
                rows.append(row)
                print(json.dumps(row), flush=True)
                write(out, args, variants, rows)


def write(out, args, variants, rows):
    meta = {
        "args": {k: v for k, v in vars(args).items()},
        "variants": variants,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
    }
    (out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    lines = [
        f"# FineTunedClassifier defaults vs the linear probe ({args.backbone}, "
        f"{args.image_size} px)",
        "",
        "Mean ± sd over seeds; `diff` = fine-tuned mean − the better probe's mean.",
        "",
        "| data set | labels/class | seeds | probe (C=1) | probe (C by CV) | "
        + " | ".join(variants)
        + " | diff | fit s (median) |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(variants) + "---:|---:|",
    ]
    keys = sorted({(r["dataset"], r["n_per_class"]) for r in rows})
    for dataset, n in keys:
        rs = [r for r in rows if (r["dataset"], r["n_per_class"]) == (dataset, n)]

        def stat(key, rs=rs):
            v = np.array([r[key] for r in rs])
            return v.mean(), v.std()

        cells = [f"{m:.3f} ± {s:.3f}" for m, s in map(stat, ["probe_c1", "probe_cv"])]
        cells += [f"{m:.3f} ± {s:.3f}" for m, s in map(stat, list(variants))]
        best_probe = max(stat("probe_c1")[0], stat("probe_cv")[0])
        diff = stat("finetune")[0] - best_probe
        fit_s = np.median([r["finetune_fit_s"] for r in rs])
        lines.append(
            f"| {dataset} | {n} | {len(rs)} | "
            + " | ".join(cells)
            + f" | {diff:+.3f} | {fit_s:.0f} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
