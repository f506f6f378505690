"""Why transfer loses on sklearn's 8x8 digits: resolution and a random-feature control.

On the digits subsets and test half of run.py (seeds 0-2), the linear probe
(StandardScaler + LogisticRegressionCV, as run.py's ``probe_cv``) on
EfficientNet-Lite0 features

- with ImageNet weights, the 8x8 images upsampled to 32, 64 and 128 px;
- with random weights (``weights=None``, the same architecture) at 64 px,

next to the RBF SVC on the 64 raw pixels (C by 3-fold CV). If pretrained
features beat random ones by a wide margin, the pretraining transfers; if no
resolution closes the gap to the SVC, the limit is the input (8x8 pixels hold
little that ImageNet features describe better than the pixels themselves).
Writes results/digits_why.json and results/digits_why.md.

    python benchmarks/finetune_recipe/digits_why.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from sktransfer import PretrainedFeatureExtractor
from sktransfer.datasets import labels_per_class_split

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from classical import fit_score  # noqa: E402
from run import load, probes  # noqa: E402

CONFIGS = [("ImageNet", 32), ("ImageNet", 64), ("ImageNet", 128), ("random", 64)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 80])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", default=str(HERE / "results"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    Xtr_all, ytr_all, Xte, yte = load("digits", None)
    rows = []
    for weights, size in CONFIGS:
        ext = PretrainedFeatureExtractor(
            "efficientnet_lite0",
            weights="DEFAULT" if weights == "ImageNet" else None,
            preprocessing={"resize_size": size, "crop_size": size},
            random_state=0,
        ).fit(Xte[:1])
        Fte, Fall = ext.transform(Xte), ext.transform(Xtr_all)
        for n in args.sizes:
            for seed in args.seeds:
                idx = labels_per_class_split(ytr_all, n, random_state=seed)[0]
                c1, cv, _ = probes(Fall[idx], ytr_all[idx], Fte, yte, seed)
                rows.append(
                    dict(
                        features=f"{weights} {size} px",
                        n_per_class=n,
                        seed=seed,
                        probe=max(c1, cv),
                    )
                )
                print(json.dumps(rows[-1]), flush=True)
    for n in args.sizes:
        for seed in args.seeds:
            idx = labels_per_class_split(ytr_all, n, random_state=seed)[0]
            acc, _ = fit_score(
                "pixels_rbf_svc", Xtr_all[idx], ytr_all[idx], Xte, yte, seed
            )
            rows.append(
                dict(
                    features="raw 8x8 pixels, RBF SVC",
                    n_per_class=n,
                    seed=seed,
                    probe=acc,
                )
            )
    out = Path(args.output)
    (out / "digits_why.json").write_text(json.dumps({"rows": rows}, indent=1))
    names = list(dict.fromkeys(r["features"] for r in rows))
    lines = [
        "# Digits: linear probe by input resolution and weights (Lite0)",
        "",
        "Test accuracy on the 899 test digits, mean ± sd over seeds "
        f"{args.seeds}; probe = the better of LogisticRegression (C = 1) and "
        "LogisticRegressionCV; last row: RBF SVC on raw pixels (C by CV).",
        "",
        "| features | " + " | ".join(f"{n}/class" for n in args.sizes) + " |",
        "|---|" + "---:|" * len(args.sizes),
    ]
    for name in names:
        cells = []
        for n in args.sizes:
            v = [
                r["probe"]
                for r in rows
                if r["features"] == name and r["n_per_class"] == n
            ]
            cells.append(f"{np.mean(v):.3f} ± {np.std(v):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    (out / "digits_why.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
