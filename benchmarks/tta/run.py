"""Does test-time augmentation (``tta``) help FineTunedClassifier?

The setup of ``benchmarks/finetune_recipe``: EfficientNet-Lite0 (ImageNet
weights, offline), Fashion-MNIST upsampled to 64 px, 100 labels per class
drawn per seed by ``labels_per_class_split``, the same 2,000 stratified test
images. Each seed fits ``FineTunedClassifier`` with its defaults once, then
predicts the test images with each ``tta`` value (``set_params`` on the
fitted estimator: training is the same for all of them). Writes
results.json and results.md.

    python benchmarks/tta/run.py                # 3 seeds, ~15 min on 2 cores
    python benchmarks/tta/run.py --smoke        # seconds (digits, 1 epoch)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sktransfer import FineTunedClassifier
from sktransfer.datasets import labels_per_class_split

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "finetune_recipe"))
from run import load  # noqa: E402  (the same data and test images as finetune_recipe)

TTAS = [None, "flip", 6, 10]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--n-per-class", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(HERE))
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    extra = {}
    if args.smoke:
        args.dataset, args.n_per_class, args.seeds = "digits", 3, [0]
        args.image_size, extra = 32, {"max_epochs": 1}
    torch.set_num_threads(args.threads)
    prep = {"resize_size": args.image_size, "crop_size": args.image_size}
    Xtr_all, ytr_all, Xte, yte = load(args.dataset, args.test_per_class)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        idx = labels_per_class_split(ytr_all, args.n_per_class, random_state=seed)[0]
        clf = FineTunedClassifier(
            args.backbone, preprocessing=prep, random_state=seed, **extra
        )
        t0 = time.perf_counter()
        clf.fit(Xtr_all[idx], ytr_all[idx])
        row = {"seed": seed, "fit_s": time.perf_counter() - t0}
        for tta in TTAS:
            clf.set_params(tta=tta)
            t0 = time.perf_counter()
            row[_key(tta)] = float(clf.score(Xte, yte))
            row[f"{_key(tta)}_predict_s"] = time.perf_counter() - t0
        rows.append(row)
        print(json.dumps(row), flush=True)
        write(out, args, rows, len(yte))


def _key(tta):
    return f"tta={tta!r}".replace("'", "")


def write(out, args, rows, n_test):
    meta = {
        "args": vars(args),
        "ttas": TTAS,
        "n_test": n_test,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
    }
    (out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    keys = [_key(t) for t in TTAS]
    base = np.array([r[keys[0]] for r in rows])
    lines = [
        f"# Test-time augmentation ({args.backbone}, {args.image_size} px, "
        f"{args.dataset}, {args.n_per_class} labels/class, {n_test} test images)",
        "",
        "One fit per seed; accuracy of each `tta` on the same test images. "
        "`gain` = mean over seeds of (accuracy − accuracy with `tta=None`); "
        "`predict s` = median seconds to predict the test images (ratio to "
        "`tta=None` in brackets).",
        "",
        "| tta | "
        + " | ".join(f"seed {r['seed']}" for r in rows)
        + " | mean | gain | predict s |",
        "|---|" + "---:|" * (len(rows) + 3),
    ]
    t_base = np.median([r[f"{keys[0]}_predict_s"] for r in rows])
    for key in keys:
        acc = np.array([r[key] for r in rows])
        t = np.median([r[f"{key}_predict_s"] for r in rows])
        lines.append(
            f"| `{key[4:]}` | "
            + " | ".join(f"{a:.4f}" for a in acc)
            + f" | {acc.mean():.4f} | {(acc - base).mean():+.4f} | "
            f"{t:.1f} ({t / t_base:.1f}x) |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
