"""Write benchmarks/results/README.md: the consolidated benchmark table.

Every figure is read from a committed JSON file, none is typed in:

- benchmarks/finetune_recipe/results/results.json (run.py): linear probes and
  FineTunedClassifier with its defaults;
- benchmarks/finetune_recipe/results/classical.json (classical.py): classical
  baselines with C by inner CV;
- benchmarks/finetune_recipe/results/grid.json (grid.py): the best
  configuration of a cached GridSearchCV, and its "all 60,000" row;
- benchmarks/finetune_full/results/history.json: fine-tuning on all 60,000;
- benchmarks/results/fashion_mnist/results.json (transfer_vs_classical.py):
  the classical baselines and the probe on all 60,000 (fixed C).

    python benchmarks/results/summary.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
BENCH = HERE.parent
RECIPE = BENCH / "finetune_recipe" / "results"
CLASSICAL = {
    "pixels_logreg": "raw pixels + logistic regression",
    "hog_linear_svm": "HOG + linear SVM",
    "pixels_rbf_svc": "raw pixels + RBF SVC",
}
TRANSFER = {
    "probe_c1": "linear probe (C = 1)",
    "probe_cv": "linear probe (C by CV)",
    "finetune": "`FineTunedClassifier` defaults",
    "grid_best": "best by cached grid search",
}
NAMES = {**CLASSICAL, **TRANSFER}


def _load(path):
    return json.loads(Path(path).read_text())


def cells(recipe, classical, grid, dataset, n):
    """``{method: (mean, sd, seeds)}`` for one data set and size."""
    out = {}
    for rows, keys in ((classical, CLASSICAL), (recipe, TRANSFER), (grid, TRANSFER)):
        rs = [r for r in rows if (r["dataset"], r["n_per_class"]) == (dataset, n)]
        for key in keys:
            v = np.array([r[key] for r in rs if key in r])
            if len(v):
                out[key] = (v.mean(), v.std(), len(v))
    return out


def full_cells(grid_full):
    """The "all 60,000" row: one run each, the official 10,000 test images."""
    earlier = _load(HERE / "fashion_mnist" / "results.json")["results"]
    out = {
        r["method"].replace("linear_probe", "probe_fixed"): (r["accuracy"], None, 1)
        for r in earlier
        if r["labels_per_class"] == 6000
    }
    full = _load(BENCH / "finetune_full" / "results" / "history.json")
    out["finetune"] = (full["final_test_accuracy"], None, 1)
    if grid_full:
        out["grid_best"] = (grid_full["accuracy"], None, 1)
    return out, full


def fmt(cell, bold=False):
    if cell is None:
        return ""
    m, s, k = cell
    text = f"{m:.3f}" if s is None else f"{m:.3f} ± {s:.3f}"
    text = f"**{text}**" if bold else text
    return text if s is None or k == 3 else f"{text} ({k} seeds)"


def table(rows):
    """Markdown table; each row: (size label, {method: cell})."""
    cols = list(CLASSICAL) + ["probe_fixed"] + list(TRANSFER)
    cols = [c for c in cols if any(c in r for _, r in rows)]
    names = {**NAMES, "probe_fixed": "linear probe (fixed C = 0.1, 112 px)"}
    lines = [
        "| labels/class | "
        + " | ".join(names[c] for c in cols)
        + " | best sktransfer − best classical |",
        "|---|" + "---:|" * (len(cols) + 1),
    ]
    for label, r in rows:
        top = max((r[c][0] for c in r), default=None)
        best_c = max((r[c][0] for c in r if c in CLASSICAL), default=None)
        best_t = max((r[c][0] for c in r if c not in CLASSICAL), default=None)
        diff = "" if None in (best_c, best_t) else f"{best_t - best_c:+.3f}"
        lines.append(
            f"| {label} | "
            + " | ".join(fmt(r.get(c), c in r and r[c][0] == top) for c in cols)
            + f" | {diff} |"
        )
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(HERE / "README.md"))
    args = parser.parse_args()
    recipe = _load(RECIPE / "results.json")["rows"]
    classical = _load(RECIPE / "classical.json")["rows"]
    grid_file = _load(RECIPE / "grid.json")
    grid, grid_full = grid_file["rows"], grid_file.get("full")
    sizes = {
        d: sorted({r["n_per_class"] for r in recipe if r["dataset"] == d})
        for d in ("fashion_mnist", "digits")
    }
    full, ft_full = full_cells(grid_full)
    fm_rows = [
        (str(n), cells(recipe, classical, grid, "fashion_mnist", n))
        for n in sizes["fashion_mnist"]
    ]
    fm_rows.append(("all (6000)", full))
    dg_rows = [
        (str(n), cells(recipe, classical, grid, "digits", n)) for n in sizes["digits"]
    ]
    lines = [
        "# Benchmark summary: transfer vs classical baselines",
        "",
        "Written by `benchmarks/results/summary.py` from the committed JSON files "
        "(nothing typed in). Test accuracy, mean ± sd over seeds 0-2 (a figure "
        "without ± is one run); the best figure of each row in bold; the last "
        "column is the best sktransfer method (probe, fine-tune or grid) minus "
        "the best classical baseline.",
        "",
        "## Fashion-MNIST",
        "",
        "10 / 100 / 1000 labelled images per class drawn by "
        "`labels_per_class_split` (one subset per seed), the same 2,000 official "
        "test images for every method ([finetune_recipe](../finetune_recipe/README.md)): "
        "classical baselines at 28 px with C by 3-fold inner CV (`classical.py`); "
        'probes and `FineTunedClassifier("efficientnet_lite0")` with default '
        "parameters at 64 px (`run.py`); best by cached grid search: "
        "`GridSearchCV` over EfficientNet-Lite0/1/2 x layer (pooled, blocks.5) x C "
        "(`grid.py`).",
        "",
        *table(fm_rows),
        "",
        'The "all" row: all 60,000 training images, the official 10,000 test '
        "images, one run. Fine-tune: the defaults, 5 epochs, "
        f"{ft_full['wall_s'] / 60:.1f} min on 2 CPU cores "
        "([finetune_full](../finetune_full/results/result.md)). Classical "
        "baselines and the 112 px probe there are the earlier run of "
        "`transfer_vs_classical.py` ([fashion_mnist](fashion_mnist/results.md), "
        "fixed C, no RBF SVC at this size).",
    ]
    if grid_full:
        tried = [str(r["layer"]) for r in grid_file.get("full_rows", [grid_full])]
        layers = (
            f"layer in {' / '.join(tried)} (None: pooled)"
            if len(tried) > 1
            else f"layer {tried[0]} only"
        )
        lines[-1] += (
            " Grid column there: EfficientNet-Lite0 features at 64 px + logistic "
            f"regression, C in 0.01 / 0.1 / 1 and {layers} by 3-fold CV on the "
            f"60,000 (chosen: {grid_full['layer']}, C = {grid_full['best_C']:g}); "
            "no backbone search at this size (`grid.py --full`)."
        )
    lines += [
        "",
        "## scikit-learn digits (8x8)",
        "",
        "5 / 20 / 80 labelled images per class from the half of the 1,797 "
        "images used for training, scored on the other 899; the same methods "
        "and scripts.",
        "",
        *table(dg_rows),
        "",
        "Why transfer loses on 8x8 digits (resolution, random-weight features): "
        "[digits_why](../finetune_recipe/results/digits_why.md).",
        "",
        "The earlier runs of `transfer_vs_classical.py` with fixed C "
        "(before the LP-FT defaults): [fashion_mnist](fashion_mnist/results.md), "
        "[digits](digits/results.md).",
    ]
    Path(args.output).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
