"""Multi-label FineTunedClassifier vs a multi-label linear probe.

No offline multi-label image set exists, so one is constructed from real
images. Each sample is a composite of two Fashion-MNIST items side by side:
a 28 x 56 uint8 image whose left half is a random item and whose right half
is another random item (drawn independently, so both may be of the same
class). Its labels are the set of the two items' classes, as a 10-column
indicator matrix (MultiLabelBinarizer on the class names): one label when
both items share a class, two otherwise. Training composites are drawn from
the official training images (a seed per run), test composites from the
official test images (seed 12345, the same for every run), so no item is
both trained and tested on.

For each seed, on the same training composites, scored on the same test
composites:

- ``probe``: ``OneVsRestClassifier(LogisticRegression())`` on standardised
  ``PretrainedFeatureExtractor(backbone)`` features (one logistic regression
  per label: the multi-label linear probe a user writes first);
- ``finetune``: ``FineTunedClassifier(backbone)`` with its defaults on the
  indicator y (sigmoid outputs, BCE, LP-FT probe head, threshold 0.5).

Images are resized to a height of ``--image-size`` (64: 64 x 128 px, the
aspect ratio kept, no crop). Reported: samples-averaged F1, macro F1, Hamming
loss and subset accuracy. Writes results.json and results.md.

    python benchmarks/multilabel/run.py              # 3 seeds, ~4 min on 2 cores
    python benchmarks/multilabel/run.py --smoke      # seconds, synthetic items
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, hamming_loss
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer, StandardScaler
from threadpoolctl import threadpool_limits

from sktransfer import FineTunedClassifier, PretrainedFeatureExtractor
from sktransfer._benchmark import environment

HERE = Path(__file__).parent
TEST_SEED = 12345


def composites(images, labels, n, seed, names):
    """``n`` composites (n, 28, 56) of two random items and their indicator y."""
    rng = np.random.default_rng(seed)
    left = rng.integers(0, len(images), n)
    right = rng.integers(0, len(images), n)
    X = np.concatenate([images[left], images[right]], axis=2)
    tags = [{names[labels[a]], names[labels[b]]} for a, b in zip(left, right)]
    Y = MultiLabelBinarizer(classes=names).fit_transform(tags)
    return X, Y


def scores(Y, P):
    return {
        "f1_samples": float(f1_score(Y, P, average="samples", zero_division=0)),
        "f1_macro": float(f1_score(Y, P, average="macro", zero_division=0)),
        "hamming_loss": float(hamming_loss(Y, P)),
        "subset_accuracy": float(accuracy_score(Y, P)),
    }


def probe(Ftr, Ytr, Fte):
    with threadpool_limits(1):
        scaler = StandardScaler().fit(Ftr)
        model = OneVsRestClassifier(LogisticRegression(max_iter=1000))
        model.fit(scaler.transform(Ftr), Ytr)
        return model.predict(scaler.transform(Fte))


def load(smoke):
    """(train images, train labels, test images, test labels, class names)."""
    if smoke:  # random "items" of 10 grey levels: no data set needed
        rng = np.random.default_rng(0)
        y = rng.integers(0, 10, 400)
        X = (y[:, None, None] * 25 + rng.integers(0, 20, (400, 28, 28))).astype(
            np.uint8
        )
        names = [f"c{k}" for k in range(10)]
        return X[:200], y[:200], X[200:], y[200:], names
    from sktransfer.datasets import load_fashion_mnist

    train, test = load_fashion_mnist(), load_fashion_mnist(subset="test")
    names = list(train.target_names)
    return train.images, train.target, test.images, test.target, names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(HERE / "results"))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.n_train, args.n_test, args.seeds, args.image_size = 60, 40, [0], 32
    torch.set_num_threads(args.threads)
    prep = {"resize_size": args.image_size, "crop_size": None}
    extra = {"max_epochs": 1} if args.smoke else {}
    Xtr_all, ytr_all, Xte_all, yte_all, names = load(args.smoke)
    Xte, Yte = composites(Xte_all, yte_all, args.n_test, TEST_SEED, names)
    ext = PretrainedFeatureExtractor(args.backbone, preprocessing=prep)
    Fte = ext.fit(Xte[:1]).transform(Xte)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        Xtr, Ytr = composites(Xtr_all, ytr_all, args.n_train, seed, names)
        # Every label must occur (and not everywhere) in the training data.
        keep = (Ytr.min(0) == 0) & (Ytr.max(0) == 1)
        assert keep.all(), f"seed {seed}: a label never occurs; use more samples"
        row = dict(seed=seed, n_train=len(Ytr), n_test=len(Yte))
        t0 = time.perf_counter()
        P = probe(ext.transform(Xtr), Ytr, Fte)
        row["probe_s"] = time.perf_counter() - t0
        row["probe"] = scores(Yte, P)
        clf = FineTunedClassifier(
            args.backbone, preprocessing=prep, random_state=seed, **extra
        )
        t0 = time.perf_counter()
        clf.fit(Xtr, Ytr)
        row["finetune_fit_s"] = time.perf_counter() - t0
        row["finetune_epochs"] = clf.n_epochs_
        row["finetune"] = scores(Yte, clf.predict(Xte))
        rows.append(row)
        print(json.dumps(row), flush=True)
        write(out, args, rows)


def write(out, args, rows):
    report = {
        "args": vars(args),
        "construction": (
            "28 x 56 composites of two independently drawn Fashion-MNIST items "
            "side by side; labels = the set of their classes (10 indicator "
            f"columns); test composites from the test split with seed {TEST_SEED}"
        ),
        "environment": environment(),
        "rows": rows,
    }
    (out / "results.json").write_text(json.dumps(report, indent=1))
    metrics = ["f1_samples", "f1_macro", "hamming_loss", "subset_accuracy"]
    lines = [
        f"# Multi-label: FineTunedClassifier vs OneVsRest linear probe "
        f"({args.backbone}, height {args.image_size} px)",
        "",
        f"Composites of two Fashion-MNIST items side by side (28 x 56 px, "
        f"labels = the set of the two classes), {args.n_train} training and "
        f"{args.n_test} test composites; mean ± sd over {len(rows)} seed(s). "
        f"Hamming loss: lower is better. The probe's seconds include "
        f"extracting the training features.",
        "",
        "| method | " + " | ".join(metrics) + " | fit s (median) |",
        "|---|" + "---:|" * (len(metrics) + 1),
    ]
    for method, time_key in (("probe", "probe_s"), ("finetune", "finetune_fit_s")):
        cells = []
        for m in metrics:
            v = np.array([r[method][m] for r in rows])
            cells.append(f"{v.mean():.3f} ± {v.std():.3f}")
        fit_s = np.median([r[time_key] for r in rows])
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {fit_s:.0f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
